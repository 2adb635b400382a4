"""Copier Lambda (SQS): one job per message, streamed from CI360's staging into S3.

A transient failure is a partial batch failure (SQS retries, then the dead-letter queue, whose
consumer marks the job failed); a permanent one (expired URL, refused host, bad metadata) marks
the job failed and is not retried. A copy that will not finish before the time limit hands over:
its checkpoint goes into the job record and a new message continues it.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

import boto3
import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from pipeline_common.tracing import annotate, tracer

from .aws import COPYING, DONE, FAILED, HANDOVER, RETRY, HttpDownload, JobTable, S3Target
from .copier import Checkpoint, HandedOver, PermanentFailure, copy, header_line
from .delivery import Importer, check_columns, import_request, run_id
from .settings import get_settings
from .telemetry import (
    BYTES_COPIED,
    COPIES_DONE,
    COPIES_FAILED,
    COPY_DURATION,
    COPY_HANDOVERS,
    COPY_RETRIES,
    IMPORTS_REQUESTED,
    NAMESPACE,
    SERVICE,
)

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@cache
def _jobs() -> JobTable:
    return JobTable(boto3.client("dynamodb"), get_settings().jobs_table)


@cache
def _s3() -> Any:
    # One connection per part in flight, plus the job's own calls. Parts go unsigned over TLS with
    # their CRC32 (S3 checks it): a SHA-256 of every part for the signature would cost more CPU
    # than the rest of the copy (botocore signs payloads whenever the caller gives the checksum).
    pool = max(10, get_settings().parts_in_flight + 2)
    return boto3.client("s3", config=Config(max_pool_connections=pool, s3={"payload_signing_enabled": False}))


@cache
def _sqs() -> Any:
    return boto3.client("sqs")


@cache
def _importer() -> Importer:
    return Importer(boto3.client("lambda"), get_settings().importer_function)


@cache
def _download() -> HttpDownload:
    return HttpDownload(get_settings().policy())


def _record(record: SQSRecord, lambda_context: LambdaContext | None = None) -> str:
    """One copy job; Powertools passes the invocation's context (its time left decides a hand-over)."""
    settings = get_settings()
    message = orjson.loads(record.body)
    job_id = message["job_id"]
    annotate("job_id", str(job_id))  # the receiver's uuid
    owner = record.message_id
    job = _jobs().claim(job_id, owner, settings.lease_seconds)
    if job is None:
        if _jobs().held_by(job_id, owner):
            # A duplicate delivery of the message whose first delivery is still copying: if it were
            # acknowledged, SQS would delete the message and a transient failure of that copy would
            # leave nothing to retry it. Left in the queue, it comes back after the visibility timeout.
            logger.info("job being copied under this message's lease", extra={"job_id": job_id})
            raise DuplicateDelivery(f"job {job_id} is being copied by this message's first delivery")
        logger.info("job already copied or being copied", extra={"job_id": job_id})
        return "skipped"
    if job.get("landed"):
        # The file landed and the job says so; asking the importer is what is left.
        return _deliver(job_id, owner, job["s3_key"], size=int(job["size"]), version_id=job.get("version_id"),
                        header=str(job.get("header") or "none"))  # fmt: skip
    target = S3Target(_s3(), settings.bucket, job_id=job_id)
    checkpoint = Checkpoint.loads(job["checkpoint"]) if job.get("checkpoint") else None
    if checkpoint and checkpoint.hops >= settings.max_hops:
        exc = PermanentFailure(f"the copy did not finish within {settings.max_hops} invocations")
        target.resume(job["s3_key"], checkpoint.upload_id).abort()
        return _failed(job_id, owner, exc)
    if checkpoint is not None:
        # An earlier delivery may have completed the upload and then failed to record it: its
        # multipart upload is gone, so the object (tagged with the job id) is the outcome.
        written = target.written(job["s3_key"])
        if written is not None:
            size, version_id = written
            columns, parts = checkpoint.header, len(checkpoint.parts)
            return _landed(job_id, owner, job["s3_key"], size=size, version_id=version_id, columns=columns, parts=parts)
    margin_ms = settings.handover_seconds * 1000

    def hand_over() -> bool:
        return lambda_context is not None and lambda_context.get_remaining_time_in_millis() < margin_ms

    def braze_ready(columns: list[str] | None) -> None:
        if settings.importer_function:
            check_columns(columns, settings.braze_id_column)

    started = time.monotonic()
    try:
        result = copy(
            message["s3_key"], message["data_url"], message.get("metadata_url"), _download(), target,
            checkpoint=checkpoint, hand_over=hand_over, in_flight=settings.parts_in_flight,
            buffer_budget=_buffer_budget(lambda_context), check_columns=braze_ready,
        )  # fmt: skip
    except PermanentFailure as exc:
        return _failed(job_id, owner, exc)
    except Exception as exc:
        attempt = (record.raw_event.get("attributes") or {}).get("ApproximateReceiveCount", "?")
        _jobs().finish(job_id, RETRY, owner=owner, error=f"attempt {attempt}: {type(exc).__name__}")
        metrics.add_metric(name=COPY_RETRIES.name, unit=COPY_RETRIES.unit, value=1)
        raise
    elapsed_ms = (time.monotonic() - started) * 1000
    metrics.add_metric(name=COPY_DURATION.name, unit=COPY_DURATION.unit, value=elapsed_ms)
    if isinstance(result, HandedOver):
        state = result.checkpoint
        if not _jobs().finish(job_id, HANDOVER, owner=owner, checkpoint=result.stored, copied=state.written):
            raise RuntimeError("lost the job's lease before handing over")
        _sqs().send_message(QueueUrl=settings.queue_url, MessageBody=record.body)
        metrics.add_metric(name=COPY_HANDOVERS.name, unit=COPY_HANDOVERS.unit, value=1)
        logger.info("copy handed over", extra={"job_id": job_id, "copied": state.written, "hops": state.hops})
        return "handed over"
    return _landed(
        job_id, owner, message["s3_key"], size=result.size, version_id=result.version_id, columns=result.header,
        parts=result.parts,
    )  # fmt: skip


