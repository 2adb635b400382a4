"""Generator Lambda: users fanned out through SQS, generated at the pace of the model's quota.

A message whose generation fails (the model down past its retries) is reported as a partial batch
failure: SQS delivers it again later, and after its receive limit it waits in the dead-letter queue.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Any

import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from .handler import _personalizer
from .personalize import Personalizer, decode_activity

logger = Logger(service="currents-generator")
metrics = Metrics(namespace="BrazeCurrents", service="currents-generator")
processor = BatchProcessor(event_type=EventType.SQS)
_outcomes: Counter[str] = Counter()


class GenerationFailed(Exception):
    pass


@cache
def _generator() -> Personalizer:
    return _personalizer()


def _record(record: SQSRecord) -> str:
    activity = decode_activity(orjson.loads(record.body))
    outcome = _generator().generate_one(activity, record.message_id)
    _outcomes[outcome] += 1
    metrics.add_metric(name=outcome.title().replace("_", ""), unit=MetricUnit.Count, value=1)
    if outcome == "failed":
        raise GenerationFailed("generation failed; the message will be retried")
    return outcome


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _outcomes.clear()
    response: dict[str, Any] = dict(
        process_partial_response(event=event, record_handler=_record, processor=processor, context=context)
    )
    # Lambda reads only batchItemFailures; the outcomes are for logs and the sandbox.
    outcomes = dict(_outcomes)
    response["outcomes"] = outcomes
    logger.info("generation batch", extra={"outcomes": outcomes, "failed": len(response["batchItemFailures"])})
    return response
