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


def test_bedrock_is_limited_to_the_configured_model(template: dict[str, Any]) -> None:
    for handler in ("currents_personalizer.handler.handler", "currents_personalizer.generator_handler.handler"):
        _, granted = actions_of(template, handler)
        bedrock = [s for s in granted if s["Action"] == "bedrock:InvokeModel"]
        assert len(bedrock) == 1
        assert "foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0" in json.dumps(bedrock[0]["Resource"])
        assert "*" not in json.dumps(bedrock[0]["Resource"]).replace("bedrock:*::", "")


def test_currents_notification_fan_out_and_dead_letters(template: dict[str, Any]) -> None:
    config = one(template, "Custom::S3BucketNotifications")["Properties"]["NotificationConfiguration"]
    rules = [
        {r["Name"]: r["Value"] for r in c["Filter"]["Key"]["FilterRules"]}
        for c in config["LambdaFunctionConfigurations"]
    ]
    assert rules == [{"prefix": "currents/", "suffix": ".avro"}]
    mapping = one(template, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert (
        mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        and mapping["ScalingConfig"]["MaximumConcurrency"] == 4
    )
    queues = resources(template, "AWS::SQS::Queue").values()
    assert any("RedrivePolicy" in q["Properties"] for q in queues)
    metrics = {a["Properties"].get("MetricName") for a in resources(template, "AWS::CloudWatch::Alarm").values()}
    assert {"ApproximateNumberOfMessagesVisible", "Errors", "Capped"} <= metrics


def test_content_table_indexes_the_external_id_and_expires_items(template: dict[str, Any]) -> None:
    table = one(template, "AWS::DynamoDB::Table")["Properties"]
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "by-external-id"
    assert table["TimeToLiveSpecification"]["AttributeName"] == "expires_at"
