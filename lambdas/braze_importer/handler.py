"""Importer Lambda: S3 notifications start runs, asynchronous self-invocations continue them.

Events it accepts:
- an S3 ObjectCreated notification (one or more records), or the same through EventBridge
  (``detail-type: Object Created``); S3's ``s3:TestEvent`` and keys outside the incoming prefix
  are answered ``ignored``, never raised (a raise would send the event to the dead-letter queue);
- ``{"action": "continue", "run_id": …, "seq": …}``, sent by the function to itself;
- ``{"action": "resume", "run_id": …, "force": false}``, the operator's command to resume a
  stopped run (``force`` also takes over a run whose invocation died);
- ``{"action": "sweep"}``, sent every few minutes by a schedule: starts queued runs while run
  slots are free (a run queued behind a holder that died starts once its lease runs out);
- ``{"action": "import", "bucket": …, "key": …, "version_id": …, "format": "csv",
  "csv": {"id_column": …, "ignore": […]}}``, another pipeline's file to import where it lies
  (a CI360 audience the bulk-upload copier landed): an ordinary run of that object version, so a
  repeated request is a duplicate and sends nothing.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from pipeline_common.tracing import annotate, tracer

from .aws import (
    DynamoActiveRuns,
    DynamoRunSlots,
    DynamoRunStore,
    DynamoSeekPoints,
    LambdaContinuer,
    S3Outputs,
    S3Source,
    read_api_key,
)
from .braze_http import BrazeHttp, braze_client
from .delta_store import DynamoDeltaStore
from .engine import Counters
from .ports import ObjectRef, SystemClock
from .reader import Format
from .runs import run_tag
from .service import Deps, InvocationResult, handle_continue, handle_resume, handle_start, start_queued
from .settings import get_settings
from .telemetry import (
    DELTA_COMMIT_ERRORS,
    DELTA_LOOKUP_ERRORS,
    EVENTS_IGNORED,
    NAMESPACE,
    OBJECTS_ACCEPTED,
    OBJECTS_AMBIGUOUS,
    OBJECTS_FAILED,
    OBJECTS_READ,
    OBJECTS_REJECTED,
    OBJECTS_UNCHANGED,
    QUEUED_RUNS_STARTED,
    REQUESTS,
    RETRIES,
    RUNS_QUEUED,
    RUNS_STOPPED,
    SERVICE,
    THROTTLED,
    USERS_TOO_LARGE,
    VALUES_READ,
    VALUES_SENT,
    VALUES_SKIPPED,
    MetricSpec,
)

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


@asynccontextmanager
async def _braze() -> AsyncIterator[BrazeHttp]:
    # The key is read for every invocation, not cached per container: after a run stopped on 401/403
    # and the secret was fixed, the resume must use the new key even in a warm container.
    settings = get_settings()
    api_key = read_api_key(boto3.client("secretsmanager"), settings.braze_api_key_secret)
    async with braze_client(
        settings.braze_rest_endpoint,
        api_key,
        max_in_flight=settings.max_in_flight,
        timeout_seconds=settings.request_timeout_seconds,
    ) as client:
        yield client


@cache
def _deps() -> Deps:
    settings = get_settings()
    s3 = boto3.client("s3")
    dynamodb = boto3.client("dynamodb")
    slots = settings.max_concurrent_runs
    source = S3Source(s3)
    max_age = settings.delta_max_age_seconds
    # Records expire as long after their last rewrite as they are trusted: DynamoDB deletes none still in use.
    deltas = None
    if settings.deltas_table:
        # The records' client skips botocore's parameter validation: a quarter of its CPU per write,
        # for requests this module builds itself.
        client = boto3.client("dynamodb", config=Config(parameter_validation=False))
        deltas = DynamoDeltaStore(
            client, settings.deltas_table, ttl_seconds=max_age, transactions=settings.delta_transactions
        )
    return Deps(
        store=DynamoRunStore(dynamodb, settings.runs_table),
        slots=DynamoRunSlots(dynamodb, settings.runs_table, slots) if slots else None,
        seek_points=DynamoSeekPoints(dynamodb, settings.runs_table),
        active_runs=DynamoActiveRuns(dynamodb, settings.runs_table),
        source=source,
        outputs=S3Outputs(s3, settings.bucket),
        continuer=LambdaContinuer(boto3.client("lambda"), settings.function_name),
        braze_factory=_braze,
        clock=SystemClock(),
        policy=settings.policy(),
        layout=settings.layout(),
        max_hops=settings.max_hops,
        csv_type_cast=settings.csv_casts(),
        allow_user_deletes=settings.allow_user_deletes,
        on_counters=_tell,
        deltas=deltas,
        delta_max_age_seconds=max_age,
        delta_max_array=settings.max_array_length,
        # Without deltas every value is sent anyway: no tag to read (nor a grant to read it).
        full_send_requested=source.full_send_requested if deltas is not None else None,
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # responses name the runs' objects
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = _deps()
    margin_ms = get_settings().safety_margin_seconds * 1000

    def keep_going() -> bool:
        return bool(context.get_remaining_time_in_millis() > margin_ms)

    owner = context.aws_request_id
    results: list[InvocationResult] = []
    action = event.get("action")
    annotate("action", str(action or "start") if action in ACTIONS or not action else "unknown")
    if action == "continue":
        results.append(handle_continue(str(event["run_id"]), int(event["seq"]), owner, deps, keep_going))
    elif action == "sweep":
        started = start_queued(deps)
        logger.info("queue swept", extra={"started": len(started)})
        metrics.add_metric(name=QUEUED_RUNS_STARTED.name, unit=QUEUED_RUNS_STARTED.unit, value=len(started))
        return {"runs": [], "sweep": f"started {len(started)}"}
    elif action == "import":
        target, fmt, options = _import_request(event)
        results.append(handle_start(target, owner, deps, keep_going, fmt=fmt, csv_options=options))
    elif action == "resume":
        results.append(handle_resume(str(event["run_id"]), owner, deps, keep_going, force=bool(event.get("force"))))
    elif "Records" in event or event.get("source") == "aws.s3" or event.get("Event") == "s3:TestEvent":
        refs = [_object_ref(record) for record in event.get("Records", [])] if "Records" in event else []
        if event.get("source") == "aws.s3":
            refs = [_eventbridge_ref(event)]
        for ref in refs:
            if ref is None:
                continue
            if not ref.key.startswith(deps.layout.incoming_prefix):
                results.append(InvocationResult(ref.key, "ignored"))  # not ours: never an output file
                continue
            results.append(handle_start(ref, owner, deps, keep_going))
    else:
        raise ValueError("unrecognised event: expected an S3 notification or an action")
    for result in results:
        _record(result)
    _annotate_runs(results)
    if not results:
        metrics.add_metric(name=EVENTS_IGNORED.name, unit=EVENTS_IGNORED.unit, value=1)  # e.g. s3:TestEvent
    return {"runs": [{"run_id": r.run_id, "status": r.status, "report": r.report} for r in results]}


ACTIONS = ("continue", "sweep", "import", "resume")


def _annotate_runs(results: list[InvocationResult]) -> None:
    """The runs' tags (the hash in their report's file name; never the object key) and outcomes, so
    a run's traces are found with ``annotation.run_tag CONTAINS "<tag>"``."""
    runs = [r for r in results if r.status != "ignored"]  # an ignored result's id is only a key
    annotate("runs", len(runs))
    if runs:
        annotate("run_tag", ",".join(run_tag(r.run_id) for r in runs))
        annotate("status", ",".join(sorted({r.status for r in runs})))


