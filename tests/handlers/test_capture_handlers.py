"""The capture functions against moto: the authorizer with tokens moto's Cognito issues, the API
function putting onto a bus whose rule moto evaluates, and the post-confirmation trigger."""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jwt
import moto
import pytest
from moto import mock_aws

from sandbox.importer import FakeContext

pytestmark = pytest.mark.usefixtures("aws_env")
ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/v1/POST/event"
MOTO_JWKS = Path(moto.__file__).parent / "cognitoidp" / "resources" / "jwks-public.json.gz"
PASSWORD = "Capture-Passw0rd!"


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from client_capture import authorizer_handler, settings

    keys = jwt.PyJWKSet.from_json(gzip.decompress(MOTO_JWKS.read_bytes()).decode())
    monkeypatch.setattr(authorizer_handler, "_signing_key", lambda kid: keys[kid].key)
    with mock_aws():
        idp = boto3.client("cognito-idp")
        pool_id = idp.create_user_pool(
            PoolName="capture", Schema=[{"Name": "external_id", "AttributeDataType": "String", "Mutable": True}]
        )["UserPool"]["Id"]
        client_id = idp.create_user_pool_client(
            UserPoolId=pool_id, ClientName="app", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
        )["UserPoolClient"]["ClientId"]
        for name, external_id in (("ana", "braze-ana"), ("bo", None)):
            attributes = [{"Name": "custom:external_id", "Value": external_id}] if external_id else []
            idp.admin_create_user(UserPoolId=pool_id, Username=name, UserAttributes=attributes)
            idp.admin_set_user_password(UserPoolId=pool_id, Username=name, Password=PASSWORD, Permanent=True)
        monkeypatch.setenv("USER_POOL_ID", pool_id)
        monkeypatch.setenv("APP_CLIENT_IDS", client_id)
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        settings.authorizer_settings.cache_clear()
        authorizer_handler._cognito.cache_clear()
        authorizer_handler._EXTERNAL_IDS.clear()
        yield {"pool_id": pool_id, "client_id": client_id}
        settings.authorizer_settings.cache_clear()
        authorizer_handler._cognito.cache_clear()


def sign_in(client_id: str, username: str) -> dict[str, str]:
    auth = boto3.client("cognito-idp").initiate_auth(
        ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH", AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD}
    )
    return dict(auth["AuthenticationResult"])


def authorize(headers: dict[str, str]) -> dict[str, Any]:
    from client_capture.authorizer_handler import handler

    decision: dict[str, Any] = handler({"type": "REQUEST", "headers": headers, "methodArn": ARN}, FakeContext(5))
    return decision


def test_a_signed_in_user_is_allowed_with_their_external_id_in_either_header_form(pool: dict[str, str]) -> None:
    access = sign_in(pool["client_id"], "ana")["AccessToken"]
    for header in (access, f"Bearer {access}"):
        decision = authorize({"Authorization": header})
        assert decision["policyDocument"]["Statement"][0] == {
            "Action": "execute-api:Invoke",
            "Effect": "Allow",
            "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/v1/*",
        }
        assert decision["context"] == {"external_id": "braze-ana"}


