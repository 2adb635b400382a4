"""Runs the real importer handler against local services, as Lambda would.

The sandbox provisions what the Import stack would (a versioned bucket, the runs table, the
deltas table unless deltas are off, the Braze key secret) on moto server, sets the function's
environment, uploads a file, delivers the S3 notification to the handler and then every
asynchronous self-invocation it makes, in order, each with a fresh context whose clock starts at
``invocation_seconds``.

Several files dropped at once run as Lambda would run them: each invocation in a worker process
of its own (one per file, like concurrent execution environments, so the runs do not share one
interpreter's lock), all against the same bucket, runs table and Braze.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import orjson

from .services import (
    PLACEHOLDER_CREDENTIALS,
    BrazeEmulator,
    LambdaFront,
    LocalStack,
    braze_emulator,
    die_with_parent,
    moto_server,
)  # fmt: skip

REGION = "us-east-1"
BUCKET = "sandbox-import"
TABLE = "sandbox-import-runs"
DELTAS_TABLE = "sandbox-import-deltas"
SECRET = "sandbox/braze-rest-api-key"  # noqa: S105 - the secret's name, not its value
FUNCTION = "sandbox-braze-importer"
INCOMING = "incoming/"
DEFAULT_INVOCATION_SECONDS = 900.0


class FakeContext:
    """The parts of Lambda's context object the handlers use, with a real countdown."""

    def __init__(self, seconds: float, function_name: str = FUNCTION) -> None:
        self._deadline = time.monotonic() + seconds
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 1769
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "sandbox"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class ImportSandbox(LocalStack):
    """Local AWS + Braze for the importer. Use as a context manager."""

    braze_url: str | None = None
    braze_api_key: str | None = None
    invocation_seconds: float = DEFAULT_INVOCATION_SECONDS
    emulator_settings: dict[str, Any] = field(default_factory=dict)
    function_env: dict[str, str] = field(default_factory=dict)
    progress: Callable[[str], None] | None = None
    # Send only what changed (import:deltas); off, the function gets an empty DELTAS_TABLE, as deployed.
    deltas: bool = True

    emulator: BrazeEmulator | None = None
    invocations: int = 0
    _pool: ProcessPoolExecutor | None = field(default=None, init=False, repr=False)
    _pool_size: int = field(default=0, init=False, repr=False)

    def _start(self) -> None:
        endpoint = self._stack.enter_context(moto_server())
        self.front = self._stack.enter_context(LambdaFront())
        if self.braze_url is None:
            self.emulator = self._stack.enter_context(braze_emulator(**self.emulator_settings))
            braze_url = self.emulator.url
            api_key = self.braze_api_key or "sandbox-braze-key"
        else:
            braze_url = self.braze_url
            api_key = self.braze_api_key or ""
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL_LAMBDA": self.front.url,
            **PLACEHOLDER_CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
            "BRAZE_REST_ENDPOINT": braze_url,
            "BRAZE_API_KEY_SECRET": SECRET,
            "RUNS_TABLE": TABLE,
            "IMPORT_BUCKET": BUCKET,
            "INCOMING_PREFIX": INCOMING,
            "SAFETY_MARGIN_SECONDS": str(min(60.0, self.invocation_seconds * 0.25)),
            "DELTAS_TABLE": DELTAS_TABLE if self.deltas else "",
            "DELTA_MAX_AGE_DAYS": "30",
            # moto copies the whole table for every action of a transaction: records one user at a time.
            "DELTA_TRANSACTIONS": "false",
            # What the workspace keeps of an array: the emulator's setting when it is the workspace.
            "MAX_ARRAY_LENGTH": str(self.emulator_settings.get("max_array_length", 25) if self.emulator else 25),
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            "POWERTOOLS_LOG_LEVEL": os.environ.get("SANDBOX_LOG_LEVEL", "WARNING"),
            **self.function_env,
        }
        self._stack.enter_context(_environment(env))
        self._stack.callback(_clear_handler_caches)
        self._stack.push(self._leave_pool)  # before the services it talks to stop
        _clear_handler_caches()
        self.s3 = boto3.client("s3")
        self.s3.create_bucket(Bucket=BUCKET)
        self.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        self.dynamodb = boto3.client("dynamodb")
        self.dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "run_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        if self.deltas:
            create_deltas_table(self.dynamodb, DELTAS_TABLE)
        self.secrets = boto3.client("secretsmanager")
        self.secrets.create_secret(Name=SECRET, SecretString=api_key)

    # -- driving the handler ---------------------------------------------------------------------

    def upload(self, path: Path, key: str | None = None, *, full: bool = False) -> dict[str, Any]:
        """Put the file in the import bucket (``full``: tagged for a full send, every value sent);
        returns the S3 notification Lambda would get."""
        key = key or INCOMING + path.name
        tags: dict[str, str] = {}
        if full:
            from braze_importer.deltas import FULL_SEND_TAG

            tags["Tagging"] = urllib.parse.urlencode([FULL_SEND_TAG])
        with path.open("rb") as body:
            put = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body, **tags)
        size = path.stat().st_size
        return s3_event(BUCKET, key, size, put["ETag"].strip('"'), put.get("VersionId"))

    def import_file(self, path: Path, key: str | None = None, *, full: bool = False) -> dict[str, Any]:
        """Upload, run to the end of the invocation chain and return the run report."""
        event = self.upload(path, key, full=full)
        results = self.deliver(event)
        return self._report_of(path, results[0] if results else {})

    def import_files(self, paths: list[Path], prefix: str = INCOMING, *, full: bool = False) -> list[dict[str, Any]]:
        """Upload every file (under ``prefix``), then run them all at once; their run reports, in
        the order given."""
        events = [self.upload(path, prefix + path.name, full=full) for path in paths]
        firsts = self.deliver_concurrently(events)
        return [self._report_of(path, result) for path, result in zip(paths, firsts, strict=True)]

    def _report_of(self, path: Path, first: dict[str, Any]) -> dict[str, Any]:
        """The report of the run the file's first invocation started."""
        runs = first.get("runs") or []
        if not runs or runs[0]["status"] == "ignored":
            raise RuntimeError(
                f"the importer ignored {path.name}: use .json, .jsonl, .ndjson or .csv (optionally .gz), "
                ".parquet or .avro, or a name without a suffix"
            )
        return self.report(runs[0]["run_id"])

    def deliver_concurrently(self, events: list[dict[str, Any]], *, workers: int | None = None) -> list[dict[str, Any]]:
        """Invoke the handler with every event at once, each invocation in a worker process, and
        then every asynchronous invocation they queue, as soon as it is queued; the results of
        the first invocations, in order."""
        pool = self.worker_pool(workers or len(events))
        firsts: dict[Future[dict[str, Any]], int] = {}
        running: set[Future[dict[str, Any]]] = set()
        results: list[dict[str, Any]] = [{} for _ in events]
        for i, event in enumerate(events):
            future = pool.submit(_invoke_in_worker, event, self.invocation_seconds)
            firsts[future] = i
            running.add(future)
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                self.invocations += 1
                result = future.result()
                if future in firsts:
                    results[firsts[future]] = result
                self._show(result)
            # An invocation's own continuations reach the front before it returns.
            while not self.front.pending.empty():
                _name, payload = self.front.pending.get()
                running.add(pool.submit(_invoke_in_worker, payload, self.invocation_seconds))
        return results

    def worker_pool(self, workers: int) -> ProcessPoolExecutor:
        """Worker processes with this sandbox's environment, started and warm (the handler
        imported) before the first event; one pool per sandbox, grown as needed."""
        if self._pool is not None and self._pool_size >= workers:
            return self._pool
        self._stop_pool()
        _start_resource_tracker()
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start,
            initargs=(os.getpid(),),
        )  # fmt: skip
        # Each warm-up holds its worker a moment, so every worker gets one.
        for future in [pool.submit(_warm_worker, 0.3) for _ in range(workers)]:
            future.result()
        self._pool, self._pool_size = pool, workers
        return pool

    def _stop_pool(self, *, interrupted: bool = False) -> None:
        """Interrupted, the workers end now: an invocation under way would otherwise run to its end."""
        if self._pool is not None:
            if interrupted:
                for process in list(self._pool._processes.values()):
                    process.terminate()
            self._pool.shutdown(cancel_futures=interrupted)
            self._pool, self._pool_size = None, 0

    def _leave_pool(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._stop_pool(interrupted=exc_type is not None)

    def resume(self, run_id: str, *, force: bool = False) -> dict[str, Any]:
        self.deliver({"action": "resume", "run_id": run_id, "force": force})
        return self.report(run_id)

    def deliver(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Invoke the handler with ``event``, then every asynchronous invocation it queued."""
        from braze_importer.handler import handler  # the real Lambda entry point

        results = [self._invoke(handler, event)]
        while not self.front.pending.empty():
            _name, payload = self.front.pending.get()
            results.append(self._invoke(handler, payload))
        return results

    def _invoke(self, handler: Callable[..., dict[str, Any]], event: dict[str, Any]) -> dict[str, Any]:
        self.invocations += 1
        result = handler(event, FakeContext(self.invocation_seconds))
        self._show(result)
        return result

    def _show(self, result: dict[str, Any]) -> None:
        if self.progress:
            for run in result.get("runs", []):
                report = run.get("report") or {}
                self.progress(
                    f"invocation {self.invocations}: {run['status']}; objects read {report.get('objects_read', 0):,}, "
                    f"accepted {report.get('accepted', 0):,}, rejected {report.get('rejected', 0):,}, "
                    f"failed {report.get('failed', 0):,}"
                    + (f" ({report['source']['key']})" if report.get("source") else "")
                )

    def report(self, run_id: str) -> dict[str, Any]:
        from braze_importer.aws import DynamoRunStore
        from braze_importer.service import build_report
        from braze_importer.settings import get_settings

        run = DynamoRunStore(self.dynamodb, TABLE).get(run_id)
        if run is None:
            raise RuntimeError(f"no run {run_id}")
        settings = get_settings()
        return build_report(run, settings.layout(), allow_user_deletes=settings.allow_user_deletes)

    def read_output(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def list_outputs(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def read_so_far(self) -> list[tuple[str, int]]:
        """Each run of this sandbox as its last checkpoint (every few seconds) records it: its object's key
        and the objects it has read."""
        runs = []
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=TABLE, ProjectionExpression="doc"):
            for item in page.get("Items", []):
                if "doc" not in item:
                    continue  # the table's other items (run slots) read nothing
                run = orjson.loads(item["doc"]["S"])
                runs.append((str(run.get("key", "")), int(run.get("counters", {}).get("objects_read", 0))))
        return runs

    def rejects(self, report: dict[str, Any], count: int) -> list[dict[str, Any]]:
        """The run's first ``count`` rejects by position in the file, from the parts that hold them (a part
        holds those checked here in order, then those Braze refused)."""
        found: list[dict[str, Any]] = []
        for key in sorted(self.list_outputs(report["outputs"]["rejects"]["prefix"])):
            found += [orjson.loads(line) for line in self.read_output(key).splitlines() if line.strip()]
            if len(found) >= count:
                break
        return sorted(found, key=lambda reject: int(reject["index"]))[:count]

    def keep(self, report: dict[str, Any], directory: Path) -> list[Path]:
        """Copy the run's report, rejects and failed objects out of the bucket, each to ``directory``/its key;
        the sandbox's bucket goes when the sandbox does."""
        outputs = report["outputs"]
        keys = [key for key in self.list_outputs(outputs["report"]) if key == outputs["report"]]
        keys += [key for kind in ("rejects", "failed") for key in self.list_outputs(outputs[kind]["prefix"])]
        kept = []
        for key in keys:
            path = directory / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.read_output(key))
            kept.append(path)
        return kept

    def set_function_env(self, **values: str) -> None:
        """Change the function's settings, as a redeploy would (the next invocation is a cold start)."""
        os.environ.update(values)
        _clear_handler_caches()
        self._stop_pool()  # worker processes took the old environment with them

    def set_api_key(self, api_key: str) -> None:
        """Change the key in Secrets Manager, as an operator would; the function is not redeployed."""
        self.secrets.put_secret_value(SecretId=SECRET, SecretString=api_key)


