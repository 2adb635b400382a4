"""Runs the real bulk-upload handlers against moto server, as CI360, API Gateway and SQS would.

The files are staged in a sandbox "CI360" bucket on moto server and handed over as pre-signed
URLs (the sandbox's allow-list admits moto server's http address, as a deployment would admit S3);
the webhook goes through a front that checks the API key and the token; the copy job is delivered
from the queue to the copier.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import orjson

from .api_front import refused
from .importer import FUNCTION as IMPORTER_FUNCTION
from .importer import TABLE as RUNS
from .importer import FakeContext, ImportSandbox, _environment
from .services import PLACEHOLDER_CREDENTIALS, LocalStack, moto_server, sqs_record

STAGING = "sandbox-ci360-staging"
BUCKET = "sandbox-uploads"
TABLE = "sandbox-upload-jobs"
QUEUE = "sandbox-copies"
TOKEN_SECRET = "sandbox/bulk-upload-token"  # noqa: S105 - the secret's name, not its value
API_KEY = "sandbox-bulk-upload-key"


@dataclass
class BulkUploadSandbox(LocalStack):
    function_env: dict[str, str] = field(default_factory=dict)
    invocation_seconds: float = 900.0  # the copier's time limit, as Lambda's context counts it down
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    endpoint: str | None = None  # a moto server already running (the import sandbox's); None: start one

    def _start(self) -> None:
        endpoint = self.endpoint or self._stack.enter_context(moto_server())
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            **PLACEHOLDER_CREDENTIALS,
            "AWS_DEFAULT_REGION": "us-east-1",
            "UPLOAD_BUCKET": BUCKET,
            "JOBS_TABLE": TABLE,
            "API_TOKEN_SECRET": TOKEN_SECRET,
            "ALLOWED_URL_SCHEMES": "https,http",
            "ALLOWED_URL_HOSTS": urlsplit(endpoint).netloc,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            "POWERTOOLS_LOG_LEVEL": os.environ.get("SANDBOX_LOG_LEVEL", "WARNING"),
        }
        self._stack.enter_context(_environment({**env, **self.function_env}))
        self._stack.callback(clear_caches)
        clear_caches()
        self.s3 = boto3.client("s3")
        self.s3.create_bucket(Bucket=STAGING)
        self.s3.create_bucket(Bucket=BUCKET)
        self.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.sqs = boto3.client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        os.environ["COPY_QUEUE_URL"] = self.queue_url
        boto3.client("secretsmanager").create_secret(Name=TOKEN_SECRET, SecretString=self.token)

    def stage(self, path: Path) -> str:
        """Put a file in the staging bucket, as CI360 does (a ``.gz`` file stored gzip-encoded);
        returns a pre-signed GET URL."""
        key = f"staged/{secrets.token_hex(4)}/{path.name}"
        extra = {"ContentEncoding": "gzip"} if path.suffix == ".gz" else None
        self.s3.upload_file(str(path), STAGING, key, ExtraArgs=extra)
        return str(self.s3.generate_presigned_url("get_object", Params={"Bucket": STAGING, "Key": key}, ExpiresIn=3600))

    def post(
        self, body: dict[str, Any], *, api_key: str = API_KEY, token: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        from bulk_upload.api_handler import handler

        denied = refused("/bulk-upload", "POST", api_key=api_key, expected_key=API_KEY, token=token or self.token)
        if denied:
            return denied
        event = {"httpMethod": "POST", "body": orjson.dumps(body).decode()}
        response = handler(event, FakeContext(29, "sandbox-bulk-upload-api"))
        return int(response["statusCode"]), orjson.loads(response["body"])

    def run_copies(self) -> int:
        """Deliver queued copy messages to the copier, as SQS would (a hand-over queues the next
        one); returns how many invocations ran."""
        invocations = 0
        for _ in range(1000):
            context = FakeContext(self.invocation_seconds, "sandbox-bulk-upload-copier")
            delivered = copy_next(self.sqs, self.queue_url, context)
            if delivered is None:
                return invocations
            invocations += 1
            if not delivered[1]:
                return invocations  # left for a later delivery, as SQS would
        return invocations

    def job(self, job_id: str) -> dict[str, Any]:
        from bulk_upload.api_handler import handler

        event = {"httpMethod": "GET", "pathParameters": {"job_id": job_id}}
        response = handler(event, FakeContext(5, "sandbox-bulk-upload-api"))
        result: dict[str, Any] = orjson.loads(response["body"])
        return result

    def stored(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def copy_next(sqs: Any, queue_url: str, context: FakeContext) -> tuple[dict[str, Any], bool] | None:
    """Deliver the next queued copy message to the copier, as SQS would: None when the queue is
    empty, else the message and whether the copier took it (then it is deleted; a failed one stays
    for a later delivery)."""
    from bulk_upload.copier_handler import handler

    messages = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=1, AttributeNames=["ApproximateReceiveCount"]
    ).get("Messages", [])
    if not messages:
        return None
    message = messages[0]
    result = handler({"Records": [sqs_record(message)]}, context)
    if result["batchItemFailures"]:
        return message, False
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return message, True


def upload(
    data: Path,
    metadata: Path | None,
    name: str,
    *,
    api_key: str = API_KEY,
    invocation_seconds: float = 900.0,
    to_braze: bool = False,
    braze_url: str | None = None,
    braze_api_key: str | None = None,
    braze_id_column: str = "external_id",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The whole flow, as ``python -m sandbox bulk-upload`` prints it. A short ``invocation_seconds``
    makes the copier hand over at every part (its margin is the whole budget). ``to_braze`` runs
    the deployment with ``bulkUpload:deliverToBraze``: the landed file is imported by the real
    importer (into the built-in Braze emulator, or ``braze_url``) and the outcome gains
    ``"import"``, the run's report."""
    short = invocation_seconds < 900.0
    env = {"COPY_HANDOVER_SECONDS": str(invocation_seconds)} if short else {}
    with contextlib.ExitStack() as stack:
        imports: ImportSandbox | None = None
        if to_braze:
            imports = stack.enter_context(
                ImportSandbox(braze_url=braze_url, braze_api_key=braze_api_key, progress=progress)
            )
            env |= {"IMPORTER_FUNCTION": IMPORTER_FUNCTION, "BRAZE_ID_COLUMN": braze_id_column, "RUNS_TABLE": RUNS}
        box = stack.enter_context(
            BulkUploadSandbox(
                invocation_seconds=invocation_seconds, function_env=env,
                endpoint=os.environ["AWS_ENDPOINT_URL"] if imports else None,
            )
        )  # fmt: skip
        urls = {"dataFile": box.stage(data)} | ({"metadataFile": box.stage(metadata)} if metadata else {})
        status, response = box.post({"presignedUrls": urls, "sendParameters": {"s3_filename": name}}, api_key=api_key)
        if status != 202:
            return {"http_status": status, "response": response}
        invocations = box.run_copies()
        report = None
        # The copier's asynchronous invocation of the importer, as Lambda would deliver it
        # (deliver runs every invocation queued after it too).
        if imports is not None and not imports.front.pending.empty():
            _name, request = imports.front.pending.get()
            first = imports.deliver(request)[0]
            run_id = first["runs"][0]["run_id"] if first.get("runs") else None
            report = imports.report(run_id) if run_id else None
        job = box.job(response["job_id"])
        landed = job.get("status") == "done" or job.get("size") is not None
        size = box.s3.head_object(Bucket=BUCKET, Key=response["s3_key"])["ContentLength"] if landed else None
        header = job.get("header")
        stored = imports.emulator.objects() if imports is not None and imports.emulator else None
    outcome = {
        "http_status": status,
        "response": response,
        "job_id": response["job_id"],
        "job_status": job.get("status"),
        "s3_key": response["s3_key"],
        "size": size,
        "header": None if header in (None, "none") else header,
        "copier_invocations": invocations,
    }
    if job.get("error"):
        outcome["error"] = job["error"]
    if to_braze:
        outcome["import_run_id"] = (job.get("import") or {}).get("run_id")
        outcome["import"] = report
        if stored is not None:
            outcome["braze_emulator_stored"] = len(stored)
            outcome["braze_emulator_fields"] = sorted({name for o in stored for name in o["object"]})
    return outcome


