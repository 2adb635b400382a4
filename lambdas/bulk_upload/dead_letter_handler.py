"""Dead-letter consumer (SQS): a copy message that used up its deliveries ends its job as
``failed``, with the last reason recorded and its multipart upload aborted. Without it a job
whose message gave up would read ``retry`` or ``copying`` forever."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.tracing import annotate, tracer

from .aws import COPYING, DONE, FAILED, JobTable, S3Target
from .copier import Checkpoint
from .settings import get_settings
from .telemetry import COPIES_FAILED, NAMESPACE, SERVICE

logger = Logger(service="bulk-upload-dead-letters")
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
_given_up: list[str] = []  # the job ids of the batch being handled, for its trace
processor = BatchProcessor(event_type=EventType.SQS)


@cache
def _jobs() -> JobTable:
    return JobTable(boto3.client("dynamodb"), get_settings().jobs_table)


def _record(record: SQSRecord) -> str:
    try:
        job_id = str(orjson.loads(record.body)["job_id"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        logger.error("dead letter that is not a copy job", extra={"message_id": record.message_id})
        return "ignored"
    _given_up.append(job_id)
    job = _jobs().get(job_id)
    if job is None or job.get("status") in (DONE, FAILED):
        return "finished already"
    last = job.get("error") or ("the copy never reported back (time limit or crash)" if job.get("status") == COPYING
                                else "no reason recorded")  # fmt: skip
    if job.get("landed"):
        reason = f"the file landed, but every request to import it into Braze failed; last: {last}"
    else:
        reason = f"gave up after every delivery of the copy failed; last: {last}"
    if job.get("checkpoint"):
        upload_id = Checkpoint.loads(str(job["checkpoint"])).upload_id
        try:
            S3Target(boto3.client("s3"), get_settings().bucket, job_id=job_id).resume(job["s3_key"], upload_id).abort()
        except Exception as exc:  # the bucket's lifecycle rule removes it later
            logger.warning(
                "could not abort the multipart upload", extra={"job_id": job_id, "error": type(exc).__name__}
            )
    if _jobs().finish(job_id, FAILED, error=reason, checkpoint=None):
        metrics.add_metric(name=COPIES_FAILED.name, unit=COPIES_FAILED.unit, value=1)
        logger.warning("copy given up", extra={"job_id": job_id, "error": reason})
    return "failed"


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _given_up.clear()
    response = dict(process_partial_response(event=event, record_handler=_record, processor=processor, context=context))
    annotate("job_id", ",".join(_given_up))  # the jobs of this batch (the receiver's uuids)
    return response
