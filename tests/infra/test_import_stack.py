"""The Import stack as synthesized: what a reviewer of the template would check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import Synth

pytestmark = pytest.mark.xdist_group("synth")


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def one(template: dict[str, Any], kind: str, where: Any = lambda r: True) -> dict[str, Any]:
    found = [r for r in resources(template, kind).values() if where(r)]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def template(synth: Synth) -> dict[str, Any]:
    return synth.template("-Import")


def importer(template: dict[str, Any]) -> dict[str, Any]:
    return one(template, "AWS::Lambda::Function", lambda r: "braze_importer" in r["Properties"].get("Handler", ""))


def statements(template: dict[str, Any], role_logical_id: str) -> list[dict[str, Any]]:
    found = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        roles = [r.get("Ref") for r in policy["Properties"]["Roles"]]
        if role_logical_id in roles:
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def test_cdk_nag_runs_clean_and_every_template_passes_cfn_lint(synth: Synth) -> None:
    files = [str(p) for p in synth.template_files()]
    assert files
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--non-zero-exit-code", "error", *files],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_importer_function_runtime_limits_and_failure_handling(template: dict[str, Any]) -> None:
    fn = importer(template)["Properties"]
    assert fn["Runtime"] == "python3.14" and fn["Architectures"] == ["arm64"]
    assert fn["Timeout"] == 900
    assert fn["RecursiveLoop"] == "Allow"
    env = fn["Environment"]["Variables"]
    assert "BRAZE_API_KEY_SECRET" in env and not any("KEY" in k and k != "BRAZE_API_KEY_SECRET" for k in env)
    invoke = one(template, "AWS::Lambda::EventInvokeConfig")["Properties"]
    assert invoke["MaximumRetryAttempts"] == 0
    assert "OnFailure" in invoke["DestinationConfig"]


def test_notifications_deliver_every_key_under_the_incoming_prefix_and_nothing_else(template: dict[str, Any]) -> None:
    """Suffix-less warehouse exports (Athena, Redshift UNLOAD) and .parquet/.avro files start runs
    too: one rule by prefix alone (S3 cannot add suffix rules beside it without overlapping); the
    function ignores keys it does not read."""
    notifications = one(template, "Custom::S3BucketNotifications")["Properties"]["NotificationConfiguration"]
    filters = [
        {r["Name"]: r["Value"] for r in c["Filter"]["Key"]["FilterRules"]}
        for c in notifications["LambdaFunctionConfigurations"]
    ]
    assert filters == [{"prefix": "incoming/"}]
    assert [c["Events"] for c in notifications["LambdaFunctionConfigurations"]] == [["s3:ObjectCreated:*"]]


def test_bucket_is_private_encrypted_versioned_tls_only_and_expires_outputs(template: dict[str, Any]) -> None:
    buckets = resources(template, "AWS::S3::Bucket")
    data = next(b for b in buckets.values() if "LoggingConfiguration" in b["Properties"])["Properties"]
    assert data["VersioningConfiguration"]["Status"] == "Enabled"
    assert data["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
    }  # fmt: skip
    assert data["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    expiring = {r.get("Prefix") for r in data["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in r}
    assert {"reports/", "rejects/"} <= expiring
    for policy in resources(template, "AWS::S3::BucketPolicy").values():
        denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_importer_grants_are_least_privilege(template: dict[str, Any]) -> None:
    role = importer(template)["Properties"]["Role"]["Fn::GetAtt"][0]
    granted = statements(template, role)
    actions = {a for s in granted for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "dynamodb:GetItem", "dynamodb:PutItem"} <= actions
    assert "dynamodb:UpdateItem" in actions  # the run's own entry in the active-runs item
    assert {"lambda:InvokeFunction", "secretsmanager:GetSecretValue"} <= actions
    assert not any(a in ("s3:*", "dynamodb:*", "*") for a in actions)
    assert "s3:DeleteObject" not in actions and "dynamodb:Scan" not in actions
    put = next(s for s in granted if s["Action"] == "s3:PutObject")
    rendered = json.dumps(put["Resource"])
    assert all(p in rendered for p in ("reports/*", "rejects/*", "failed/*")) and "incoming/" not in rendered
    get = next(s for s in granted if "s3:GetObject" in s["Action"])
    assert "incoming/*" in json.dumps(get["Resource"])
    function_id = next(k for k, v in resources(template, "AWS::Lambda::Function").items() if v is importer(template))
    invoke = next(s for s in granted if s["Action"] == "lambda:InvokeFunction")
    assert invoke["Resource"] == {"Fn::GetAtt": [function_id, "Arn"]}  # itself, and nothing else
    roles = resources(template, "AWS::IAM::Role")
    assert "ManagedPolicyArns" not in roles[role]["Properties"]


def table_keyed_by(template: dict[str, Any], key: str) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (name, r) for name, r in resources(template, "AWS::DynamoDB::Table").items()
        if r["Properties"]["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}]
    ]  # fmt: skip
    return found


@pytest.mark.parametrize("key", ["run_id", "pk"])
def test_runs_and_deltas_tables_on_demand_with_recovery_ttl_and_kept(template: dict[str, Any], key: str) -> None:
    _, table = table_keyed_by(template, key)
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert properties["AttributeDefinitions"] == [{"AttributeName": key, "AttributeType": "S"}]
    assert table["DeletionPolicy"] == "Retain"
    assert len(resources(template, "AWS::DynamoDB::Table")) == 2


def test_alarms_watch_the_dead_letter_queue_errors_and_failures(template: dict[str, Any]) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm").values()
    metrics = {a["Properties"].get("MetricName") for a in alarms}
    assert {"ApproximateNumberOfMessagesVisible", "Errors", "ObjectsFailed", "RunsStopped"} <= metrics
    assert all(a["Properties"]["AlarmActions"] for a in alarms)
    queue = one(template, "AWS::SQS::Queue")["Properties"]
    assert queue["SqsManagedSseEnabled"] is True


def test_secret_is_referenced_not_inlined(template: dict[str, Any]) -> None:
    secret_id = next(iter(resources(template, "AWS::SecretsManager::Secret")))
    env = importer(template)["Properties"]["Environment"]["Variables"]
    assert env["BRAZE_API_KEY_SECRET"] == {"Ref": secret_id}


def test_importer_reserves_no_concurrency_by_default_and_bounds_runs_in_its_table(template: dict[str, Any]) -> None:
    # A new account (concurrency quota 10) cannot reserve any: the deploy would roll back.
    fn = importer(template)["Properties"]
    assert "ReservedConcurrentExecutions" not in fn
    assert fn["Environment"]["Variables"]["MAX_CONCURRENT_RUNS"] == "2"


def test_one_run_takes_the_whole_workspace_limit_by_default(template: dict[str, Any]) -> None:
    env = importer(template)["Properties"]["Environment"]["Variables"]
    assert env["WORKSPACE_REQUESTS_PER_SECOND"] == "1000.0"
    assert "REQUESTS_PER_SECOND" not in env  # no per-run ceiling: the runs divide the workspace's limit


def test_a_per_run_ceiling_is_optional_and_within_the_workspace_limit() -> None:
    from stacks.config import AppConfig, ConfigError

    assert AppConfig.from_context({"import:requestsPerSecond": "200"}.get).importer.requests_per_second == 200
    # Any number of concurrent runs fits: they share the workspace figure instead of multiplying a share.
    assert AppConfig.from_context({"import:maxConcurrentRuns": "10"}.get).importer.max_concurrent_runs == 10
    with pytest.raises(ConfigError, match="requestsPerSecond"):
        AppConfig.from_context({"import:requestsPerSecond": "2000"}.get)
    with pytest.raises(ConfigError, match="workspaceRequestsPerSecond"):
        AppConfig.from_context({"import:workspaceRequestsPerSecond": "0"}.get)


def test_reserved_concurrency_is_an_opt_in_setting() -> None:
    from stacks.config import AppConfig, ConfigError

    context = {"import:reservedConcurrency": "5", "import:maxConcurrentRuns": "2"}
    assert AppConfig.from_context(context.get).importer.reserved_concurrency == 5
    assert AppConfig.from_context({}.get).importer.reserved_concurrency == 0
    with pytest.raises(ConfigError, match="reservedConcurrency"):
        AppConfig.from_context({"import:reservedConcurrency": "1", "import:maxConcurrentRuns": "2"}.get)


def test_a_schedule_sweeps_the_run_queue_with_its_own_failure_handling(template: dict[str, Any]) -> None:
    # Queued runs wait in the runs table; this rule starts them when a dead holder's lease ran out.
    fn_id = next(k for k, v in resources(template, "AWS::Lambda::Function").items() if v is importer(template))
    rule = one(template, "AWS::Events::Rule", lambda r: "ScheduleExpression" in r["Properties"])["Properties"]
    assert rule["ScheduleExpression"] == "rate(1 minute)" and rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [fn_id, "Arn"]}
    assert json.loads(target["Input"]) == {"action": "sweep"}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    dlq = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert template["Resources"][dlq]["Type"] == "AWS::SQS::Queue"
    # Only this rule may invoke the function through EventBridge.
    permission = one(
        template, "AWS::Lambda::Permission", lambda r: r["Properties"]["Principal"] == "events.amazonaws.com"
    )["Properties"]
    assert permission["Action"] == "lambda:InvokeFunction" and "SourceArn" in permission


def test_catalog_and_delete_limits_reach_the_function_and_user_deletes_are_off_by_default(
    template: dict[str, Any],
) -> None:
    env = importer(template)["Properties"]["Environment"]["Variables"]
    assert env["CATALOG_REQUESTS_PER_MINUTE"] == "16000"
    assert env["USER_DELETE_REQUESTS_PER_MINUTE"] == "20000"
    assert env["ALLOW_USER_DELETES"] == "false"  # deleting users is irreversible: an explicit opt-in


def test_the_importer_may_read_and_write_user_records_but_never_scan_query_or_delete(template: dict[str, Any]) -> None:
    """The delta store's three calls (BatchGetItem, PutItem, UpdateItem) on the deltas table, nothing
    else on it; the incoming files' tags (the full-send tag), nothing else of them."""
    deltas, _ = table_keyed_by(template, "pk")
    granted = statements(template, importer(template)["Properties"]["Role"]["Fn::GetAtt"][0])
    on_deltas = [s for s in granted if deltas in json.dumps(s["Resource"])]
    assert [sorted(s["Action"]) for s in on_deltas] == [
        ["dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    ]
    assert on_deltas[0]["Resource"] == {"Fn::GetAtt": [deltas, "Arn"]}  # the table, not its indexes
    tags = [s for s in granted if any("Tagging" in a for a in s["Action"])]
    assert [sorted(s["Action"]) for s in tags] == [["s3:GetObjectTagging", "s3:GetObjectVersionTagging"]]
    assert json.dumps(tags[0]["Resource"]).endswith('/incoming/*"]]}')


def test_the_importer_is_told_its_deltas_table_record_age_and_array_length(template: dict[str, Any]) -> None:
    env = importer(template)["Properties"]["Environment"]["Variables"]
    deltas, _ = table_keyed_by(template, "pk")
    assert env["DELTAS_TABLE"] == {"Ref": deltas}
    assert (env["DELTA_MAX_AGE_DAYS"], env["MAX_ARRAY_LENGTH"]) == ("30", "25")
    assert template["Outputs"]["DeltasTableName"]["Value"] == {"Ref": deltas}


def test_without_deltas_there_is_no_table_no_grant_and_no_table_name() -> None:
    import aws_cdk as cdk

    import app as app_module
    from tests.infra.conftest import ROOT

    context = {
        **json.loads((ROOT / "cdk.json").read_text())["context"],
        "aws:cdk:bundling-stacks": [],
        "import:deltas": False,
        "bulkUpload:deliverToBraze": True,
    }
    app = app_module.build_app(cdk.App(context=context))
    stacks = {c.stack_name: c for c in app.node.children if isinstance(c, cdk.Stack)}
    template = cdk.assertions.Template.from_stack(stacks["BrazePipelines-Import"]).to_json()
    assert [
        t["Properties"]["KeySchema"][0]["AttributeName"] for t in resources(template, "AWS::DynamoDB::Table").values()
    ] == ["run_id"]
    env = importer(template)["Properties"]["Environment"]["Variables"]
    assert "DELTAS_TABLE" not in env and "DeltasTableName" not in template["Outputs"]
    rendered = json.dumps(template) + json.dumps(
        cdk.assertions.Template.from_stack(
            stacks["BrazePipelines-BulkUpload"], skip_cyclical_dependencies_check=True
        ).to_json()
    )
    assert "BatchGetItem" not in rendered and "Tagging" not in rendered


@pytest.mark.parametrize(
    ("context", "problem"),
    [
        ({"import:deltaMaxAgeDays": "0"}, "deltaMaxAgeDays"),
        ({"import:maxArrayLength": "0"}, "maxArrayLength"),
        ({"import:maxArrayLength": "501"}, "maxArrayLength"),
        ({"import:deltas": "maybe"}, "import:deltas"),
    ],
)
def test_delta_settings_are_validated(context: dict[str, str], problem: str) -> None:
    from stacks.config import AppConfig, ConfigError

    with pytest.raises(ConfigError, match=problem):
        AppConfig.from_context(context.get)


def test_delta_settings_default_to_on_thirty_days_and_arrays_of_25() -> None:
    from stacks.config import AppConfig

    config = AppConfig.from_context({}.get).importer
    assert (config.deltas, config.delta_max_age_days, config.max_array_length) == (True, 30, 25)
    chosen = AppConfig.from_context(
        {"import:deltas": "false", "import:deltaMaxAgeDays": "7", "import:maxArrayLength": "500"}.get
    ).importer
    assert (chosen.deltas, chosen.delta_max_age_days, chosen.max_array_length) == (False, 7, 500)
