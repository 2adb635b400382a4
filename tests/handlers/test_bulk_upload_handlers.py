"""Bulk upload under moto: the webhook API, the copier, resumed downloads, idempotence, versions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import httpx
import orjson
import pytest
from bulk_upload.aws import HttpDownload
from bulk_upload.copier import PermanentFailure
from bulk_upload.webhook import UrlPolicy
from moto import mock_aws

from sandbox.importer import FakeContext

pytestmark = pytest.mark.usefixtures("aws_env")


class Source:
    """A loopback file server with Range support that can cut one response mid-body."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.break_once: set[str] = set()
        self.requests: list[str] = []
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                source.requests.append(self.headers.get("Range") or "")
                data = source.files.get(self.path)
                if data is None:
                    self.send_response(403)
                    self.end_headers()
                    return
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if self.path in source.break_once:
                    source.break_once.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"


@pytest.fixture(scope="module")
def source() -> Iterator[Source]:
    running = Source()
    yield running
    running.server.shutdown()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, source: Source) -> Iterator[dict[str, Any]]:
    from bulk_upload import api_handler, copier_handler, settings

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="uploads")
        s3.put_bucket_versioning(Bucket="uploads", VersioningConfiguration={"Status": "Enabled"})
        boto3.client("dynamodb").create_table(
            TableName="jobs",
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        queue = boto3.client("sqs").create_queue(QueueName="copies")["QueueUrl"]
        for name, value in {
            "UPLOAD_BUCKET": "uploads", "JOBS_TABLE": "jobs", "COPY_QUEUE_URL": queue,
            "ALLOWED_URL_SCHEMES": "https,http", "ALLOWED_URL_HOSTS": source.host,
        }.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        for cached in (settings.get_settings, api_handler._jobs, copier_handler._jobs):
            cached.cache_clear()
        yield {"s3": s3, "queue": queue}
        for cached in (settings.get_settings, api_handler._jobs, copier_handler._jobs):
            cached.cache_clear()


def post(body: Any) -> tuple[int, dict[str, Any]]:
    from bulk_upload.api_handler import handler

    event = {"httpMethod": "POST", "body": body if isinstance(body, str) else orjson.dumps(body).decode()}
    response = handler(event, FakeContext(5))
    return response["statusCode"], orjson.loads(response["body"])


def status(job_id: str) -> tuple[int, dict[str, Any]]:
    from bulk_upload.api_handler import handler

    response = handler({"httpMethod": "GET", "pathParameters": {"job_id": job_id}}, FakeContext(5))
    return response["statusCode"], orjson.loads(response["body"])


def run_copier(queue: str, times: int = 1) -> list[dict[str, Any]]:
    from bulk_upload.copier_handler import handler

    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    envelope = {"attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs"}
    records = [
        {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], **envelope}
        for m in messages
    ]
    return [handler({"Records": records}, FakeContext(900)) for _ in range(times)]


def webhook(source: Source, data: str, metadata: str | None, name: str) -> dict[str, Any]:
    urls = {"dataFile": source.url(data)} | ({"metadataFile": source.url(metadata)} if metadata else {})
    return {"presignedUrls": urls, "sendParameters": {"s3_filename": name, "campaign": "x"}}


def test_webhook_to_object_with_header_and_a_recurring_name_keeps_versions(aws: dict[str, Any], source: Source) -> None:
    source.files["/d1.csv"] = b"id-1,10\nid-2,20\n"
    source.files["/m.json"] = (
        b'[{"columnName": "identity_id", "dataType": "STRING"}, {"columnName": "score", "dataType": "NUMBER"}]'
    )
    code, answer = post(webhook(source, "/d1.csv", "/m.json", "weekly.csv"))
    assert code == 202 and answer["s3_key"] == "ci360/weekly.csv"
    assert run_copier(aws["queue"]) == [{"batchItemFailures": []}]
    assert (
        aws["s3"].get_object(Bucket="uploads", Key="ci360/weekly.csv")["Body"].read()
        == b"identity_id,score\nid-1,10\nid-2,20\n"
    )
    code, job = status(answer["job_id"])
    assert code == 200 and job["status"] == "done" and job["header"] == "identity_id,score" and job["size"] == 34
    source.files["/d2.csv"] = b"id-3,30\n"
    post(webhook(source, "/d2.csv", None, "weekly.csv"))  # next week's run, same name
    run_copier(aws["queue"])
    versions = aws["s3"].list_object_versions(Bucket="uploads", Prefix="ci360/weekly.csv")["Versions"]
    assert len(versions) == 2


def test_the_same_job_delivered_twice_writes_one_object(aws: dict[str, Any], source: Source) -> None:
    source.files["/once.csv"] = b"a,1\n"
    code, answer = post(webhook(source, "/once.csv", None, "once.csv"))
    assert code == 202
    run_copier(aws["queue"], times=2)  # SQS delivered the message twice
    versions = aws["s3"].list_object_versions(Bucket="uploads", Prefix="ci360/once.csv")["Versions"]
    assert len(versions) == 1 and status(answer["job_id"])[1]["header"] == "none"


def test_a_failed_copy_leaves_no_multipart_upload_and_is_recorded(aws: dict[str, Any], source: Source) -> None:
    code, answer = post(webhook(source, "/expired.csv", None, "gone.csv"))  # the server answers 403
    assert code == 202
    assert run_copier(aws["queue"]) == [{"batchItemFailures": []}]  # permanent: not retried
    assert "Uploads" not in aws["s3"].list_multipart_uploads(Bucket="uploads")
    job = status(answer["job_id"])[1]
    assert job["status"] == "failed" and "403" in job["error"]


def test_bad_requests_get_400_naming_the_field_without_urls(aws: dict[str, Any], source: Source) -> None:
    assert post("not json")[0] == 400
    code, answer = post(webhook(source, "/x.csv", None, "../../escape.csv"))
    assert code == 400 and answer["field"] == "sendParameters.s3_filename"
    code, answer = post(
        {"presignedUrls": {"dataFile": "https://evil.example.com/x?sig=secret"}, "sendParameters": {"s3_filename": "a"}}
    )
    assert code == 400 and answer["field"] == "presignedUrls.dataFile" and "secret" not in orjson.dumps(answer).decode()
    assert status("not-a-job")[0] == 400
    assert status("8d3c2b4e-1111-4222-8333-944455556666")[0] == 404


def test_a_download_that_breaks_is_resumed_and_byte_identical(source: Source) -> None:
    data = bytes(range(256)) * 40_000  # 10 MB
    source.files["/big.csv"] = data
    source.break_once.add("/big.csv")
    download = HttpDownload(httpx.Client(), UrlPolicy(schemes=("http",), hosts=(source.host,)), sleep=lambda s: None)
    length, chunks = download.stream(source.url("/big.csv"))
    assert length == len(data) and b"".join(chunks) == data
    assert download.retries == 1 and source.requests[-1].startswith("bytes=")


def test_names_resolving_inside_the_network_are_refused() -> None:
    policy = UrlPolicy()
    fake_dns = lambda host, port: [(2, 1, 6, "", ("10.0.0.7", port))]  # noqa: E731
    download = HttpDownload(httpx.Client(), policy, resolve=fake_dns)
    with pytest.raises(PermanentFailure, match="internal"):
        download.stream("https://bucket.s3.amazonaws.com/x")
