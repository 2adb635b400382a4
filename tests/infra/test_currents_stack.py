"""The Currents stack and the API Gateway account stack as synthesized."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import Synth
from tests.infra.test_import_stack import one, resources, statements

pytestmark = pytest.mark.xdist_group("synth")


@pytest.fixture(scope="module")
def template(synth: Synth) -> dict[str, Any]:
    return synth.template("-Currents")


def function(template: dict[str, Any], handler: str) -> tuple[str, dict[str, Any]]:
    return next(
        (k, v)
        for k, v in resources(template, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == handler
    )


def actions_of(template: dict[str, Any], handler: str) -> tuple[set[str], list[dict[str, Any]]]:
    _, fn = function(template, handler)
    granted = statements(template, fn["Properties"]["Role"]["Fn::GetAtt"][0])
    actions = {a for s in granted for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    return actions, granted


def test_the_account_cloudwatch_role_exists_once_in_the_app(synth: Synth) -> None:
    accounts = [
        r for path in synth.template_files() for r in json.loads(path.read_text())["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::Account"
    ]  # fmt: skip
    assert len(accounts) == 1


def test_every_method_needs_the_key_and_the_token_authorizer(template: dict[str, Any]) -> None:
    methods = [m["Properties"] for m in resources(template, "AWS::ApiGateway::Method").values()]
    assert methods and all(m["ApiKeyRequired"] and m["AuthorizationType"] == "CUSTOM" for m in methods)
    assert all("RequestValidatorId" in m for m in methods)
    authorizer = one(template, "AWS::ApiGateway::Authorizer")["Properties"]
    assert authorizer["Type"] == "REQUEST" and authorizer["IdentitySource"] == "method.request.header.Authorization"


def test_stage_logs_access_without_data_trace_and_the_plan_throttles(template: dict[str, Any]) -> None:
    stage = one(template, "AWS::ApiGateway::Stage")["Properties"]
    assert "AccessLogSetting" in stage
    assert all(not s.get("DataTraceEnabled", False) for s in stage["MethodSettings"])
    plan = one(template, "AWS::ApiGateway::UsagePlan")["Properties"]
    assert plan["Throttle"] == {"RateLimit": 500, "BurstLimit": 1000}
    one(template, "AWS::ApiGateway::UsagePlanKey")


def test_the_api_function_may_only_read_the_table(template: dict[str, Any]) -> None:
    actions, _ = actions_of(template, "currents_personalizer.api_handler.handler")
    dynamo = {a for a in actions if a.startswith("dynamodb:")}
    assert dynamo == {"dynamodb:GetItem", "dynamodb:Query"}
    assert not any(a.startswith(("s3:", "sqs:", "bedrock:")) for a in actions)


def test_only_the_generator_calls_bedrock_and_only_the_configured_model(template: dict[str, Any]) -> None:
    actions, _ = actions_of(template, "currents_personalizer.handler.handler")
    assert not any(a.startswith(("bedrock:", "aws-marketplace:")) for a in actions)
    _, granted = actions_of(template, "currents_personalizer.generator_handler.handler")
    bedrock = [s for s in granted if s["Action"] == "bedrock:InvokeModel"]
    text = json.dumps(bedrock)
    assert len(bedrock) == 2 and "inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0" in text
    routed = next(s for s in bedrock if "Condition" in s)
    assert ":bedrock:*::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0" in json.dumps(routed["Resource"])
    assert "bedrock:InferenceProfileArn" in json.dumps(routed["Condition"])


def test_first_invocation_marketplace_subscription_is_granted_for_the_model_only(template: dict[str, Any]) -> None:
    _, granted = actions_of(template, "currents_personalizer.generator_handler.handler")
    market = [s for s in granted if "aws-marketplace" in json.dumps(s["Action"])]
    assert len(market) == 1
    assert sorted(market[0]["Action"]) == ["aws-marketplace:Subscribe", "aws-marketplace:ViewSubscriptions"]
    assert market[0]["Condition"] == {"ForAnyValue:StringEquals": {"aws-marketplace:ProductId": ["prod-xdkflymybwmvi"]}}


def test_generation_concurrency_bounds_every_bedrock_call(template: dict[str, Any]) -> None:
    mapping = one(template, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == 4  # currents:generationConcurrency
    env = [f["Properties"]["Environment"]["Variables"] for f in resources(template, "AWS::Lambda::Function").values()
           if "CONTENT_TABLE" in f["Properties"].get("Environment", {}).get("Variables", {})]  # fmt: skip
    assert env and not any("GENERATION_CONCURRENCY" in e or "MAX_INLINE_USERS" in e for e in env)
    assert all(e["SETTLE_SECONDS"] == "300" for e in env)


def test_currents_notification_fan_out_and_dead_letters(template: dict[str, Any]) -> None:
    config = one(template, "Custom::S3BucketNotifications")["Properties"]["NotificationConfiguration"]
    rules = [
        {r["Name"]: r["Value"] for r in c["Filter"]["Key"]["FilterRules"]}
        for c in config["LambdaFunctionConfigurations"]
    ]
    assert rules == [{"prefix": "currents/", "suffix": ".avro"}]
    mapping = one(template, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queues = resources(template, "AWS::SQS::Queue").values()
    assert any("RedrivePolicy" in q["Properties"] for q in queues)


def test_the_personalizer_has_an_on_failure_destination_with_an_alarm(template: dict[str, Any]) -> None:
    name, _ = function(template, "currents_personalizer.handler.handler")
    config = one(template, "AWS::Lambda::EventInvokeConfig")["Properties"]
    assert config["FunctionName"] == {"Ref": name} and config["MaximumRetryAttempts"] == 2
    target = config["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    assert template["Resources"][target]["Type"] == "AWS::SQS::Queue"
    watched = [
        a["Properties"]["Dimensions"][0]["Value"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    ]
    assert {"Fn::GetAtt": [target, "QueueName"]} in watched


def test_failures_alarm_and_one_cap_alarm_watch_what_the_generator_emits(template: dict[str, Any]) -> None:
    from currents_personalizer.telemetry import CAPPED, FAILED

    alarms = list(resources(template, "AWS::CloudWatch::Alarm").values())
    for spec in (FAILED, CAPPED):
        (alarm,) = [a for a in alarms if a["Properties"].get("MetricName") == spec.name]
        assert alarm["Properties"]["Namespace"] == spec.namespace
        assert alarm["Properties"]["Dimensions"] == [{"Name": "service", "Value": "currents-generator"}]
    assert not any("Capped" in json.dumps(a["Properties"].get("Metrics", [])) for a in alarms)


def test_content_table_indexes_the_external_id_and_expires_items(template: dict[str, Any]) -> None:
    table = one(template, "AWS::DynamoDB::Table")["Properties"]
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "by-external-id"
    assert table["TimeToLiveSpecification"]["AttributeName"] == "expires_at"
