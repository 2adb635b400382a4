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


def test_personalizer_generates_once_per_user_and_is_idempotent(aws: dict[str, Any]) -> None:
    from currents_personalizer.handler import handler

    key = upload(aws["s3"], users=6, events=90)
    report = handler(s3_event(key), FakeContext(60))["report"]
    assert (report["records"], report["users"], report["generated"]) == (90, 6, 6)
    again = handler(s3_event(key), FakeContext(60))["report"]  # S3 delivered the notification twice
    assert again["generated"] == 0 and again["skipped_fresh"] == 6


def test_large_files_fan_out_and_the_generator_reports_partial_failures(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from currents_personalizer import generator_handler
    from currents_personalizer.handler import handler

    monkeypatch.setenv("GENERATION_QUEUE_URL", aws["queue"])
    monkeypatch.setenv("MAX_INLINE_USERS", "3")
    clear_caches()
    key = upload(aws["s3"], users=12, events=60)
    assert handler(s3_event(key), FakeContext(60))["report"]["queued"] == 12
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10)["Messages"]
    envelope = {"attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs"}
    records = [
        {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], **envelope}
        for m in messages
    ]
    records[0]["body"] = orjson.dumps({**orjson.loads(records[0]["body"]), "newest_time": "not a time"}).decode()
    result = generator_handler.handler({"Records": records}, FakeContext(60))
    assert result["batchItemFailures"] == [{"itemIdentifier": records[0]["messageId"]}]


def test_content_api_proxy_answers(aws: dict[str, Any]) -> None:
    from currents_personalizer.api_handler import handler as api
    from currents_personalizer.handler import handler

    handler(s3_event(upload(aws["s3"], users=1, events=5)), FakeContext(60))
    hit = api({"pathParameters": {"braze_id": "braze-00000"}, "queryStringParameters": None}, FakeContext(5))
    body = orjson.loads(hit["body"])
    assert hit["statusCode"] == 200 and body["default"] is False and body["external_id"] == "ユーザー-ü-0"
    typed = api(
        {"pathParameters": None, "queryStringParameters": {"user_id": "braze-00000", "format": "dynamodb"}},
        FakeContext(5),
    )
    assert orjson.loads(typed["body"])["Item"]["data"]["M"]["heading"]["S"]
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
