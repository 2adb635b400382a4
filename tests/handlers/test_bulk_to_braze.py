"""CI360 audiences on to Braze (``bulkUpload:deliverToBraze``): the copier checks the metadata for
the identifier column before copying, lands the file, asks the importer to import it, and the job
names the run; ``GET /bulk-upload/{id}`` shows the import."""

# ruff: noqa: F811 - the fixtures imported from the bulk-upload handler tests are parameters here
from __future__ import annotations

from typing import Any

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError
from braze_importer.runs import run_id_for

from tests.fakes import create_runs_table
from tests.handlers.test_bulk_upload_handlers import (  # noqa: F401 - aws and source are fixtures
    RECEIVED,
    Source,
    aws,
    post,
    redeliver,
    run_copier,
    source,
    status,
    webhook,
)

pytestmark = pytest.mark.usefixtures("aws_env")
JSON_META = orjson.dumps(
    [{"columnName": c, "dataType": "STRING"} for c in ("identity_id", "score", "customer_id", "tier")]
)


def post_audience(source: Source) -> str:
    """A CI360 task whose metadata names customer_id; its job id."""
    source.files["/aud.csv"] = b"i-1,5,c-1,gold\n"
    source.files["/meta"] = JSON_META
    return str(post(webhook(source, "/aud.csv", "/meta", "aud.csv"))[1]["job_id"])


class Importer:
    """Stands in for Lambda's asynchronous Invoke of the importer: records what it was asked."""

    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures = list(failures or [])

    def request(self, event: dict[str, Any]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.requests.append(event)


@pytest.fixture
def delivering(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Importer:
    from bulk_upload import copier_handler, settings

    create_runs_table(boto3.client("dynamodb"), "runs")
    for name, value in (("IMPORTER_FUNCTION", "importer"), ("BRAZE_ID_COLUMN", "customer_id"), ("RUNS_TABLE", "runs")):
        monkeypatch.setenv(name, value)
    settings.get_settings.cache_clear()
    fake = Importer()
    monkeypatch.setattr(copier_handler, "_importer", lambda: fake)
    return fake


@pytest.mark.parametrize(
    "metadata",
    [
        JSON_META,
        b"identity_id,score,customer_id,tier\n",
        b"customer_id,identity_id,score,tier",
        b"identity_id,customer_id",
    ],
)
def test_a_landed_audience_is_handed_to_the_importer_and_the_job_names_its_run(
    aws: dict[str, Any],
    source: Source,
    delivering: Importer,
    metadata: bytes,
) -> None:
    source.files["/aud.csv"] = b"i-1,5,c-1,gold\n"
    source.files["/meta"] = metadata
    job_id = post(webhook(source, "/aud.csv", "/meta", "aud.csv"))[1]["job_id"]
    assert run_copier(aws["queue"]) == [{"batchItemFailures": []}]
    version = aws["s3"].head_object(Bucket="uploads", Key="ci360/aud.csv")["VersionId"]
    (request,) = delivering.requests
    assert request == {
        "action": "import", "bucket": "uploads", "key": "ci360/aud.csv", "version_id": version, "format": "csv",
        "csv": {"id_column": "customer_id", "ignore": ["identity_id"]},
    }  # fmt: skip
    code, job = status(job_id)
    assert code == 200 and job["status"] == "done"
    run = run_id_for("uploads", "ci360/aud.csv", version, None)
    assert job["import"] == {"run_id": run, "status": "starting"}  # asked; the importer has not begun
    doc = {"run_id": run, "status": "continuing", "counters": {"objects_read": 9, "accepted": 7, "rejected": 1,
           "skipped": 1, "requests": 1}, "updated_at": 5.0}  # fmt: skip
    boto3.client("dynamodb").put_item(
        TableName="runs", Item={"run_id": {"S": run}, "doc": {"S": orjson.dumps(doc).decode()}}
    )
    shown = status(job_id)[1]["import"]
    assert shown["status"] == "running" and (shown["accepted"], shown["rejected"], shown["skipped"]) == (7, 1, 1)
    assert shown["failed"] == 0 and "stop_reason" not in shown


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        (b"identity_id,external_id,score", "metadata has no customer_id column"),
        (orjson.dumps([{"columnName": "identity_id", "dataType": "STRING"}]), "metadata has no customer_id column"),
        (None, "no metadata file"),
    ],
)
def test_a_task_without_the_id_column_fails_its_job_and_copies_and_sends_nothing(
    aws: dict[str, Any],
    source: Source,
    delivering: Importer,
    metadata: bytes | None,
    reason: str,
) -> None:
    source.files["/aud.csv"] = b"i-1,c-1,5\n"
    if metadata is not None:
        source.files["/meta"] = metadata
    job_id = post(webhook(source, "/aud.csv", "/meta" if metadata else None, "no-id.csv"))[1]["job_id"]
    assert run_copier(aws["queue"]) == [{"batchItemFailures": []}]  # a permanent failure: not retried
    job = status(job_id)[1]
    assert job["status"] == "failed" and reason in job["error"] and "import" not in job
    assert delivering.requests == []
    assert "Versions" not in aws["s3"].list_object_versions(Bucket="uploads", Prefix="ci360/no-id.csv")
    assert "Uploads" not in aws["s3"].list_multipart_uploads(Bucket="uploads")


