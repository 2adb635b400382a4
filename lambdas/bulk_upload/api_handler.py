"""Bulk-upload API (API Gateway proxy): ``POST /bulk-upload`` takes CI360's webhook and answers 202
with a job id at once; ``GET /bulk-upload/{job_id}`` tells how the copy went and, for a file delivered to Braze, how its
import stands."""

from __future__ import annotations

import time
import uuid
from functools import cache
from typing import Any

import boto3
import orjson
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.tracing import annotate, tracer

from .aws import FAILED, JobTable
from .delivery import Runs
from .settings import get_settings
from .webhook import BadRequest, object_key, parse

logger = Logger(service="bulk-upload-api")
NOT_STARTED_AFTER = 900  # seconds after the request: an asynchronous invocation starts long before
PUBLIC_JOB_FIELDS = (
    "job_id", "status", "s3_key", "version_id", "size", "copied", "header", "error", "created_at", "updated_at",
)  # fmt: skip


@cache
def _jobs() -> JobTable:
    return JobTable(boto3.client("dynamodb"), get_settings().jobs_table)


@cache
def _runs() -> Runs:
    return Runs(boto3.client("dynamodb"), get_settings().runs_table)


@cache
def _sqs() -> Any:
    return boto3.client("sqs")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    annotate("route", "status" if event.get("httpMethod") == "GET" else "receive")
    if event.get("httpMethod") == "GET":
        return _status((event.get("pathParameters") or {}).get("job_id", ""))
    try:
        return _receive(event)
    except BadRequest as exc:
        logger.info("webhook refused", extra={"field": exc.field})  # never the value: it may be a URL
        return _json(400, {"message": str(exc), "field": exc.field})


def _receive(event: dict[str, Any]) -> dict[str, Any]:
    settings = get_settings()
    try:
        body = orjson.loads(event.get("body") or b"")
    except orjson.JSONDecodeError:
        raise BadRequest("body", "must be JSON") from None
    webhook = parse(body)
    key = object_key(settings.prefix, webhook.sendParameters.s3_filename)
    policy = settings.policy()
    policy.check("presignedUrls.dataFile", webhook.presignedUrls.dataFile)
    if webhook.presignedUrls.metadataFile:
        policy.check("presignedUrls.metadataFile", webhook.presignedUrls.metadataFile)
    job_id = str(uuid.uuid4())
    annotate("job_id", job_id)
    parameters = webhook.sendParameters.model_dump()
    _jobs().create(job_id, key, parameters)
    message = {
        "job_id": job_id,
        "s3_key": key,
        "data_url": webhook.presignedUrls.dataFile,
        "metadata_url": webhook.presignedUrls.metadataFile,
    }
    try:
        _sqs().send_message(QueueUrl=settings.queue_url, MessageBody=orjson.dumps(message).decode())
    except Exception as exc:
        # Without its message nobody would ever copy the job: it must not read "queued" forever.
        reason = f"the copy could not be queued ({type(exc).__name__}); send the webhook again"
        _jobs().finish(job_id, FAILED, error=reason)
        logger.exception("copy not queued", extra={"job_id": job_id})
        return _json(503, {"message": reason, "job_id": job_id})
    logger.info("copy queued", extra={"job_id": job_id, "s3_key": key})
    return _json(202, {"job_id": job_id, "s3_key": key})


def _status(job_id: str) -> dict[str, Any]:
    try:
        uuid.UUID(job_id)
    except ValueError:
        return _json(400, {"message": "job_id: must be a job id", "field": "job_id"})
    job = _jobs().status(job_id)
    if job is None:
        return _json(404, {"message": "no such job"})
    answer = {k: job[k] for k in PUBLIC_JOB_FIELDS if k in job}
    run = job.get("import_run_id")
    if run:
        answer["import"] = shown = _runs().status(str(run))
        asked = int(job.get("updated_at") or 0)
        if shown["status"] == "starting" and time.time() - asked > NOT_STARTED_AFTER:
            # The importer took the request but never began the run: it waits in its dead-letter queue.
            shown["status"] = "not_started"
            shown["reason"] = (
                "the importer has not begun this import; look for its request in the Import stack's dead-letter "
                "queue and send it again"
            )
    return _json(200, answer)


def _json(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": orjson.dumps(body).decode()}
