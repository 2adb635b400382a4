"""The bulk-upload stack as synthesized."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import Synth
from tests.infra.test_currents_stack import actions_of
from tests.infra.test_import_stack import one, resources

pytestmark = pytest.mark.xdist_group("synth")


@pytest.fixture(scope="module")
def template(synth: Synth) -> dict[str, Any]:
    return synth.template("-BulkUpload")


def test_both_routes_need_key_authorizer_and_validation(template: dict[str, Any]) -> None:
    methods = [m["Properties"] for m in resources(template, "AWS::ApiGateway::Method").values()]
    assert sorted(m["HttpMethod"] for m in methods) == ["GET", "POST"]
    assert all(
        m["ApiKeyRequired"] and m["AuthorizationType"] == "CUSTOM" and "RequestValidatorId" in m for m in methods
    )
    post = next(m for m in methods if m["HttpMethod"] == "POST")
    assert "application/json" in post["RequestModels"]
    model = one(template, "AWS::ApiGateway::Model")["Properties"]["Schema"]
    assert set(model["required"]) == {"presignedUrls", "sendParameters"}
    stage = one(template, "AWS::ApiGateway::Stage")["Properties"]
    assert "AccessLogSetting" in stage and not any(s.get("DataTraceEnabled") for s in stage["MethodSettings"])


def test_the_copier_may_only_write_objects_under_the_prefix(template: dict[str, Any]) -> None:
    actions, granted = actions_of(template, "bulk_upload.copier_handler.handler")
    s3 = {a for a in actions if a.startswith("s3:")}
    assert s3 == {"s3:PutObject", "s3:AbortMultipartUpload"}
    statement = next(s for s in granted if "s3:PutObject" in s["Action"])
    assert json.dumps(statement["Resource"]).endswith('/ci360/*"]]}')
    receiver_actions, _ = actions_of(template, "bulk_upload.api_handler.handler")
    assert not any(a.startswith("s3:") for a in receiver_actions)


def test_versioned_bucket_queue_with_dead_letters_and_alarms(template: dict[str, Any]) -> None:
    buckets = [
        b["Properties"]
        for b in resources(template, "AWS::S3::Bucket").values()
        if "LoggingConfiguration" in b["Properties"]
    ]
    assert buckets[0]["VersioningConfiguration"]["Status"] == "Enabled"
    queues = [q["Properties"] for q in resources(template, "AWS::SQS::Queue").values()]
    assert any("RedrivePolicy" in q for q in queues)
    mappings = [m["Properties"] for m in resources(template, "AWS::Lambda::EventSourceMapping").values()]
    assert len(mappings) == 2  # the copier, and the dead-letter consumer that ends jobs as failed
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)
    metrics = {a["Properties"].get("MetricName") for a in resources(template, "AWS::CloudWatch::Alarm").values()}
    assert {"NumberOfMessagesReceived", "Errors", "CopiesFailed"} <= metrics


def test_copies_are_retried_as_aws_advises_and_throttling_spends_no_receives(template: dict[str, Any]) -> None:
    queues = [q["Properties"] for q in resources(template, "AWS::SQS::Queue").values()]
    redrive = next(q["RedrivePolicy"] for q in queues if "RedrivePolicy" in q)
    assert redrive["maxReceiveCount"] >= 5
    scaled = [
        m["Properties"]["ScalingConfig"]["MaximumConcurrency"]
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if "ScalingConfig" in m["Properties"]
    ]
    assert scaled == [10]


def test_a_long_copy_may_continue_itself_through_its_queue(template: dict[str, Any]) -> None:
    copier = next(
        f["Properties"]
        for f in resources(template, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "bulk_upload.copier_handler.handler"
    )
    assert copier["RecursiveLoop"] == "Allow"
    assert {"COPY_HANDOVER_SECONDS", "COPY_PARTS_IN_FLIGHT"} <= set(copier["Environment"]["Variables"])
    actions, _ = actions_of(template, "bulk_upload.copier_handler.handler")
    assert "sqs:SendMessage" in actions
    consumer, _ = actions_of(template, "bulk_upload.dead_letter_handler.handler")
    assert {"dynamodb:UpdateItem", "s3:AbortMultipartUpload"} <= set(consumer) and "s3:PutObject" not in consumer


def test_a_rotated_token_is_not_refused_for_long(template: dict[str, Any]) -> None:
    authorizer = one(template, "AWS::ApiGateway::Authorizer")["Properties"]
    assert authorizer["AuthorizerResultTtlInSeconds"] <= 60


# -- CI360 audiences on to Braze (bulkUpload:deliverToBraze, on in the session's synthesis) ---------


def test_delivering_to_braze_grants_each_side_exactly_what_it_uses(synth: Synth, template: dict[str, Any]) -> None:
    imports = synth.template("-Import")
    exported = {o["Export"]["Name"] for o in imports.get("Outputs", {}).values() if "Export" in o}
    names = {f"BrazePipelines-{n}" for n in ("ImporterFunctionArn", "ImporterRoleArn", "ImportRunsTableArn",
                                             "ImportRunsTableName")}  # fmt: skip
    assert names <= exported
    # The copier may invoke the importer, nothing else of the Import stack; it reads no runs.
    _, granted = actions_of(template, "bulk_upload.copier_handler.handler")
    invoke = next(s for s in granted if "lambda:InvokeFunction" in s["Action"])
    assert invoke["Resource"] == {"Fn::ImportValue": "BrazePipelines-ImporterFunctionArn"}
    assert not any(a.startswith("dynamodb:") and "ImportRuns" in json.dumps(s) for s in granted for a in s["Action"])
    env = one_function(template, "bulk_upload.copier_handler.handler")["Environment"]["Variables"]
    assert env["IMPORTER_FUNCTION"] == {"Fn::ImportValue": "BrazePipelines-ImporterFunctionArn"}
    assert env["BRAZE_ID_COLUMN"] == "external_id"
    # The API reads a job's run, and only with GetItem.
    _, receiver_granted = actions_of(template, "bulk_upload.api_handler.handler")
    runs = [s for s in receiver_granted if s["Resource"] == {"Fn::ImportValue": "BrazePipelines-ImportRunsTableArn"}]
    assert [s["Action"] for s in runs] in (["dynamodb:GetItem"], [["dynamodb:GetItem"]])
    # The importer's role gets reads of the upload prefix, from this stack: Import never depends on it.
    policy = next(
        r["Properties"] for r in resources(template, "AWS::IAM::Policy").values()
        if "ImporterRoleArn" in json.dumps(r["Properties"].get("Roles"))
    )  # fmt: skip
    (statement,) = policy["PolicyDocument"]["Statement"]
    # With import:deltas (the default) the tags too: a CI360 file may ask for a full send like any other.
    assert sorted(statement["Action"]) == [
        "s3:GetObject", "s3:GetObjectTagging", "s3:GetObjectVersion", "s3:GetObjectVersionTagging",
    ]  # fmt: skip
    assert json.dumps(statement["Resource"]).endswith('/ci360/*"]]}')
    assert "UploadBucket" not in json.dumps(imports) and "ImportValue" not in json.dumps(imports)
    by_name = {s.stack_name: s for s in synth.assembly.stacks}
    assert "BrazePipelines-Import" in {d.id for d in by_name["BrazePipelines-BulkUpload"].dependencies}


def test_without_delivery_the_bulk_stack_knows_nothing_of_the_importer() -> None:
    import aws_cdk as cdk

    import app as app_module
    from tests.infra.conftest import ROOT

    context = {**json.loads((ROOT / "cdk.json").read_text())["context"], "aws:cdk:bundling-stacks": []}
    assert context["bulkUpload:deliverToBraze"] is False  # the default
    app = app_module.build_app(cdk.App(context=context))
    bulk = next(c for c in app.node.children if isinstance(c, cdk.Stack) and c.stack_name.endswith("-BulkUpload"))
    template = json.dumps(cdk.assertions.Template.from_stack(bulk, skip_cyclical_dependencies_check=True).to_json())
    assert "ImportValue" not in template and "IMPORTER_FUNCTION" not in template and "RUNS_TABLE" not in template
    assert not [d for d in bulk.dependencies if d.stack_name.endswith("-Import")]


def one_function(template: dict[str, Any], handler: str) -> dict[str, Any]:
    (function,) = [
        r["Properties"] for r in resources(template, "AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") == handler
    ]  # fmt: skip
    return function


def test_the_copy_dead_letter_alarm_counts_what_its_consumer_takes(template: dict[str, Any]) -> None:
    # The dead-letter consumer empties the queue at once: visible messages would never reach 1.
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    (alarm,) = [a["Properties"] for name, a in alarms.items() if "CopyDeadLetters" in name]
    assert alarm["MetricName"] == "NumberOfMessagesReceived" and alarm["Statistic"] == "Sum"