def test_an_importer_outage_after_landing_asks_again_and_never_copies_twice(
    aws: dict[str, Any],
    source: Source,
    delivering: Importer,
) -> None:
    throttled = ClientError({"Error": {"Code": "TooManyRequestsException"}}, "Invoke")
    delivering.failures = [throttled]
    job_id = post_audience(source)
    assert run_copier(aws["queue"])[0]["batchItemFailures"]  # left in the queue for a retry
    job = status(job_id)[1]
    assert job["status"] == "retry" and "importer was not reached" in job["error"] and job["size"] > 0
    requests_before = len(source.requests)
    redeliver(aws["queue"])
    assert len(source.requests) == requests_before  # nothing downloaded again
    versions = aws["s3"].list_object_versions(Bucket="uploads", Prefix="ci360/aud.csv")["Versions"]
    assert len(versions) == 1
    assert [r["version_id"] for r in delivering.requests] == [versions[0]["VersionId"]]
    job = status(job_id)[1]
    assert job["status"] == "done" and "error" not in job and job["import"]["run_id"].endswith(versions[0]["VersionId"])


def test_an_importer_that_does_not_exist_fails_the_job_with_the_file_landed(
    aws: dict[str, Any],
    source: Source,
    delivering: Importer,
) -> None:
    from bulk_upload.copier import PermanentFailure

    delivering.failures = [PermanentFailure("the importer could not be asked to import the file (Nope)")]
    job_id = post_audience(source)
    assert run_copier(aws["queue"]) == [{"batchItemFailures": []}]
    job = status(job_id)[1]
    assert job["status"] == "failed" and "importer could not be asked" in job["error"] and job["size"] > 0


def test_the_importer_client_sends_an_asynchronous_invocation_and_tells_permanent_from_transient() -> None:
    from bulk_upload.copier import PermanentFailure
    from bulk_upload.delivery import Importer as LambdaImporter

    class Lambda:
        def __init__(self, answer: Any) -> None:
            self.answer = answer
            self.calls: list[dict[str, Any]] = []

        def invoke(self, **kwargs: Any) -> dict[str, Any]:
            self.calls.append(kwargs)
            if isinstance(self.answer, Exception):
                raise self.answer
            return dict(self.answer)

    ok = Lambda({"StatusCode": 202})
    LambdaImporter(ok, "arn:importer").request({"action": "import"})
    assert ok.calls == [{"FunctionName": "arn:importer", "InvocationType": "Event", "Payload": b'{"action":"import"}'}]
    with pytest.raises(PermanentFailure, match="ResourceNotFoundException"):
        LambdaImporter(Lambda(ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "Invoke")), "f").request({})
    with pytest.raises(ClientError):
        LambdaImporter(Lambda(ClientError({"Error": {"Code": "TooManyRequestsException"}}, "Invoke")), "f").request({})
    with pytest.raises(RuntimeError, match="HTTP 200"):
        LambdaImporter(Lambda({"StatusCode": 200}), "f").request({})