def _landed(
    job_id: str, owner: str, key: str, *, size: int, version_id: str | None, columns: list[str] | None, parts: int
) -> str:
    header = header_line(columns).decode().rstrip("\n") if columns else "none"
    metrics.add_metric(name=BYTES_COPIED.name, unit=BYTES_COPIED.unit, value=size)
    logger.info("copy landed", extra={"job_id": job_id, "size": size, "parts": parts})
    if not get_settings().importer_function:
        return _done(job_id, owner, size=size, version_id=version_id, header=header)
    # Recorded before the importer is asked: a retry from here asks again (the run id makes a
    # second request a duplicate run), and never copies the file a second time.
    fields = {"size": size, "version_id": version_id, "header": header, "landed": 1}
    if not _jobs().finish(job_id, COPYING, owner=owner, **fields, error=None, checkpoint=None, copied=None):
        raise RuntimeError("lost the job's lease before recording the landed file")
    return _deliver(job_id, owner, key, size=size, version_id=version_id, header=header)


def _deliver(job_id: str, owner: str, key: str, *, size: int, version_id: str | None, header: str) -> str:
    """Ask the importer to send the landed file to Braze; the job names the import's run."""
    settings = get_settings()
    if not settings.importer_function:
        # Delivery was turned off after the file landed: the copy is what is left of the job.
        logger.info("delivery to Braze is off; the landed file is not imported", extra={"job_id": job_id})
        return _done(job_id, owner, size=size, version_id=version_id, header=header)
    if version_id is None:
        # Without a version the run id would be the same for every file of this name.
        return _failed(job_id, owner, PermanentFailure("the upload bucket must be versioned to deliver to Braze"))
    try:
        _importer().request(import_request(settings.bucket, key, version_id, settings.braze_id_column))
    except PermanentFailure as exc:
        return _failed(job_id, owner, exc)
    except Exception as exc:
        _jobs().finish(job_id, RETRY, owner=owner, error=f"the importer was not reached: {type(exc).__name__}")
        metrics.add_metric(name=COPY_RETRIES.name, unit=COPY_RETRIES.unit, value=1)
        raise
    run = run_id(settings.bucket, key, version_id)
    metrics.add_metric(name=IMPORTS_REQUESTED.name, unit=IMPORTS_REQUESTED.unit, value=1)
    return _done(job_id, owner, size=size, version_id=version_id, header=header, import_run_id=run)


def _done(job_id: str, owner: str, *, size: int, version_id: str | None, header: str, **more: str) -> str:
    _jobs().finish(
        job_id, DONE, owner=owner, size=size, version_id=version_id, header=header, error=None,
        checkpoint=None, copied=None, **more,
    )  # fmt: skip
    metrics.add_metric(name=COPIES_DONE.name, unit=COPIES_DONE.unit, value=1)
    logger.info("copy done", extra={"job_id": job_id, "size": size, **more})
    return "done"


class DuplicateDelivery(Exception):
    """Reported as a batch item failure: the message stays in the queue."""


def _buffer_budget(context: LambdaContext | None) -> int | None:
    """What part buffers may use: 60% of the function's memory (the rest: Python, boto3, httpx)."""
    memory = getattr(context, "memory_limit_in_mb", None)
    return int(memory) * (1 << 20) * 3 // 5 if memory else None


def _failed(job_id: str, owner: str, exc: PermanentFailure) -> str:
    _jobs().finish(job_id, FAILED, owner=owner, error=str(exc), checkpoint=None)
    metrics.add_metric(name=COPIES_FAILED.name, unit=COPIES_FAILED.unit, value=1)
    logger.warning("copy failed for good", extra={"job_id": job_id, "error": str(exc)})
    return "failed"


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(process_partial_response(event=event, record_handler=_record, processor=processor, context=context))
