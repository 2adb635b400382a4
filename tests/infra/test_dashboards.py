"""Each pipeline stack's dashboard as synthesized: one per stack, linked from an output, watching
declared or AWS metrics, listing the stack's alarms, with the widgets an operator needs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.telemetry import bulk_upload, capture, currents, importer
from tests.infra.conftest import Synth
from tests.infra.test_metric_declarations import Watched, dashboard_bodies, widget_metrics

pytestmark = pytest.mark.xdist_group("synth")

PIPELINES = ("-Import", "-Currents", "-BulkUpload", "-Capture")


def dashboard(synth: Synth, suffix: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    template = synth.template(suffix)
    bodies = list(dashboard_bodies(template))
    assert len(bodies) == 1, suffix
    logical_id, body = bodies[0]
    return template, body, logical_id


def watched(body: dict[str, Any]) -> set[Watched]:
    return set(widget_metrics(body))


def names(body: dict[str, Any], namespace: str) -> set[str]:
    return {name for ns, name, _ in watched(body) if ns == namespace}


@pytest.mark.parametrize("suffix", PIPELINES)
def test_each_pipeline_has_one_dashboard_linked_from_an_output(synth: Synth, suffix: str) -> None:
    template, _, logical_id = dashboard(synth, suffix)
    resource = template["Resources"][logical_id]
    assert "DashboardName" not in resource["Properties"]  # CloudFormation names it: deployments never collide
    url = template["Outputs"]["DashboardUrl"]["Value"]
    parts = url["Fn::Join"][1]
    assert any(isinstance(p, str) and "/cloudwatch/home?region=" in p for p in parts)
    assert any(isinstance(p, dict) and "Fn::FindInMap" in p for p in parts)  # the partition's console
    assert {"Ref": logical_id} in parts


def test_the_account_stack_has_no_dashboard(synth: Synth) -> None:
    assert list(dashboard_bodies(synth.template("-ApiGatewayAccount"))) == []


@pytest.mark.parametrize("suffix", PIPELINES)
def test_the_alarm_widget_lists_every_alarm_of_the_stack(synth: Synth, suffix: str) -> None:
    template, body, _ = dashboard(synth, suffix)
    alarms = {k for k, v in template["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    widgets = [w for w in body["widgets"] if "alarms" in w.get("properties", {})]
    assert len(widgets) == 1
    listed = set(widgets[0]["properties"]["alarms"])
    # Each alarm's ARN is rendered as "<token>" (GetAtt): count them, and check the alarm ids appear.
    assert len(widgets[0]["properties"]["alarms"]) == len(alarms) > 0
    assert listed == {"<token>"}
    raw = str(template["Resources"][dashboard(synth, suffix)[2]]["Properties"]["DashboardBody"])
    assert all(f"'{alarm}'" in raw for alarm in alarms)


@pytest.mark.parametrize("suffix", PIPELINES)
def test_every_widget_metric_is_declared_or_aws(synth: Synth, suffix: str) -> None:
    from stacks.telemetry import declared_metrics

    _, body, _ = dashboard(synth, suffix)
    custom = {w for w in watched(body) if not w[0].startswith("AWS/")}
    assert custom and custom <= declared_metrics()


def test_import_shows_objects_pace_against_the_workspace_limit_and_the_function(synth: Synth) -> None:
    _, body, _ = dashboard(synth, "-Import")
    assert {
        s.name
        for s in (
            importer.OBJECTS_READ, importer.OBJECTS_ACCEPTED, importer.OBJECTS_REJECTED, importer.OBJECTS_FAILED,
            importer.OBJECTS_AMBIGUOUS, importer.REQUESTS, importer.THROTTLED, importer.RETRIES, importer.RUNS_STOPPED,
        )
    } <= names(body, importer.NAMESPACE)  # fmt: skip
    assert {"Invocations", "Errors", "Duration"} <= names(body, "AWS/Lambda")
    assert "ApproximateNumberOfMessagesVisible" in names(body, "AWS/SQS")
    pace = next(w for w in body["widgets"] if "workspace limit" in w["properties"].get("title", ""))
    assert all(row[-1]["period"] == 60 for row in pace["properties"]["metrics"])  # per minute
    (limit,) = pace["properties"]["annotations"]["horizontal"]
    assert limit["value"] == 1000 * 60  # cdk.json: import:workspaceRequestsPerSecond 1000 → requests a minute


def test_import_shows_attribute_values_sent_against_skipped_and_what_deltas_could_not_do(synth: Synth) -> None:
    _, body, _ = dashboard(synth, "-Import")
    (values,) = [w for w in body["widgets"] if w["properties"].get("title") == "Attribute values sent vs skipped"]
    shown = {name for _, name, _ in widget_metrics({"widgets": [values]})}
    assert shown == {
        s.name
        for s in (
            importer.VALUES_SENT, importer.VALUES_SKIPPED, importer.OBJECTS_UNCHANGED, importer.USERS_TOO_LARGE,
            importer.DELTA_LOOKUP_ERRORS, importer.DELTA_COMMIT_ERRORS,
        )
    }  # fmt: skip


def test_currents_shows_generations_bedrock_and_the_content_api(synth: Synth) -> None:
    _, body, _ = dashboard(synth, "-Currents")
    assert {
        s.name
        for s in (
            currents.RECORDS, currents.USERS, currents.GENERATED, currents.POLICY_FALLBACKS, currents.CAPPED,
            currents.FAILED, currents.BEDROCK_LATENCY, currents.BEDROCK_THROTTLES,
        )
    } <= names(body, currents.NAMESPACE)  # fmt: skip
    assert {"Count", "4XXError", "5XXError", "Latency"} <= names(body, "AWS/ApiGateway")
    stats = {row[-1].get("stat") for row in _rows(body) if row[0] == "AWS/ApiGateway" and row[1] == "Latency"}
    assert {"p50", "p99"} <= stats
    assert any(
        "401" in " ".join(w["properties"].get("query", "").split()) for w in body["widgets"] if w["type"] == "log"
    )


def test_bulk_upload_shows_jobs_bytes_duration_imports_and_dead_letters(synth: Synth) -> None:
    _, body, _ = dashboard(synth, "-BulkUpload")
    assert {
        s.name
        for s in (
            bulk_upload.COPIES_DONE, bulk_upload.COPIES_FAILED, bulk_upload.BYTES_COPIED, bulk_upload.COPY_DURATION,
            bulk_upload.IMPORTS_REQUESTED,
        )
    } <= names(body, bulk_upload.NAMESPACE)  # fmt: skip
    assert "ApproximateNumberOfMessagesVisible" in names(body, "AWS/SQS")


def test_capture_shows_events_put_failures_freshness_and_transform_errors(synth: Synth) -> None:
    _, body, _ = dashboard(synth, "-Capture")
    assert {
        s.name for s in (capture.EVENTS_ACCEPTED, capture.EVENTS_PUT_FAILED, capture.EVENTS_FAILED_TRANSFORM)
    } <= names(body, capture.NAMESPACE)
    assert "DeliveryToS3.DataFreshness" in names(body, "AWS/Firehose")
    assert "Errors" in names(body, "AWS/Lambda")


def _rows(body: dict[str, Any]) -> list[list[Any]]:
    return [row for w in body["widgets"] for row in w.get("properties", {}).get("metrics", []) if len(row) > 1]


def test_each_api_has_its_own_name_so_its_widgets_show_only_its_traffic(synth: Synth) -> None:
    names = {}
    for stack in synth.assembly.stacks:
        for api in stack.template["Resources"].values():
            if api["Type"] == "AWS::ApiGateway::RestApi":
                names[stack.stack_name] = api["Properties"]["Name"]
    assert len(names) == 3 and len(set(names.values())) == 3
    assert all(name == f"{stack}-Api" for stack, name in names.items())
    for stack, name in names.items():
        body = json.dumps(synth.template(stack.rsplit("-", 1)[-1]))
        assert '\\"ApiName\\",\\"Api\\"' not in body and f'\\"ApiName\\",\\"{name}\\"' in body, stack


def test_the_dashboard_link_follows_the_partition(synth: Synth) -> None:
    output = synth.template("-Import")["Outputs"]["DashboardUrl"]["Value"]
    text = json.dumps(output)
    assert "console.aws.amazon.com" not in text or "Fn::FindInMap" in text
    mapping = next(iter(synth.template("-Import")["Mappings"].values()))
    assert {mapping[p]["console"] for p in ("aws", "aws-cn", "aws-us-gov")} == {
        "console.aws.amazon.com",
        "console.amazonaws.cn",
        "console.amazonaws-us-gov.com",
    }
