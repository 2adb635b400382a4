"""Bulk upload under moto: the webhook API, the copier, resumed downloads, idempotence, versions."""

from __future__ import annotations

import gzip
import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import httpcore
import httpx
import orjson
import pytest
from bulk_upload.aws import HttpDownload, JobTable, checked_client
from bulk_upload.copier import PermanentFailure
from bulk_upload.webhook import UrlPolicy
from moto import mock_aws

from sandbox.importer import FakeContext

pytestmark = pytest.mark.usefixtures("aws_env")


class Source:
    """A loopback file server with Range, ETag and If-Match support, like S3's GET: it can cut one
    response mid-body, replace a file while it is being read, or serve a stored Content-Encoding."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.encodings: dict[str, str] = {}
        self.break_once: set[str] = set()
        self.replace_after_break: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.headers: list[dict[str, str]] = []
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                source.requests.append(self.headers.get("Range") or "")
                source.headers.append(dict(self.headers.items()))
                data = source.files.get(self.path)
                if data is None:
                    self.send_response(403)
                    self.end_headers()
                    return
                etag = f'"{hashlib.md5(data).hexdigest()}"'
                if self.headers.get("If-Match") not in (None, etag):
                    self.send_response(412)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                if start and start >= len(data):  # as S3 answers bytes=N- with N at or past the end
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("ETag", etag)
                self.send_header("Content-Type", "text/csv")
                if self.path in source.encodings:
                    self.send_header("Content-Encoding", source.encodings[self.path])
                self.end_headers()
                body = data[start:]
                if self.path in source.break_once:
                    source.break_once.discard(self.path)
                    if self.path in source.replace_after_break:
                        source.files[self.path] = source.replace_after_break.pop(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
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
    from bulk_upload import api_handler, copier_handler, dead_letter_handler, settings

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
        caches = (settings.get_settings, api_handler._jobs, copier_handler._jobs, copier_handler._download,
                  copier_handler._s3, copier_handler._sqs, dead_letter_handler._jobs, api_handler._sqs,
                  api_handler._runs, copier_handler._importer)  # fmt: skip
        for cached in caches:
            cached.cache_clear()
        yield {"s3": s3, "queue": queue}
        for cached in caches:
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


RECEIVED: list[dict[str, Any]] = []


def run_copier(queue: str, times: int = 1) -> list[dict[str, Any]]:
    from bulk_upload.copier_handler import handler

    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    RECEIVED[:] = messages
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
    download = HttpDownload(UrlPolicy(schemes=("http",), hosts=(source.host,)), sleep=lambda s: None)
    staged = download.stream(source.url("/big.csv"))
    assert staged.size == len(data) and b"".join(staged.chunks) == data
    assert download.retries == 1 and source.requests[-1].startswith("bytes=")


def test_names_resolving_inside_the_network_are_refused() -> None:
    policy = UrlPolicy()
    fake_dns = lambda host, port, **kw: [(2, 1, 6, "", ("10.0.0.7", port))]  # noqa: E731
    download = HttpDownload(policy, resolve=fake_dns)
    with pytest.raises(PermanentFailure, match="internal"):
        download.stream("https://bucket.s3.amazonaws.com/x")


class Rebinding:
    """DNS that answers a public address first and an internal one next (a rebinding attack);
    the "public" address is served by the loopback test server so the first connection works."""

    def __init__(self, source: Source) -> None:
        self.answers = iter(["93.184.216.34", "10.0.0.7"])
        self.source = source
        self.connected: list[str] = []
        self.lookups = 0
        inner = httpcore.SyncBackend()
        rebinding = self

        class Loopback(httpcore.NetworkBackend):
            def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
                rebinding.connected.append(host)
                return inner.connect_tcp("127.0.0.1", rebinding.source.port, *args, **kwargs)

        self.backend = Loopback()

    def resolve(self, host: str, port: int, **kwargs: Any) -> list[Any]:
        self.lookups += 1
        return [(2, 1, 6, "", (next(self.answers), port))]


def test_the_copier_connects_to_the_address_it_checked_and_rechecks_on_resume(source: Source) -> None:
    source.files["/rebind.csv"] = b"z" * 2_000_000
    source.break_once.add("/rebind.csv")
    dns = Rebinding(source)
    policy = UrlPolicy(schemes=("http",))
    client = checked_client(policy, resolve=dns.resolve, inner=dns.backend)
    download = HttpDownload(policy, client=client, sleep=lambda s: None)
    staged = download.stream("http://bucket.s3.amazonaws.com/rebind.csv")
    with pytest.raises(PermanentFailure, match="internal"):
        b"".join(staged.chunks)  # the resume's connection resolves to 10.0.0.7: refused, never opened
    assert dns.connected == ["93.184.216.34"] and dns.lookups == 2
    assert source.headers[-1]["Host"] == "bucket.s3.amazonaws.com"  # the name is kept for Host (and SNI)


def test_a_staged_file_replaced_mid_copy_fails_the_job(aws: dict[str, Any], source: Source) -> None:
    source.files["/replaced.csv"] = b"old," * 1_000_000
    source.break_once.add("/replaced.csv")
    source.replace_after_break["/replaced.csv"] = b"new," * 1_000_000
    answer = post(webhook(source, "/replaced.csv", None, "replaced.csv"))[1]
    assert run_copier(aws["queue"]) == [{"batchItemFailures": []}]
    job = status(answer["job_id"])[1]
    assert job["status"] == "failed" and "changed" in job["error"]
    old = f'"{hashlib.md5(b"old," * 1_000_000).hexdigest()}"'
    assert source.headers[-2].get("If-Match") is None and source.headers[-1]["If-Match"] == old
    assert "Uploads" not in aws["s3"].list_multipart_uploads(Bucket="uploads")


def test_a_content_encoded_file_is_copied_as_stored_and_keeps_its_encoding(aws: dict[str, Any], source: Source) -> None:
    data = gzip.compress(b"".join(b"id-%06d,%d\n" % (i, i) for i in range(200_000)))
    source.files["/z.csv.gz"], source.encodings["/z.csv.gz"] = data, "gzip"
    source.break_once.add("/z.csv.gz")  # resumed at a stored-bytes offset
    source.files["/m.csv"] = b"identity_id,n\n"
    answer = post(webhook(source, "/z.csv.gz", "/m.csv", "z.csv"))[1]
    assert run_copier(aws["queue"]) == [{"batchItemFailures": []}]
    stored = aws["s3"].get_object(Bucket="uploads", Key="ci360/z.csv")
    body = stored["Body"].read()
    assert stored["ContentEncoding"] == "gzip" and stored["ContentType"] == "text/csv" and body.endswith(data)
    assert gzip.decompress(body).startswith(b"identity_id,n\nid-000000,0\n")
    assert all(h.get("Accept-Encoding") == "identity" for h in source.headers[-2:])
    assert status(answer["job_id"])[1]["status"] == "done"


def test_a_metadata_file_over_its_limit_is_closed_unread() -> None:
    closed: list[bool] = []

    class Body(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b"x" * 100

        def close(self) -> None:
            closed.append(True)

    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"Content-Length": str(5 << 20)}, stream=Body())
    )
    download = HttpDownload(UrlPolicy(), client=httpx.Client(transport=transport))
    with pytest.raises(PermanentFailure, match="larger"):
        download.small("https://b.s3.amazonaws.com/m.csv", 1 << 20)
    assert closed == [True]


def test_unreadable_metadata_fails_the_job_at_once_with_its_reason(aws: dict[str, Any], source: Source) -> None:
    source.files["/d.csv"] = b"id-1,1\n"
    source.files["/latin1.csv"] = b"identity_id,caf\xe9\n"
    answer = post(webhook(source, "/d.csv", "/latin1.csv", "l.csv"))[1]
    assert run_copier(aws["queue"]) == [{"batchItemFailures": []}]  # not retried
    job = status(answer["job_id"])[1]
    assert job["status"] == "failed" and "not UTF-8" in job["error"]


def test_the_header_field_is_csv_quoted(aws: dict[str, Any], source: Source) -> None:
    source.files["/q.csv"] = b"id-1,a,b\n"
    source.files["/q.json"] = b'[{"columnName": "identity_id"}, {"columnName": "a,b"}, {"columnName": "say \\"hi\\""}]'
    answer = post(webhook(source, "/q.csv", "/q.json", "q.csv"))[1]
    run_copier(aws["queue"])
    assert status(answer["job_id"])[1]["header"] == 'identity_id,"a,b","say ""hi"""'