def _import_request(event: dict[str, Any]) -> tuple[ObjectRef, Format, dict[str, Any] | None]:
    """The object, format and CSV column rules of an ``import`` action; ValueError when malformed."""
    bucket, key, version = event.get("bucket"), event.get("key"), event.get("version_id")
    if not (isinstance(bucket, str) and bucket and isinstance(key, str) and key):
        raise ValueError("an import needs the object's bucket and key")
    if version is not None and not isinstance(version, str):
        raise ValueError("an import's version_id must be a string")
    try:
        fmt = Format(event.get("format"))
    except ValueError:
        raise ValueError(f"an import's format must be one of {', '.join(f.value for f in Format)}") from None
    options = event.get("csv")
    if options is not None:
        if not isinstance(options, dict):
            raise ValueError("an import's csv rules must be an object")
        id_column, ignore = options.get("id_column"), options.get("ignore", [])
        if fmt is not Format.CSV or not isinstance(id_column, str) or not id_column:
            raise ValueError("an import's csv rules need a CSV file and an id_column")
        if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
            raise ValueError("an import's csv ignore must be a list of column names")
        options = {"id_column": id_column, "ignore": ignore}
    etag = event.get("etag")
    return ObjectRef(bucket, key, version, etag if isinstance(etag, str) else None, None), fmt, options


