"""Content API Lambda (API Gateway proxy): ``GET /content/{braze_id}``, ``?user_id=``, ``?external_id=``."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.tracing import annotate, tracer

from .content_api import respond
from .settings import get_settings
from .wiring import content_table

logger = Logger(service="content-api")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # the answer is a user's content
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    path_id = (event.get("pathParameters") or {}).get("braze_id")
    query = event.get("queryStringParameters") or {}
    answer = respond(path_id, query, content_table(), defaults=get_settings().defaults_enabled)
    # Ids are personal data: logs carry a short hash, enough to correlate.
    annotate("status_code", answer.status)
    who = path_id or query.get("user_id") or query.get("external_id") or ""
    logger.info(
        "content served", extra={"status": answer.status, "id_hash": hashlib.sha256(who.encode()).hexdigest()[:12]}
    )
    return {
        "statusCode": answer.status,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": orjson.dumps(answer.body).decode(),
    }
