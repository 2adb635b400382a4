"""The client-capture stack as synthesized: identity, the API and its authorizer, the bus and its
rules, Firehose into the import bucket, dead letters and alarms, least-privilege grants."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from stacks.capture_stack import CAPTURE_SOURCE
from stacks.config import AppConfig, CaptureConfig
from stacks.constructs.braze_importer import SUFFIXES
from tests.infra.conftest import Synth
from tests.infra.test_currents_stack import actions_of
from tests.infra.test_import_stack import one, resources

pytestmark = pytest.mark.xdist_group("synth")


@pytest.fixture(scope="module")
def template(synth: Synth) -> dict[str, Any]:
    return synth.template("-Capture")


def statements_of_role(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    return [
        s
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def role_assumed_by(template: dict[str, Any], service: str) -> str:
    return next(
        k
        for k, r in resources(template, "AWS::IAM::Role").items()
        if r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"].get("Service") == service
    )


def test_the_api_function_and_the_stack_agree_on_the_event_source() -> None:
    from client_capture.submit import SOURCE

    assert SOURCE == CAPTURE_SOURCE


def test_users_carry_an_external_id_they_cannot_write_and_confirmation_sets_it(template: dict[str, Any]) -> None:
    pool = one(template, "AWS::Cognito::UserPool")["Properties"]
    assert {k: v for k, v in pool["Schema"][0].items() if k in ("Name", "AttributeDataType", "Mutable")} == {
        "Name": "external_id",
        "AttributeDataType": "String",
        "Mutable": True,
    }
    assert "PostConfirmation" in pool["LambdaConfig"]
    client = one(template, "AWS::Cognito::UserPoolClient")["Properties"]
    assert set(client["ExplicitAuthFlows"]) == {
        "ALLOW_USER_PASSWORD_AUTH",
        "ALLOW_USER_SRP_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
    }
    assert client["GenerateSecret"] is False and "AllowedOAuthFlows" not in client
    assert "custom:external_id" in client["ReadAttributes"] and "custom:external_id" not in client["WriteAttributes"]
    actions, _ = actions_of(template, "client_capture.confirmation_handler.handler")
    assert {a for a in actions if a.startswith("cognito-idp:")} == {"cognito-idp:AdminUpdateUserAttributes"}


def test_post_event_is_authorized_by_the_jwt_authorizer_with_a_cached_decision(template: dict[str, Any]) -> None:
    method = one(template, "AWS::ApiGateway::Method")["Properties"]
    assert (method["HttpMethod"], method["AuthorizationType"]) == ("POST", "CUSTOM")
    assert "RequestValidatorId" in method and "application/json" in method["RequestModels"]
    authorizer = one(template, "AWS::ApiGateway::Authorizer")["Properties"]
    assert authorizer["Type"] == "REQUEST"
    assert authorizer["IdentitySource"] == "method.request.header.Authorization"
    assert authorizer["AuthorizerResultTtlInSeconds"] == CaptureConfig().authorizer_cache_seconds > 0
    function = one(
        template, "AWS::Lambda::Function", lambda f: f["Properties"]["Handler"].endswith("authorizer_handler.handler")
    )
    env = function["Properties"]["Environment"]["Variables"]
    assert {"USER_POOL_ID", "APP_CLIENT_IDS", "EXTERNAL_ID_ATTRIBUTE"} <= set(env)
    actions, _ = actions_of(template, "client_capture.authorizer_handler.handler")
    assert {a for a in actions if not a.startswith(("logs:", "xray:"))} == {"cognito-idp:AdminGetUser"}
    stage = one(template, "AWS::ApiGateway::Stage")["Properties"]
    assert "AccessLogSetting" in stage and not any(s.get("DataTraceEnabled") for s in stage["MethodSettings"])
    responses = {
        r["Properties"]["ResponseType"] for r in resources(template, "AWS::ApiGateway::GatewayResponse").values()
    }
    assert {"UNAUTHORIZED", "ACCESS_DENIED"} <= responses


def test_the_api_function_may_only_put_events_on_the_capture_bus(template: dict[str, Any]) -> None:
    actions, granted = actions_of(template, "client_capture.api_handler.handler")
    assert {a for a in actions if not a.startswith(("logs:", "xray:"))} == {"events:PutEvents"}
    bus_id = next(iter(resources(template, "AWS::Events::EventBus")))
    put = next(s for s in granted if s["Action"] == "events:PutEvents")
    assert put["Resource"] == {"Fn::GetAtt": [bus_id, "Arn"]}


def test_every_client_event_goes_to_firehose_with_retries_and_a_dead_letter_queue(template: dict[str, Any]) -> None:
    rule = one(template, "AWS::Events::Rule")["Properties"]
    assert rule["EventPattern"] == {"source": [CAPTURE_SOURCE]}
    (target,) = rule["Targets"]
    stream_id = next(iter(resources(template, "AWS::KinesisFirehose::DeliveryStream")))
    assert target["Arn"] == {"Fn::GetAtt": [stream_id, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    dlq_id = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    policy = one(template, "AWS::SQS::QueuePolicy", lambda p: p["Properties"]["Queues"] == [{"Ref": dlq_id}])
    allow = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allow[0]["Principal"] == {"Service": "events.amazonaws.com"}
    assert "aws:SourceArn" in allow[0]["Condition"]["ArnEquals"]
    rule_role = target["RoleArn"]["Fn::GetAtt"][0]
    assert {a for s in statements_of_role(template, rule_role) for a in s["Action"]} == {
        "firehose:PutRecord", "firehose:PutRecordBatch",
    }  # fmt: skip


def test_firehose_writes_gzip_json_lines_where_the_importer_picks_them_up(template: dict[str, Any]) -> None:
    stream = one(template, "AWS::KinesisFirehose::DeliveryStream")["Properties"]
    s3 = stream["ExtendedS3DestinationConfiguration"]
    config = AppConfig()
    incoming = config.importer.incoming_prefix
    assert s3["Prefix"].startswith(f"{incoming}{config.capture.prefix}")
    assert not s3["ErrorOutputPrefix"].startswith(incoming)  # refused events never start an import
    assert s3["CompressionFormat"] == "GZIP" and s3["FileExtension"] == ".jsonl.gz"
    assert s3["FileExtension"].endswith(SUFFIXES)  # the importer's S3 notification takes it
    assert s3["BufferingHints"]["IntervalInSeconds"] <= 60
    assert stream["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] == "AWS_OWNED_CMK"
    (processor,) = s3["ProcessingConfiguration"]["Processors"]
    lambda_arn = next(p["ParameterValue"] for p in processor["Parameters"] if p["ParameterName"] == "LambdaArn")
    transform = lambda_arn["Fn::GetAtt"][0]
    assert resources(template, "AWS::Lambda::Function")[transform]["Properties"]["Handler"].endswith(
        "transform_handler.handler"
    )
    assert s3["BucketARN"] == {"Fn::ImportValue": f"{config.project}-ImportBucketArn"}


def test_firehose_may_write_its_two_prefixes_and_invoke_its_transform_only(template: dict[str, Any]) -> None:
    granted = statements_of_role(template, role_assumed_by(template, "firehose.amazonaws.com"))
    writes = next(s for s in granted if "s3:PutObject" in s["Action"])
    assert set(writes["Action"]) == {"s3:PutObject", "s3:AbortMultipartUpload"}
    text = json.dumps(writes["Resource"])
    assert "incoming/events/capture/*" in text and "capture-errors/*" in text
    every = {a for s in granted for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not any(a in every for a in ("s3:DeleteObject", "s3:GetObject", "s3:*"))
    invoke = next(s for s in granted if "lambda:InvokeFunction" in s["Action"])
    assert "Fn::GetAtt" in invoke["Resource"]


def test_every_dead_letter_queue_and_function_has_an_alarm_and_forwarding_is_off_by_default(
    template: dict[str, Any],
) -> None:
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    watched_queues = {
        d["Value"]["Fn::GetAtt"][0]
        for a in alarms
        if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        for d in a["Dimensions"]
    }
    queues = set(resources(template, "AWS::SQS::Queue"))
    assert queues == watched_queues
    functions = set(resources(template, "AWS::Lambda::Function"))
    watched_functions = {d["Value"]["Ref"] for a in alarms if a.get("MetricName") == "Errors" for d in a["Dimensions"]}
    assert functions == watched_functions
    assert "DeliveryToS3.DataFreshness" in {a.get("MetricName") for a in alarms}
    assert all(a.get("AlarmActions") for a in alarms)
    assert not resources(template, "AWS::Events::ApiDestination")


def test_forwarding_and_cors_when_configured() -> None:
    """One more small synthesis, of the Capture stack alone, with the optional parts switched on."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    from stacks.capture_stack import CaptureStack

    capture = CaptureConfig(
        forward_event_types="loyaltypurchase, refund",
        forward_endpoint="https://example.zendesk.com/api/v2/tickets",
        forward_secret_name="capture/helpdesk",
        forward_rate_per_second=5,
        cors_origins="https://shop.example.com, https://m.example.com",
    )
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    stack = CaptureStack(app, "Forward", config=AppConfig(capture=capture), import_bucket_export="Test-ImportBucketArn")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    template = app.synth().get_stack_by_name("Forward").template  # raises on an unacknowledged cdk-nag finding
    destination = one(template, "AWS::Events::ApiDestination")["Properties"]
    assert destination["InvocationEndpoint"] == capture.forward_endpoint
    assert destination["InvocationRateLimitPerSecond"] == 5
    connection = one(template, "AWS::Events::Connection")["Properties"]
    api_key = connection["AuthParameters"]["ApiKeyAuthParameters"]
    assert api_key["ApiKeyName"] == "Authorization" and "capture/helpdesk" in json.dumps(api_key["ApiKeyValue"])
    rules = [r["Properties"] for r in resources(template, "AWS::Events::Rule").values()]
    forward = next(r for r in rules if "detail" in r["EventPattern"])
    assert forward["EventPattern"] == {
        "source": [CAPTURE_SOURCE],
        "detail": {"event_type": ["loyaltypurchase", "refund"]},
    }
    (target,) = forward["Targets"]
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert stack.forward_dead_letters is not None
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    assert len([a for a in alarms if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"]) == 2
    # CORS: the preflight answers the configured origins; POST keeps the authorizer.
    methods = {
        m["Properties"]["HttpMethod"]: m["Properties"] for m in resources(template, "AWS::ApiGateway::Method").values()
    }
    assert methods["POST"]["AuthorizationType"] == "CUSTOM" and methods["OPTIONS"]["AuthorizationType"] == "NONE"
    preflight = json.dumps(methods["OPTIONS"]["Integration"])
    assert "https://shop.example.com" in preflight and "Authorization" in preflight
    receiver = one(
        template, "AWS::Lambda::Function", lambda f: f["Properties"]["Handler"].endswith("api_handler.handler")
    )
    assert (
        receiver["Properties"]["Environment"]["Variables"]["CORS_ORIGINS"]
        == "https://shop.example.com,https://m.example.com"
    )
    refusals = [r["Properties"] for r in resources(template, "AWS::ApiGateway::GatewayResponse").values()]
    # A gateway response cannot choose among origins: with two configured, it names none rather than
    # echoing whatever origin asked.
    assert refusals and all(
        "method.request.header.Origin" not in json.dumps(r.get("ResponseParameters") or {}) for r in refusals
    )


@pytest.mark.parametrize(
    ("origins", "header"),
    [
        ([], None),
        (["https://shop.example.com"], "'https://shop.example.com'"),
        (["*"], "'*'"),
        (["https://shop.example.com", "https://m.example.com"], None),
    ],
)
def test_refusals_name_only_a_configured_origin(origins: list[str], header: str | None) -> None:
    from stacks.capture_stack import refusal_cors_origin

    assert refusal_cors_origin(origins) == header


def test_every_gateway_response_of_every_stack_renders_valid_json(synth: Synth) -> None:
    """API Gateway substitutes ``$context.error.messageString`` with a quoted JSON string and other
    variables as they are; whatever a template holds must then parse as JSON."""
    substitutes = {
        "$context.error.messageString": json.dumps('User is "not" authorized'),
        "$context.error.message": "User is not authorized",
        "$context.error.responseType": "UNAUTHORIZED",
        "$context.requestId": "c0ffee",
    }
    seen = 0
    for path in synth.template_files():
        template = json.loads(path.read_text())
        for response in resources(template, "AWS::ApiGateway::GatewayResponse").values():
            for body in (response["Properties"].get("ResponseTemplates") or {}).values():
                for variable in sorted(substitutes, key=len, reverse=True):
                    body = body.replace(variable, substitutes[variable])
                assert isinstance(json.loads(body), dict), (path.name, body)
                seen += 1
    assert seen >= 2  # the capture API's 401 and 403 at least