def _object_ref(record: dict[str, Any]) -> ObjectRef | None:
    s3 = record.get("s3")
    if not s3 or not str(record.get("eventName", "")).startswith("ObjectCreated"):
        return None
    obj = s3["object"]
    return ObjectRef(
        bucket=s3["bucket"]["name"],
        key=urllib.parse.unquote_plus(obj["key"]),
        version_id=obj.get("versionId"),
        etag=obj.get("eTag"),
        size=obj.get("size"),
    )


def _eventbridge_ref(event: dict[str, Any]) -> ObjectRef | None:
    """S3 → EventBridge "Object Created": the key is not URL-encoded there."""
    if event.get("detail-type") != "Object Created":
        return None
    detail = event.get("detail") or {}
    obj = detail.get("object") or {}
    if "key" not in obj or "name" not in (detail.get("bucket") or {}):
        return None
    return ObjectRef(
        bucket=detail["bucket"]["name"],
        key=obj["key"],
        version_id=obj.get("version-id"),
        etag=obj.get("etag"),
        size=obj.get("size"),
    )


def _record(result: InvocationResult) -> None:
    logger.info("run invocation finished", extra={"run_id": result.run_id, "status": result.status})
    if result.report is not None and result.report.get("dry_run"):
        return  # a dry run says what it found in its report: no count, no stopped-run alarm
    _count(result.delta)
    if result.status == "stopped":
        metrics.add_metric(name=RUNS_STOPPED.name, unit=RUNS_STOPPED.unit, value=1)
    if result.status == "queued":
        metrics.add_metric(name=RUNS_QUEUED.name, unit=RUNS_QUEUED.unit, value=1)


def _tell(delta: Counters) -> None:
    """A long run's counts so far, published now (each minute), not all at the invocation's end."""
    _count(delta)
    metrics.flush_metrics()


def _count(delta: Counters) -> None:
    counts: tuple[tuple[MetricSpec, int], ...] = (
        (OBJECTS_READ, delta.objects_read),
        (OBJECTS_ACCEPTED, delta.accepted),
        (OBJECTS_REJECTED, delta.rejected),
        (OBJECTS_FAILED, delta.failed),
        (OBJECTS_AMBIGUOUS, delta.ambiguous),
        (REQUESTS, delta.requests),
        (RETRIES, delta.retries),
        (THROTTLED, delta.throttled),
        (VALUES_READ, delta.values_read),
        (VALUES_SENT, delta.values_sent),
        (VALUES_SKIPPED, delta.values_skipped),
        (OBJECTS_UNCHANGED, delta.objects_unchanged),
        (USERS_TOO_LARGE, delta.users_too_large),
        (DELTA_LOOKUP_ERRORS, delta.delta_lookup_errors),
        (DELTA_COMMIT_ERRORS, delta.delta_commit_errors),
    )
    for spec, value in counts:
        metrics.add_metric(name=spec.name, unit=spec.unit, value=value)
