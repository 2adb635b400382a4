"""The Currents handlers under moto: personalizer (S3), generator (SQS), content API, authorizer."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
import fastavro
import orjson
import pytest
from moto import mock_aws

from sandbox import currents_sample
from sandbox.currents import create_content_table
from sandbox.importer import FakeContext

pytestmark = pytest.mark.usefixtures("aws_env")
CUSTOM = "users.behaviors.CustomEvent"


def clear_caches() -> None:
    from currents_personalizer import handler, settings, wiring

    settings.get_settings.cache_clear()
    wiring.content_table.cache_clear()
    wiring.content_generator.cache_clear()
    handler._personalizer.cache_clear()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="currents")
        db = boto3.client("dynamodb")
        create_content_table(db, "content")
        queue = boto3.client("sqs").create_queue(QueueName="generation")["QueueUrl"]
        secret = boto3.client("secretsmanager").create_secret(Name="token", SecretString="s3cret-token")
        monkeypatch.setenv("CONTENT_TABLE", "content")
        monkeypatch.setenv("API_TOKEN_SECRET", secret["ARN"])
        monkeypatch.setenv("GENERATION_QUEUE_URL", queue)
        monkeypatch.setenv("SETTLE_SECONDS", "0")
        monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "BrazeCurrents")
        clear_caches()
        yield {"s3": s3, "queue": queue}
        clear_caches()


def s3_event(key: str) -> dict[str, Any]:
    return {
        "Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "currents"}, "object": {"key": key}}}]
    }


def upload(s3: Any, users: int, events: int) -> str:
    buf = io.BytesIO()
    fastavro.writer(buf, currents_sample.schema(CUSTOM), currents_sample.records(CUSTOM, users, events), codec="snappy")
    key = "currents/" + currents_sample.key(CUSTOM, "2026-11-23-10", "00000")
    s3.put_object(Bucket="currents", Key=key, Body=buf.getvalue())
    return key


def sqs_records(queue: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    envelope = {"attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs"}
    records: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        for m in batch:
            records.append(
                {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], **envelope}
            )
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return records


def test_personalizer_schedules_once_per_user_and_is_idempotent(aws: dict[str, Any]) -> None:
    from currents_personalizer import generator_handler
    from currents_personalizer.handler import handler

    key = upload(aws["s3"], users=6, events=90)
    report = handler(s3_event(key), FakeContext(60))["report"]
    assert (report["records"], report["users"], report["scheduled"], report["generated"]) == (90, 6, 6, 0)
    again = handler(s3_event(key), FakeContext(60))["report"]  # S3 delivered the notification twice
    assert again["scheduled"] == 0 and again["unchanged"] == 6
    records = sqs_records(aws["queue"])
    assert len(records) == 6 and all(set(orjson.loads(r["body"])) == {"user_id"} for r in records)
    result = generator_handler.handler({"Records": records}, FakeContext(60))
    assert result["outcomes"] == {"generated": 6} and result["batchItemFailures"] == []
    redelivered = generator_handler.handler({"Records": records}, FakeContext(60))
    assert redelivered["outcomes"] == {"skipped_fresh": 6}


def test_a_failed_generation_is_logged_with_its_error_code_counted_and_retried(
    aws: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
    from botocore.exceptions import ClientError
    from currents_personalizer import generator_handler
    from currents_personalizer.handler import handler

    class Down:
        model_id = "down"

        def generate(self, activity: Any, *, deadline: float | None = None) -> Any:
            raise ClientError({"Error": {"Code": "ServiceUnavailableException", "Message": "x"}}, "Converse")

    clear_caches()
    monkeypatch.setattr("currents_personalizer.handler.content_generator", lambda: Down())
    handler(s3_event(upload(aws["s3"], users=2, events=4)), FakeContext(60))
    records = sqs_records(aws["queue"])
    records.append({**records[0], "messageId": "garbage", "body": '{"no": "user"}'})
    with pytest.raises(BatchProcessingError):  # every message failed: SQS delivers the whole batch again
        generator_handler.handler({"Records": records}, FakeContext(60))
    failures = [r for r in caplog.records if r.getMessage() == "generation failed"]
    assert [getattr(r, "error_code", None) for r in failures] == ["ServiceUnavailableException"] * 2
    # Why each failed, by message id, kept though Powertools raised: the model's error code, or the
    # exception's type for a message that names no user; never the user's id.
    why = generator_handler.last_failures()
    assert sorted(why.values()) == [
        "ValueError",
        *["the model call failed (ServiceUnavailableException); the message will be retried"] * 2,
    ]
    assert why["garbage"] == "ValueError" and all("braze-" not in reason for reason in why.values())
    assert all("braze-" not in str(r.__dict__) for r in failures)  # no user id in the log
    out = capsys.readouterr().out
    metrics = [orjson.loads(line) for line in out.splitlines() if '"_aws"' in line]
    assert any(m.get("Failed") == [1.0, 1.0] or m.get("Failed") == 2.0 for m in metrics), metrics


def test_content_api_proxy_answers(aws: dict[str, Any]) -> None:
    from currents_personalizer import generator_handler
    from currents_personalizer.api_handler import handler as api
    from currents_personalizer.handler import handler

    handler(s3_event(upload(aws["s3"], users=1, events=5)), FakeContext(60))
    generator_handler.handler({"Records": sqs_records(aws["queue"])}, FakeContext(60))
    hit = api({"pathParameters": {"braze_id": "braze-00000"}, "queryStringParameters": None}, FakeContext(5))
    body = orjson.loads(hit["body"])
    assert hit["statusCode"] == 200 and body["default"] is False and body["external_id"] == "ユーザー-ü-0"
    typed = api(
        {"pathParameters": None, "queryStringParameters": {"user_id": "braze-00000", "format": "dynamodb"}},
        FakeContext(5),
    )
    assert orjson.loads(typed["body"])["Item"]["data"]["M"]["heading"]["S"]
    anonymous = api({"pathParameters": None, "queryStringParameters": {"external_id": ""}}, FakeContext(5))
    assert anonymous["statusCode"] == 200 and orjson.loads(anonymous["body"])["default"] is True
    bad = api({"pathParameters": None, "queryStringParameters": None}, FakeContext(5))
    assert bad["statusCode"] == 400 and hit["headers"]["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("headers", "effect"),
    [
        ({"Authorization": "Bearer s3cret-token"}, "Allow"),
        ({"authorization": "bearer s3cret-token"}, "Allow"),
        ({"Authorization": "Bearer wrong"}, "Deny"),
        ({"Authorization": "s3cret-token"}, "Deny"),
        ({}, "Deny"),
        (None, "Deny"),
    ],
)
def test_authorizer_compares_the_secret_token(aws: dict[str, Any], headers: Any, effect: str) -> None:
    from token_authorizer import handler as authorizer

    authorizer._CACHE.clear()
    arn = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/content/x"
    policy = authorizer.handler({"headers": headers, "methodArn": arn}, None)["policyDocument"]
    assert policy["Statement"][0]["Effect"] == effect
    assert policy["Statement"][0]["Resource"] == "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*"


def test_a_message_is_not_started_without_time_for_a_model_call(aws: dict[str, Any]) -> None:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
    from currents_personalizer import generator_handler
    from currents_personalizer.handler import handler

    handler(s3_event(upload(aws["s3"], users=1, events=2)), FakeContext(60))
    records = sqs_records(aws["queue"])
    with pytest.raises(BatchProcessingError):  # 20 s left: less than one attempt and the margin
        generator_handler.handler({"Records": records}, FakeContext(20))
    assert generator_handler._outcomes == {"no_time_left": 1}
    assert generator_handler.handler({"Records": records}, FakeContext(60))["outcomes"] == {"generated": 1}


def test_the_generator_reports_each_model_call_latency_and_the_throttled_calls(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import ClientError
    from currents_personalizer import generator_handler
    from currents_personalizer.bedrock import BedrockGenerator
    from currents_personalizer.generators import OfflineGenerator
    from currents_personalizer.handler import handler
    from currents_personalizer.settings import get_settings
    from currents_personalizer.telemetry import BEDROCK_LATENCY, BEDROCK_THROTTLES

    answer = {
        "email_title": "Hi",
        "heading": "New for you",
        "details": {"intro": "a", "episode_details": "b", "cta": "c"},
    }

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        def converse(self, **request: Any) -> dict[str, Any]:
            self.calls += 1
            if self.calls == 1:
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Converse")
            return {"output": {"message": {"content": [{"text": orjson.dumps(answer).decode()}]}}}

    def bedrock() -> BedrockGenerator:
        policy = get_settings().policy()
        return BedrockGenerator(Client(), "m", fallback=OfflineGenerator(), policy=policy, sleep=lambda _: None)

    clear_caches()
    monkeypatch.setattr("currents_personalizer.handler.content_generator", bedrock)
    handler(s3_event(upload(aws["s3"], users=1, events=2)), FakeContext(60))
    capsys.readouterr()
    result = generator_handler.handler({"Records": sqs_records(aws["queue"])}, FakeContext(120))
    assert result["outcomes"] == {"generated": 1}
    emf = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(emf) == 1 and emf[0]["service"] == BEDROCK_LATENCY.service
    latencies = emf[0][BEDROCK_LATENCY.name]
    assert isinstance(latencies, list) and len(latencies) == 2  # the throttled call and the answered one
    assert emf[0][BEDROCK_THROTTLES.name] in (1.0, [1.0])
    units = {m["Name"]: m["Unit"] for m in emf[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units[BEDROCK_LATENCY.name] == "Milliseconds"