def delivered(outcome: dict[str, Any]) -> bool:
    """The file landed and, when it went on to Braze, its import completed with nothing failed."""
    if outcome.get("job_status") != "done":
        return False
    if "import" not in outcome:
        return True
    report = outcome["import"] or {}
    return bool(report.get("status") == "completed" and report.get("failed") == 0 and report.get("ambiguous") == 0)


def failure_reason(outcome: dict[str, Any]) -> str | None:
    """Why the upload was not delivered, in one line; None when it was."""
    if delivered(outcome):
        return None
    if outcome.get("http_status") != 202:
        answer = outcome.get("response") or {}
        return f"the webhook was refused ({outcome.get('http_status')}): {answer.get('message', answer)}"
    if outcome.get("job_status") != "done":
        return f"the copy job ended {outcome.get('job_status')}: {outcome.get('error') or 'no reason recorded'}"
    report = outcome.get("import") or {}
    if not report:
        return "the landed file was not imported: the importer was not invoked"
    error = (report.get("error") or {}).get("message")
    counts = f"{report.get('failed', 0):,} failed, {report.get('ambiguous', 0):,} ambiguous"
    return f"the import of the landed file ended {report.get('status')} ({counts})" + (f": {error}" if error else "")


def clear_caches() -> None:
    for module, names in (
        ("bulk_upload.settings", ("get_settings",)),
        ("bulk_upload.api_handler", ("_jobs", "_runs", "_sqs")),
        ("bulk_upload.copier_handler", ("_jobs", "_download", "_importer", "_s3", "_sqs")),
        ("bulk_upload.dead_letter_handler", ("_jobs",)),
    ):
        if module in sys.modules:
            for name in names:
                getattr(sys.modules[module], name).cache_clear()
    if "token_authorizer.handler" in sys.modules:
        sys.modules["token_authorizer.handler"]._CACHE.clear()