def test_a_job_that_succeeds_after_a_failure_reads_done_without_the_old_error(
    aws: dict[str, Any], source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bulk_upload import copier_handler

    flaky = HttpDownload(UrlPolicy(schemes=("http",), hosts=(source.host,)), max_attempts=1, sleep=lambda s: None)
    monkeypatch.setattr(copier_handler, "_download", lambda: flaky)
    source.files["/flaky.csv"] = b"f," * 1_000_000
    source.break_once.add("/flaky.csv")
    answer = post(webhook(source, "/flaky.csv", None, "flaky.csv"))[1]
    first = run_copier(aws["queue"])
    assert first[0]["batchItemFailures"]  # transient: SQS retries it
    job = status(answer["job_id"])[1]
    assert job["status"] == "retry" and "RemoteProtocolError" in job["error"]
    redeliver(aws["queue"])
    job = status(answer["job_id"])[1]
    assert job["status"] == "done" and "error" not in job


def test_a_job_whose_message_went_to_the_dead_letter_queue_ends_failed_with_its_reason(
    aws: dict[str, Any], source: Source
) -> None:
    from bulk_upload.dead_letter_handler import handler as dead_letters

    answer = post(webhook(source, "/never.csv", None, "never.csv"))[1]
    job_id = answer["job_id"]
    jobs = JobTable(boto3.client("dynamodb"), "jobs")
    assert jobs.claim(job_id, "m-1", 60) is not None
    jobs.finish(job_id, "retry", owner="m-1", error="attempt 5: ConnectTimeout")
    message = boto3.client("sqs").receive_message(QueueUrl=aws["queue"])["Messages"][0]
    record = {"messageId": "dl-1", "receiptHandle": "r", "body": message["Body"], "attributes": {},
              "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs"}  # fmt: skip
    assert dead_letters({"Records": [record]}, FakeContext(30)) == {"batchItemFailures": []}
    job = status(job_id)[1]
    assert job["status"] == "failed" and "ConnectTimeout" in job["error"] and "gave up" in job["error"]
    assert jobs.claim(job_id, "m-2", 60) is None  # a late redelivery cannot reopen it


def test_a_copier_that_died_mid_copy_is_not_reported_as_copying_forever(aws: dict[str, Any], source: Source) -> None:
    from bulk_upload import api_handler

    answer = post(webhook(source, "/x.csv", None, "x.csv"))[1]
    now = [1_000_000.0]
    jobs = JobTable(boto3.client("dynamodb"), "jobs", clock=lambda: now[0])
    jobs.claim(answer["job_id"], "m-1", 900)
    assert jobs.status(answer["job_id"])["status"] == "copying"  # type: ignore[index]
    now[0] += 901  # the invocation timed out without a word
    job = jobs.status(answer["job_id"])
    assert job is not None and job["status"] == "retry" and "stopped without reporting" in job["error"]
    assert api_handler.JobTable.status is JobTable.status  # the API reads through the same rule


def redeliver(queue: str) -> None:
    """SQS making a failed message visible again at once."""
    sqs = boto3.client("sqs")
    for m in RECEIVED:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    run_copier(queue)


def test_a_name_that_does_not_exist_fails_for_good_and_a_resolver_hiccup_is_retried() -> None:
    def nxdomain(host: str, port: int, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    calls: list[str] = []

    def hiccup(host: str, port: int, **kwargs: Any) -> list[Any]:
        calls.append(host)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(PermanentFailure, match="does not exist"):
        HttpDownload(UrlPolicy(), resolve=nxdomain).stream("https://b.s3.amazonaws.com/x")
    with pytest.raises(httpx.ConnectError):
        HttpDownload(UrlPolicy(), resolve=hiccup, sleep=lambda s: None).stream("https://b.s3.amazonaws.com/x")
    assert len(calls) == 5


def test_resuming_at_the_end_of_the_staged_file_reads_nothing_more(source: Source) -> None:
    source.files["/whole.csv"] = data = b"q" * 1000
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    download = HttpDownload(UrlPolicy(schemes=("http",), hosts=(source.host,)))
    staged = download.stream(source.url("/whole.csv"), offset=len(data), etag=etag)
    assert list(staged.chunks) == [] and staged.size == len(data)
    with pytest.raises(PermanentFailure, match="416"):
        download.stream(source.url("/whole.csv"), offset=len(data) + 5, etag=etag)


def test_a_job_whose_message_could_not_be_queued_ends_failed(
    aws: dict[str, Any], source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bulk_upload import api_handler, settings

    monkeypatch.setenv("COPY_QUEUE_URL", aws["queue"] + "-missing")
    settings.get_settings.cache_clear()
    api_handler._sqs.cache_clear()
    code, answer = post(webhook(source, "/a.csv", None, "a.csv"))
    assert code == 503 and "queue" in answer["message"] and "http" not in answer["message"]
    items = boto3.client("dynamodb").scan(TableName="jobs")["Items"]
    assert [(i["status"]["S"], "could not be queued" in i["error"]["S"]) for i in items] == [("failed", True)]


def test_a_duplicate_of_the_lease_holders_message_is_not_acknowledged(aws: dict[str, Any], source: Source) -> None:
    from bulk_upload.copier_handler import handler

    source.files["/dup.csv"] = b"a,1\n"
    job_id = post(webhook(source, "/dup.csv", None, "dup.csv"))[1]["job_id"]
    m = boto3.client("sqs").receive_message(QueueUrl=aws["queue"])["Messages"][0]
    jobs = JobTable(boto3.client("dynamodb"), "jobs")
    assert jobs.claim(job_id, m["MessageId"], 900)  # the first delivery holds the job
    record = {"messageId": m["MessageId"], "receiptHandle": "r2", "body": m["Body"], "attributes": {},
              "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs"}  # fmt: skip
    out = handler({"Records": [record]}, FakeContext(900))  # SQS delivered it again meanwhile
    assert out == {"batchItemFailures": [{"itemIdentifier": m["MessageId"]}]}
    assert status(job_id)[1]["status"] == "copying"


def test_a_name_over_s3s_key_limit_gets_400(aws: dict[str, Any], source: Source) -> None:
    code, answer = post(webhook(source, "/a.csv", None, "/".join(["\U00020000" * 128] * 3 + ["\U00020000" * 120])))
    assert code == 400 and answer["field"] == "sendParameters.s3_filename"
    code, answer = post(webhook(source, "/a.csv", None, "reports/\u3164/\u3164.csv"))
    assert code == 400 and answer["field"] == "sendParameters.s3_filename"


@pytest.mark.parametrize("code", ["KeyTooLongError", "InvalidArgument", "AccessDenied", "NoSuchBucket"])
def test_s3_client_errors_are_permanent_and_throttling_is_not(code: str) -> None:
    from botocore.exceptions import ClientError
    from bulk_upload.aws import S3Target

    class Refusing:
        def __init__(self, code: str, status: int) -> None:
            self.error = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}

        def create_multipart_upload(self, **_: Any) -> dict[str, Any]:
            raise ClientError(self.error, "CreateMultipartUpload")  # type: ignore[arg-type]

    with pytest.raises(PermanentFailure, match=code):
        S3Target(Refusing(code, 403 if code == "AccessDenied" else 400), "b", job_id="j").start(
            "k", content_type="text/csv", content_encoding=None
        )
    with pytest.raises(ClientError):
        S3Target(Refusing("SlowDown", 503), "b", job_id="j").start("k", content_type="text/csv", content_encoding=None)
    with pytest.raises(ClientError):
        S3Target(Refusing("RequestTimeout", 400), "b", job_id="j").start(
            "k", content_type="text/csv", content_encoding=None
        )


def test_a_copy_completed_before_its_outcome_was_recorded_ends_done_on_redelivery(
    aws: dict[str, Any], source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bulk_upload.aws import S3Target
    from bulk_upload.copier import MIN_PART, Checkpoint

    source.files["/nine.csv"] = data = b"n,9\n" * 10
    job_id = post(webhook(source, "/nine.csv", None, "nine.csv"))[1]["job_id"]
    jobs = JobTable(boto3.client("dynamodb"), "jobs")
    assert jobs.claim(job_id, "earlier", 900)  # an earlier hop handed over with its upload open
    upload = S3Target(aws["s3"], "uploads", job_id=job_id).start("ci360/nine.csv", content_type="text/csv",
                                                                 content_encoding=None)  # fmt: skip
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    checkpoint = Checkpoint(upload.upload_id, MIN_PART, 0, 0, [], etag, checksum=upload.checksum)
    assert jobs.finish(job_id, "handover", owner="earlier", checkpoint=checkpoint.dumps())
    real_finish = JobTable.finish

    def lost_done(self: JobTable, job: str, state: str, **fields: Any) -> bool:
        if state == "done":
            raise ConnectionError("DynamoDB went away")
        return real_finish(self, job, state, **fields)

    monkeypatch.setattr(JobTable, "finish", lost_done)
    assert run_copier(aws["queue"])[0]["batchItemFailures"]  # completed, but the outcome was not recorded
    monkeypatch.setattr(JobTable, "finish", real_finish)
    assert jobs.finish(job_id, "retry", owner=RECEIVED[0]["MessageId"])  # as if its lease had run out
    from bulk_upload.copier_handler import handler

    record = {"messageId": "redelivered", "receiptHandle": "r", "body": RECEIVED[0]["Body"], "attributes": {},
              "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs"}  # fmt: skip
    assert handler({"Records": [record]}, FakeContext(900)) == {"batchItemFailures": []}
    job = status(job_id)[1]
    assert job["status"] == "done" and job["size"] == len(data) and "error" not in job
    assert aws["s3"].get_object(Bucket="uploads", Key="ci360/nine.csv")["Body"].read() == data


def test_parts_go_to_s3_over_https_unsigned_with_their_crc32(monkeypatch: pytest.MonkeyPatch) -> None:
    # TLS protects the bytes in transit and the CRC32 checks them: hashing every part again with
    # SHA-256 for the signature would only cost CPU. No request leaves the process.
    import base64
    import zlib

    from bulk_upload import copier_handler, settings
    from bulk_upload.aws import S3Target

    for name, value in {"UPLOAD_BUCKET": "uploads", "JOBS_TABLE": "jobs", "COPY_QUEUE_URL": "q",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x",
                        "AWS_SECRET_ACCESS_KEY": "x"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    settings.get_settings.cache_clear()
    copier_handler._s3.cache_clear()
    s3 = copier_handler._s3()
    copier_handler._s3.cache_clear()
    sent: list[dict[str, str]] = []

    class Sent(Exception):
        pass

    def answer(request: Any, **_: Any) -> None:
        sent.append({k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})
        raise Sent  # nothing leaves the process

    s3.meta.events.register("before-send.s3.UploadPart", answer)
    data = bytearray(b"id-1,1\n" * 100_000)
    with pytest.raises(Sent):
        S3Target(s3, "uploads", job_id="j").resume("k", "u-1", checksum="CRC32").part(data, 1)
    assert sent[0]["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert sent[0]["x-amz-checksum-crc32"] == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_a_landed_copy_reports_its_duration_bytes_and_outcome_under_the_declared_names(
    aws: dict[str, Any], source: Source, capsys: pytest.CaptureFixture[str]
) -> None:
    from bulk_upload.telemetry import BYTES_COPIED, COPIES_DONE, COPY_DURATION

    source.files["/timed.csv"] = b"id-1,1\n"
    assert post(webhook(source, "/timed.csv", None, "timed.csv"))[0] == 202
    capsys.readouterr()
    run_copier(aws["queue"])
    emf = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(emf) == 1 and emf[0]["service"] == COPY_DURATION.service

    def values(name: str) -> list[float]:
        value = emf[0][name]
        return value if isinstance(value, list) else [value]

    assert len(values(COPY_DURATION.name)) == 1 and values(COPY_DURATION.name)[0] >= 0
    assert values(BYTES_COPIED.name) == [7] and values(COPIES_DONE.name) == [1]
    units = {m["Name"]: m["Unit"] for m in emf[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert (units[COPY_DURATION.name], units[BYTES_COPIED.name]) == ("Milliseconds", "Bytes")
