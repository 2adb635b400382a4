"""Firehose's data transformation: each EventBridge event from the capture bus becomes one line of
JSON Lines, a Braze custom event the importer sends. An event that cannot become a valid Braze
event is returned as ``ProcessingFailed``: Firehose writes it to the stream's error output prefix
(outside the importer's incoming prefix), never dropped silently."""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from pipeline_common.tracing import annotate, tracer

from .events import Invalid, braze_event, dumps, loads
from .telemetry import EVENTS_FAILED_TRANSFORM, EVENTS_TRANSFORMED, NAMESPACE, TRANSFORM_SERVICE

logger = Logger(service=TRANSFORM_SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=TRANSFORM_SERVICE)


def transform_record(record: dict[str, Any]) -> dict[str, Any]:
    # Everything that can fail for one record's content stays inside the try: one bad record is
    # ProcessingFailed, never an exception that fails the whole batch.
    try:
        event = loads(base64.b64decode(record["data"]))
        line = (dumps(braze_event(event)) + "\n").encode("utf-8")
    except (ValueError, RecursionError, Invalid) as exc:
        reason = exc.reason if isinstance(exc, Invalid) else "the record is not a JSON event Braze takes"
        logger.warning("event refused", extra={"record_id": record.get("recordId"), "reason": reason})
        return {"recordId": record["recordId"], "result": "ProcessingFailed", "data": record["data"]}
    return {"recordId": record["recordId"], "result": "Ok", "data": base64.b64encode(line).decode()}


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = [transform_record(r) for r in event.get("records", [])]
    failed = sum(r["result"] == "ProcessingFailed" for r in records)
    metrics.add_metric(name=EVENTS_TRANSFORMED.name, unit=EVENTS_TRANSFORMED.unit, value=len(records) - failed)
    metrics.add_metric(name=EVENTS_FAILED_TRANSFORM.name, unit=EVENTS_FAILED_TRANSFORM.unit, value=failed)
    annotate("records", len(records))
    annotate("failed", failed)
    return {"records": records}