def test_the_external_id_is_looked_up_once_per_container_not_per_request(
    pool: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from client_capture import authorizer_handler

    calls = []
    real = authorizer_handler._cognito()
    monkeypatch.setattr(
        real, "admin_get_user", lambda **kw: calls.append(kw) or boto3.client("cognito-idp").admin_get_user(**kw)
    )
    access = sign_in(pool["client_id"], "ana")["AccessToken"]
    for _ in range(5):
        assert authorize({"Authorization": access})["context"] == {"external_id": "braze-ana"}
    assert len(calls) == 1


def test_a_user_without_an_external_id_is_denied(pool: dict[str, str]) -> None:
    access = sign_in(pool["client_id"], "bo")["AccessToken"]
    assert authorize({"Authorization": access})["policyDocument"]["Statement"][0]["Effect"] == "Deny"


def test_an_old_token_of_a_deleted_user_does_not_act_as_a_new_user_with_the_same_username(
    pool: dict[str, str],
) -> None:
    from client_capture import authorizer_handler

    idp = boto3.client("cognito-idp")
    old = sign_in(pool["client_id"], "ana")["AccessToken"]
    assert authorize({"Authorization": old})["context"] == {"external_id": "braze-ana"}
    idp.admin_delete_user(UserPoolId=pool["pool_id"], Username="ana")
    idp.admin_create_user(UserPoolId=pool["pool_id"], Username="ana",
                          UserAttributes=[{"Name": "custom:external_id", "Value": "braze-new-ana"}])  # fmt: skip
    idp.admin_set_user_password(UserPoolId=pool["pool_id"], Username="ana", Password=PASSWORD, Permanent=True)
    authorizer_handler._EXTERNAL_IDS.clear()  # the container's memory has expired
    decision = authorize({"Authorization": old})
    assert decision["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert decision["context"] == {}
    new = sign_in(pool["client_id"], "ana")["AccessToken"]
    assert authorize({"Authorization": new})["context"] == {"external_id": "braze-new-ana"}


def test_a_disabled_user_is_denied(pool: dict[str, str]) -> None:
    from client_capture import authorizer_handler

    access = sign_in(pool["client_id"], "ana")["AccessToken"]
    boto3.client("cognito-idp").admin_disable_user(UserPoolId=pool["pool_id"], Username="ana")
    authorizer_handler._EXTERNAL_IDS.clear()
    assert authorize({"Authorization": access})["policyDocument"]["Statement"][0]["Effect"] == "Deny"


def test_the_id_token_a_missing_header_and_another_clients_token_are_unauthorized(pool: dict[str, str]) -> None:
    other = boto3.client("cognito-idp").create_user_pool_client(
        UserPoolId=pool["pool_id"], ClientName="other", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    tokens = sign_in(pool["client_id"], "ana")
    for headers in (
        {"Authorization": tokens["IdToken"]},
        {},
        {"Authorization": sign_in(other, "ana")["AccessToken"]},
        {"Authorization": tokens["AccessToken"][:-4] + "AAAA"},
    ):
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            authorize(headers)


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bus whose rule (the stack's pattern) delivers to a queue, so what moto matched can be read."""
    from client_capture import api_handler, settings
    from client_capture.submit import SOURCE

    with mock_aws():
        events = boto3.client("events")
        events.create_event_bus(Name="capture")
        queue_url = boto3.client("sqs").create_queue(QueueName="seen")["QueueUrl"]
        queue_arn = boto3.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        events.put_rule(Name="all", EventBusName="capture", EventPattern=json.dumps({"source": [SOURCE]}))
        events.put_targets(
            Rule="all", EventBusName="capture", Targets=[{"Id": "q", "Arn": queue_arn["Attributes"]["QueueArn"]}]
        )
        monkeypatch.setenv("EVENT_BUS_NAME", "capture")
        settings.api_settings.cache_clear()
        api_handler._events.cache_clear()
        yield queue_url
        settings.api_settings.cache_clear()
        api_handler._events.cache_clear()


def post_event(
    body: Any, external_id: str = "braze-ana", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    status, answer, _ = post_event_with_headers(body, external_id, headers)
    return status, answer


def post_event_with_headers(
    body: Any, external_id: str = "braze-ana", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    from client_capture.api_handler import handler

    event = {
        "httpMethod": "POST", "path": "/event", "body": json.dumps(body), "isBase64Encoded": False,
        "headers": headers or {},
        "requestContext": {"authorizer": {"external_id": external_id, "principalId": "sub"},
                           "requestTimeEpoch": 1_764_504_000_000},
    }  # fmt: skip
    response = handler(event, FakeContext(10))
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"]), response["headers"]


def test_events_reach_the_bus_and_its_rule_with_the_verified_external_id(bus: str) -> None:
    view = {"eventType": "view", "schemaVersion": "1", "data": {"external_id": "x"}}
    body = {"entries": [{"entry": json.dumps(view)}, {"entry": "nope"}]}
    status, answer = post_event(body)
    assert (status, answer["accepted"], [r["index"] for r in answer["refused"]]) == (207, 1, [1])
    messages = boto3.client("sqs").receive_message(QueueUrl=bus, MaxNumberOfMessages=10)["Messages"]
    detail = json.loads(messages[0]["Body"])["detail"]
    assert (detail["external_id"], detail["event_type"], detail["received_at"]) == (
        "braze-ana", "view", "2025-11-30T12:00:00.000Z",
    )  # fmt: skip
    assert detail["data"] == {"external_id": "x"}  # a property, never the identity
    assert len(messages) == 1


def test_a_bus_that_does_not_exist_is_503_with_every_entry_to_resend(bus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from client_capture import settings

    monkeypatch.setenv("EVENT_BUS_NAME", "missing")
    settings.api_settings.cache_clear()
    status, answer = post_event({"events": [{"eventType": "a"}, {"eventType": "b"}]})
    assert status in (207, 503)  # moto answers per entry or for the call; either way nothing is hidden
    assert answer["accepted"] == 0 and len(answer["refused"]) == 2


def test_eventbridge_refusing_the_request_is_a_422_not_a_retry_forever(
    bus: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.stub import Stubber
    from client_capture import api_handler

    events = boto3.client("events")
    stubber = Stubber(events)
    stubber.add_client_error("put_events", "ValidationException", "Total size of the entries is over the limit", 400)
    stubber.add_client_error("put_events", "ThrottlingException", "Rate exceeded", 400)
    monkeypatch.setattr(api_handler, "_events", functools.cache(lambda: events))
    with stubber:
        status, answer = post_event({"events": [{"eventType": "a"}]})
        assert (status, answer["refused"][0]["retryable"]) == (422, False)
        status, answer = post_event({"events": [{"eventType": "a"}]})
        assert (status, answer["refused"][0]["retryable"]) == (503, True)


def test_answers_carry_the_cors_header_for_configured_origins_only(bus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from client_capture import settings

    body = {"events": [{"eventType": "a"}]}
    assert "Access-Control-Allow-Origin" not in post_event_with_headers(body, headers={"Origin": "https://x.com"})[2]
    monkeypatch.setenv("CORS_ORIGINS", "https://shop.example.com,https://m.example.com")
    settings.api_settings.cache_clear()
    allowed = post_event_with_headers(body, headers={"origin": "https://m.example.com"})[2]
    assert allowed["Access-Control-Allow-Origin"] == "https://m.example.com" and allowed["Vary"] == "Origin"
    assert (
        "Access-Control-Allow-Origin"
        not in post_event_with_headers(body, headers={"Origin": "https://evil.example"})[2]
    )
    monkeypatch.setenv("CORS_ORIGINS", "*")
    settings.api_settings.cache_clear()
    assert (
        post_event_with_headers(body, headers={"Origin": "https://any.example"})[2]["Access-Control-Allow-Origin"]
        == "*"
    )


def test_without_an_authorizer_context_nothing_is_put(bus: str) -> None:
    status, _ = post_event({"events": [{"eventType": "a"}]}, external_id="")
    assert status == 403
    assert "Messages" not in boto3.client("sqs").receive_message(QueueUrl=bus)


def test_confirmation_gives_a_new_user_their_sub_as_external_id_and_keeps_an_existing_one(
    pool: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from client_capture import confirmation_handler

    confirmation_handler._cognito.cache_clear()
    idp = boto3.client("cognito-idp")

    def confirm(username: str) -> dict[str, str]:
        attrs = {
            a["Name"]: a["Value"]
            for a in idp.admin_get_user(UserPoolId=pool["pool_id"], Username=username)["UserAttributes"]
        }
        event = {"triggerSource": "PostConfirmation_ConfirmSignUp", "userPoolId": pool["pool_id"],
                 "userName": username, "request": {"userAttributes": attrs}}  # fmt: skip
        assert confirmation_handler.handler(event, FakeContext(5)) == event  # Cognito needs the event back
        after = idp.admin_get_user(UserPoolId=pool["pool_id"], Username=username)["UserAttributes"]
        return {a["Name"]: a["Value"] for a in after}

    bo = confirm("bo")
    assert bo["custom:external_id"] == bo["sub"]
    assert confirm("ana")["custom:external_id"] == "braze-ana"


def test_the_transform_handler_answers_every_record(monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from client_capture.transform_handler import handler

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    good = {"detail": {"external_id": "u", "event_type": "e", "received_at": "2026-11-30T12:00:00Z"}}
    records = [
        {"recordId": "1", "data": base64.b64encode(json.dumps(good).encode()).decode()},
        {"recordId": "2", "data": base64.b64encode(b"[]").decode()},
    ]
    answer = handler({"invocationId": "i", "records": records}, FakeContext(60))
    assert [(r["recordId"], r["result"]) for r in answer["records"]] == [("1", "Ok"), ("2", "ProcessingFailed")]


def test_put_failures_are_counted_apart_from_the_entries_own_refusals(
    bus: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.stub import Stubber
    from client_capture import api_handler
    from client_capture.telemetry import EVENTS_ACCEPTED, EVENTS_PUT_FAILED, EVENTS_REFUSED

    events = boto3.client("events")
    stubber = Stubber(events)
    stubber.add_client_error("put_events", "ThrottlingException", "Rate exceeded", 400)
    monkeypatch.setattr(api_handler, "_events", functools.cache(lambda: events))

    def emitted() -> dict[str, Any]:
        (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
        return {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in emf.items()}

    capsys.readouterr()
    with stubber:
        assert post_event({"events": [{"eventType": "a"}]})[0] == 503
    throttled = emitted()
    assert (throttled[EVENTS_PUT_FAILED.name], throttled[EVENTS_REFUSED.name]) == (1, 1)
    assert throttled["service"] == EVENTS_PUT_FAILED.service
    monkeypatch.setattr(api_handler, "_events", functools.cache(lambda: boto3.client("events")))
    view = json.dumps({"eventType": "view", "schemaVersion": "1", "data": {}})
    assert post_event({"entries": [{"entry": view}, {"entry": "nope"}]})[0] == 207
    malformed = emitted()
    assert (malformed[EVENTS_ACCEPTED.name], malformed[EVENTS_REFUSED.name], malformed[EVENTS_PUT_FAILED.name]) == (
        1, 1, 0,
    )  # fmt: skip