def test_a_landed_job_whose_import_requests_all_failed_says_the_file_landed(
    aws: dict[str, Any],
    source: Source,
    delivering: Importer,
) -> None:
    from bulk_upload.dead_letter_handler import handler as dead_letters

    from sandbox.importer import FakeContext

    delivering.failures = [ClientError({"Error": {"Code": "ServiceException"}}, "Invoke")]
    job_id = post_audience(source)
    assert run_copier(aws["queue"])[0]["batchItemFailures"]
    record = {"messageId": "dl-1", "receiptHandle": "r", "body": RECEIVED[0]["Body"], "attributes": {},
              "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs"}  # fmt: skip
    assert dead_letters({"Records": [record]}, FakeContext(30)) == {"batchItemFailures": []}
    job = status(job_id)[1]
    assert job["status"] == "failed" and job["error"].startswith("the file landed, but every request to import")
    assert "ClientError" in job["error"]


@pytest.mark.parametrize("broken", ["no table", "not json", '["a"]', '{"counters": {"accepted": "x"}}', "off"])
def test_a_jobs_status_answers_200_when_its_import_cannot_be_read(
    aws: dict[str, Any], source: Source, delivering: Importer, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    from bulk_upload import api_handler, settings

    job_id = post_audience(source)
    run_copier(aws["queue"])
    run = status(job_id)[1]["import"]["run_id"]
    if broken == "no table":
        boto3.client("dynamodb").delete_table(TableName="runs")
    elif broken == "off":  # redeployed with deliverToBraze off: no table setting, no grant
        monkeypatch.delenv("RUNS_TABLE")
        settings.get_settings.cache_clear()
        api_handler._runs.cache_clear()
    else:
        boto3.client("dynamodb").put_item(TableName="runs", Item={"run_id": {"S": run}, "doc": {"S": broken}})
    code, job = status(job_id)
    assert code == 200 and job["status"] == "done"
    assert job["import"]["run_id"] == run and job["import"]["status"] == "unknown" and job["import"]["reason"]


def test_a_landed_job_retried_after_delivery_was_turned_off_ends_done_without_an_import(
    aws: dict[str, Any], source: Source, delivering: Importer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bulk_upload import settings

    delivering.failures = [ClientError({"Error": {"Code": "ServiceException"}}, "Invoke")]
    job_id = post_audience(source)
    assert run_copier(aws["queue"])[0]["batchItemFailures"]
    monkeypatch.setenv("IMPORTER_FUNCTION", "")  # redeployed with deliverToBraze off
    settings.get_settings.cache_clear()
    redeliver(aws["queue"])
    job = status(job_id)[1]
    assert job["status"] == "done" and "import" not in job and delivering.requests == []


def test_access_denied_right_after_a_deploy_is_retried_not_final() -> None:
    from bulk_upload.delivery import Importer as LambdaImporter

    class Lambda:
        def invoke(self, **kwargs: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "AccessDeniedException"}}, "Invoke")

    with pytest.raises(ClientError):  # transient: the message is retried (IAM may not have propagated yet)
        LambdaImporter(Lambda(), "f").request({})


def test_an_import_the_importer_never_began_says_so_after_a_while(
    aws: dict[str, Any], source: Source, delivering: Importer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from bulk_upload import api_handler

    job_id = post_audience(source)
    run_copier(aws["queue"])
    assert status(job_id)[1]["import"]["status"] == "starting"
    later = time.time() + api_handler.NOT_STARTED_AFTER + 5
    monkeypatch.setattr(api_handler.time, "time", lambda: later)
    shown = status(job_id)[1]["import"]
    assert shown["status"] == "not_started" and "dead-letter queue" in shown["reason"]
