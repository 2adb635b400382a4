"""Copier Lambda (SQS): one job per message, streamed from CI360's staging into S3.

A transient failure is a partial batch failure (SQS retries, then the dead-letter queue); a
permanent one (expired URL, refused host, bad metadata) marks the job failed and is not retried.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
import httpx
import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from .aws import DONE, FAILED, RETRY, HttpDownload, JobTable, S3Target
from .copier import PermanentFailure, copy
from .settings import get_settings

logger = Logger(service="bulk-upload-copier")
metrics = Metrics(namespace="BrazeBulkUpload", service="bulk-upload-copier")
processor = BatchProcessor(event_type=EventType.SQS)


@cache
def _jobs() -> JobTable:
    return JobTable(boto3.client("dynamodb"), get_settings().jobs_table)


@cache
def _http() -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=False)


def _record(record: SQSRecord) -> str:
    settings = get_settings()
    job = orjson.loads(record.body)
    job_id = job["job_id"]
    if not _jobs().claim(job_id, record.message_id, settings.lease_seconds):
        logger.info("job already copied or being copied", extra={"job_id": job_id})
        return "skipped"
    target = S3Target(boto3.client("s3"), settings.bucket, job_id=job_id)
    try:
        copied = copy(
            job["s3_key"], job["data_url"], job.get("metadata_url"), HttpDownload(_http(), settings.policy()), target
        )
    except PermanentFailure as exc:
        _jobs().finish(job_id, FAILED, error=str(exc))
        metrics.add_metric(name="CopiesFailed", unit=MetricUnit.Count, value=1)
        logger.warning("copy failed for good", extra={"job_id": job_id, "error": str(exc)})
        return "failed"
    except Exception as exc:
        _jobs().finish(job_id, RETRY, error=type(exc).__name__)
        metrics.add_metric(name="CopyRetries", unit=MetricUnit.Count, value=1)
        raise
    header = ",".join(copied.header) if copied.header else "none"
    _jobs().finish(job_id, DONE, size=copied.size, version_id=copied.version_id, header=header, error=None)
    metrics.add_metric(name="CopiesDone", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="BytesCopied", unit=MetricUnit.Bytes, value=copied.size)
    logger.info("copy done", extra={"job_id": job_id, "size": copied.size, "parts": copied.parts})
    return "done"


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(process_partial_response(event=event, record_handler=_record, processor=processor, context=context))