def create_deltas_table(dynamodb: Any, name: str) -> None:
    """The records of what was last set per user, as the Import stack makes them (braze_importer.delta_store)."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


def _invoke_in_worker(event: dict[str, Any], invocation_seconds: float) -> dict[str, Any]:
    """One invocation in a worker process (its environment is the sandbox's, inherited at start)."""
    from braze_importer.handler import handler

    return dict(handler(event, FakeContext(invocation_seconds)))


def _start_resource_tracker() -> None:
    """multiprocessing's resource tracker, started now with a closed terminal's SIGHUP ignored (it already
    ignores SIGINT and SIGTERM): hung up with the terminal's process group, it is relaunched with a
    traceback a worker. It ends when the sandbox does."""
    from multiprocessing import resource_tracker

    if threading.current_thread() is not threading.main_thread():
        resource_tracker.ensure_running()
        return
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # ignored dispositions survive exec
    try:
        resource_tracker.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, previous)


def _worker_start(parent: int) -> None:
    """A worker ends with the sandbox, even a SIGKILLed one; Ctrl-C and a closed terminal are the
    sandbox's to handle (it ends the workers), not a traceback from each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    die_with_parent(parent)
    # As in the command itself: Powertools' warning for an invocation without metrics is noise here.
    warnings.filterwarnings("ignore", message="No application metrics to publish")


def _warm_worker(hold_seconds: float) -> None:
    import braze_importer.handler  # noqa: F401 - the import is the warm-up

    time.sleep(hold_seconds)


def s3_event(bucket: str, key: str, size: int, etag: str, version_id: str | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": urllib.parse.quote_plus(key), "size": size, "eTag": etag, "sequencer": "0"}
    if version_id:
        obj["versionId"] = version_id
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "import",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": obj,
                },
            }
        ]
    }


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _clear_handler_caches() -> None:
    """Settings and clients are cached per container; a new sandbox is a new container."""
    if "braze_importer.handler" in sys.modules:
        sys.modules["braze_importer.handler"]._deps.cache_clear()
    if "braze_importer.settings" in sys.modules:
        sys.modules["braze_importer.settings"].get_settings.cache_clear()
