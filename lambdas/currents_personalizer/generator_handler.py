"""Generator Lambda: one generation per scheduled user, from their merged activity profile.

The queue's event source bounds how many run at once (``currents:generationConcurrency``) and each
invocation handles its batch one message at a time, so that setting bounds every model call. A
generation that fails (the model down past its retries, within the claim and the function's time)
is logged with the service's error code, counted in ``Failed`` (alarmed) and reported as a partial
batch failure: SQS delivers it again later, and after its receive limit it waits in the dead-letter
queue (alarmed too).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from typing import Any

import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.tracing import annotate, tracer

from .bedrock import ATTEMPT_SECONDS, BedrockGenerator
from .handler import _personalizer
from .personalize import decode_message, error_code
from .telemetry import BEDROCK_LATENCY, BEDROCK_THROTTLES, GENERATOR, NAMESPACE, NO_TIME_LEFT, OUTCOME_METRICS

logger = Logger(service=GENERATOR)
metrics = Metrics(namespace=NAMESPACE, service=GENERATOR)
processor = BatchProcessor(event_type=EventType.SQS)
_outcomes: Counter[str] = Counter()
_failures: dict[str, str] = {}  # message id -> why its generation failed: an error code, no user data
_context: dict[str, Any] = {}
SAFETY_SECONDS = 10  # left to record the outcome and answer before the function's timeout


class GenerationFailed(Exception):
    pass


class NoTimeLeft(Exception):
    """Too little of the function's time is left to start a model call: SQS delivers it again."""


def last_failures() -> dict[str, str]:
    """Why each message of the last batch that failed did, by message id (the sandbox shows them; Lambda
    reads ``batchItemFailures`` only). Kept past a batch whose every message failed, which Powertools
    answers by raising."""
    return dict(_failures)


def _record(record: SQSRecord) -> str:
    try:
        return _generate(record)
    except (GenerationFailed, NoTimeLeft) as exc:
        _failures[record.message_id] = str(exc)
        raise
    except Exception as exc:
        _failures[record.message_id] = error_code(exc)
        raise


def _generate(record: SQSRecord) -> str:
    user_id = decode_message(orjson.loads(record.body))
    context = _context.get("lambda")
    deadline = None
    if context is not None:
        usable = context.get_remaining_time_in_millis() / 1000 - SAFETY_SECONDS
        deadline = time.time() + usable
        if usable < ATTEMPT_SECONDS:
            _outcomes["no_time_left"] += 1
            metrics.add_metric(name=NO_TIME_LEFT.name, unit=NO_TIME_LEFT.unit, value=1)
            raise NoTimeLeft("too little time left in this invocation; the message will be delivered again")
    try:
        outcome = _personalizer().generate(user_id, record.message_id, deadline=deadline)
    finally:
        _report_model_calls()
    _outcomes[outcome.name] += 1
    spec = OUTCOME_METRICS[outcome.name]
    metrics.add_metric(name=spec.name, unit=spec.unit, value=1)
    if outcome.name == "failed":
        # No user data: the error code and a short hash to correlate retries of one message.
        logger.error(
            "generation failed",
            extra={
                "error_code": outcome.error_code,
                "id_hash": hashlib.sha256(user_id.encode()).hexdigest()[:12],
            },
        )
        raise GenerationFailed(f"the model call failed ({outcome.error_code}); the message will be retried")
    return outcome.name


def _report_model_calls() -> None:
    """Each Converse call's latency and the throttled calls since the last report (none offline)."""
    generator = _personalizer().generator
    if not isinstance(generator, BedrockGenerator):
        return
    for latency in generator.take_latencies():
        metrics.add_metric(name=BEDROCK_LATENCY.name, unit=BEDROCK_LATENCY.unit, value=latency)
    throttles, generator.throttles = generator.throttles, 0
    metrics.add_metric(name=BEDROCK_THROTTLES.name, unit=BEDROCK_THROTTLES.unit, value=throttles)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _outcomes.clear()
    _failures.clear()
    _context["lambda"] = context
    response: dict[str, Any] = dict(
        process_partial_response(event=event, record_handler=_record, processor=processor, context=context)
    )
    # Lambda reads only batchItemFailures; the outcomes are for logs and the sandbox.
    outcomes = dict(_outcomes)
    for outcome, count in outcomes.items():  # generated, policy_fallbacks, capped, failed, ...: our own names
        annotate(outcome, count)
    annotate("batch_failures", len(response["batchItemFailures"]))
    response["outcomes"] = outcomes
    logger.info("generation batch", extra={"outcomes": outcomes, "failed": len(response["batchItemFailures"])})
    return response
