"""``POST /event`` (Lambda proxy): clients' events onto the capture bus, with an honest answer for
every entry (see :mod:`client_capture.submit`). The external id is the authorizer's, never the body's."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from botocore.exceptions import BotoCoreError, ClientError
from pipeline_common.tracing import annotate, tracer

from .settings import api_settings
from .submit import BusUnavailable, submit
from .telemetry import API_SERVICE, EVENTS_ACCEPTED, EVENTS_PUT_FAILED, EVENTS_REFUSED, NAMESPACE

logger = Logger(service=API_SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=API_SERVICE)


@cache
def _events() -> Any:
    return boto3.client("events")


def put_events(entries: Any) -> list[str | None]:
    try:
        answer = _events().put_events(Entries=list(entries))
    except ClientError as exc:
        raise BusUnavailable(str(exc.response.get("Error", {}).get("Code") or "error")) from None
    except BotoCoreError as exc:
        raise BusUnavailable(type(exc).__name__) from None
    return [e.get("ErrorCode") for e in answer.get("Entries", [])]


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    origin = next((v for k, v in (event.get("headers") or {}).items() if k.lower() == "origin"), None)
    cors = api_settings().allowed_origin(origin)
    external_id = str(((event.get("requestContext") or {}).get("authorizer") or {}).get("external_id") or "")
    if not external_id:  # only reachable when the method is deployed without its authorizer
        return _json(403, {"message": "no verified user"}, cors)
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    status, answer = submit(
        raw,
        external_id=external_id,
        received_at=_received_at(event),
        bus_name=api_settings().event_bus_name,
        put_events=put_events,
    )
    if "accepted" in answer:
        put_failed = sum(1 for r in answer["refused"] if r.get("retryable"))
        metrics.add_metric(name=EVENTS_ACCEPTED.name, unit=EVENTS_ACCEPTED.unit, value=answer["accepted"])
        metrics.add_metric(name=EVENTS_REFUSED.name, unit=EVENTS_REFUSED.unit, value=len(answer["refused"]))
        metrics.add_metric(name=EVENTS_PUT_FAILED.name, unit=EVENTS_PUT_FAILED.unit, value=put_failed)
    logger.info("events received", extra={"status": status, "accepted": answer.get("accepted")})
    annotate("status_code", status)
    annotate("accepted", int(answer.get("accepted") or 0))
    annotate("refused", len(answer.get("refused") or []))
    return _json(status, answer, cors)


def _received_at(event: dict[str, Any]) -> str:
    """When API Gateway received the request (its ``requestTimeEpoch``), else now; ISO 8601 UTC."""
    epoch_ms = (event.get("requestContext") or {}).get("requestTimeEpoch")
    when = datetime.fromtimestamp(epoch_ms / 1000, UTC) if isinstance(epoch_ms, int | float) else datetime.now(UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(status: int, body: dict[str, Any], cors: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if cors:
        headers |= {"Access-Control-Allow-Origin": cors, "Vary": "Origin"}
    return {"statusCode": status, "headers": headers, "body": json.dumps(body)}
