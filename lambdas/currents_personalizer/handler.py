"""Personalizer Lambda: a Currents Avro file lands in S3; its events are merged into each user's
activity profile, and users with new activity get one generation scheduled after the settle window.

It never calls the model: every generation runs in the generator function, whose concurrency the
queue's event source bounds (``currents:generationConcurrency``).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import asdict
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.tracing import annotate, tracer

from .aws import HourlyBudget, SqsQueue
from .events import event_type_from_key, read_records
from .generators import OfflineGenerator
from .personalize import Personalizer, Report
from .settings import get_settings
from .telemetry import FILE_METRICS, NAMESPACE, PERSONALIZER
from .wiring import content_generator, content_table, sqs_client

logger = Logger(service=PERSONALIZER)
metrics = Metrics(namespace=NAMESPACE, service=PERSONALIZER)


@cache
def _personalizer() -> Personalizer:
    settings = get_settings()
    return Personalizer(
        table=content_table(),
        generator=content_generator(),
        fallback=OfflineGenerator(),
        policy=settings.policy(),
        settings=settings.personalize(),
        budget=HourlyBudget(boto3.client("dynamodb"), settings.content_table, settings.hourly_cap),
        queue=SqsQueue(sqs_client(), settings.queue_url) if settings.queue_url else None,
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    s3 = boto3.client("s3")
    total = Report()
    for record in event.get("Records", []):
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        event_type = event_type_from_key(key)
        if event_type is None or not key.endswith(".avro"):
            logger.warning("not a Currents event file; ignored", extra={"key": key})
            continue
        target: dict[str, Any] = {"Bucket": record["s3"]["bucket"]["name"], "Key": key}
        if record["s3"]["object"].get("versionId"):
            target["VersionId"] = record["s3"]["object"]["versionId"]
        body = s3.get_object(**target)["Body"]
        report = _personalizer().process_file(read_records(body), event_type, context.aws_request_id)
        logger.info("file merged", extra={"key": key, "event_type": event_type, **asdict(report)})
        total.add(report)
    for field, spec in FILE_METRICS.items():
        metrics.add_metric(name=spec.name, unit=spec.unit, value=getattr(total, field))
    annotate("files", len(event.get("Records", [])))
    annotate("users", total.users)
    annotate("scheduled", total.scheduled)
    return {"report": asdict(total)}
