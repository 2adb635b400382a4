"""``python -m sandbox serve``: every pipeline on one long-lived local environment that users aim
their own tools at (any S3 client, the AWS CLI, curl).

One moto server stands in for S3, DynamoDB, SQS, Secrets Manager, Cognito and EventBridge; one
Braze emulator (or a real Braze URL) receives. The buckets send their ``ObjectCreated``
notifications to an SQS queue on moto (moto delivers those itself), and a dispatcher thread hands
each to the real handler, as Lambda's S3 trigger would: the importer (then every asynchronous
self-invocation it queues) and the Currents personalizer (then the generation queue, to the
generator). The copy queue goes to the copier. Three local HTTP fronts check what API Gateway
checks (the API key and the token authorizer for the content and bulk-upload APIs; the JWT
authorizer, with its decision cached per token, for capture) before the real API functions run.
Capture's buffer is flushed every ``--flush-seconds`` by the Firehose stand-in, and the object it
writes into the import bucket starts an import like any other.

All handlers run in this one process, as one container per function would, with their settings in
its environment; the two keyed APIs therefore share one bearer token (each keeps its own API key).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, TextIO

import boto3

from . import bulk_upload as bulk_sandbox
from . import capture as capture_sandbox
from . import currents as currents_sandbox
from . import importer as import_sandbox
from .api_front import refused
from .importer import REGION, FakeContext, _environment
from .services import PLACEHOLDER_CREDENTIALS, HttpFront, LambdaFront, LocalStack, braze_emulator, moto_server

TOKEN_SECRET = "sandbox/api-token"  # noqa: S105 - the secret's name, not its value
NOTIFICATIONS = "sandbox-s3-notifications"
# Each importer invocation gets a minute (Lambda gives up to 15): a long import continues across
# invocations, and every continuation is a line of progress.
INVOCATION_SECONDS = 60.0

# (method, path, query, headers, body) -> (status, JSON answer) or (status, answer, extra headers)
Route = Callable[[str, str, dict[str, str], dict[str, str], bytes], tuple[Any, ...]]
# Browsers may post from any page to the local capture front, as with capture:corsOrigins=*.
PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST,OPTIONS",
    "Access-Control-Allow-Headers": "Authorization,Content-Type",
    "Access-Control-Max-Age": "3600",
}


@dataclass
class Serve(LocalStack):
    braze_url: str | None = None
    braze_api_key: str | None = None
    flush_seconds: float = 10.0
    log: Callable[[str], None] = print
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    stopping: threading.Event = field(default_factory=threading.Event)

    def _start(self) -> None:
        self.endpoint = self._stack.enter_context(moto_server())
        self.lambda_front = self._stack.enter_context(LambdaFront())
        if self.braze_url is None:
            emulator = self._stack.enter_context(braze_emulator())
            self.braze = emulator.url
            api_key = self.braze_api_key or "sandbox-braze-key"
        else:
            self.braze, api_key = self.braze_url, self.braze_api_key or ""
        env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_LAMBDA": self.lambda_front.url,
            **PLACEHOLDER_CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            "POWERTOOLS_LOG_LEVEL": os.environ.get("SANDBOX_LOG_LEVEL", "WARNING"),
            # The importer, as the Import stack configures it.
            "AWS_LAMBDA_FUNCTION_NAME": import_sandbox.FUNCTION,
            "BRAZE_REST_ENDPOINT": self.braze,
            "BRAZE_API_KEY_SECRET": import_sandbox.SECRET,
            "RUNS_TABLE": import_sandbox.TABLE,
            "IMPORT_BUCKET": import_sandbox.BUCKET,
            "INCOMING_PREFIX": import_sandbox.INCOMING,
            "SAFETY_MARGIN_SECONDS": str(INVOCATION_SECONDS / 4),
            "DELTAS_TABLE": import_sandbox.DELTAS_TABLE,
            "DELTA_MAX_AGE_DAYS": "30",
            "DELTA_TRANSACTIONS": "false",  # moto copies the whole table per transaction action
            "MAX_ARRAY_LENGTH": "25",
            # Currents, with the offline generator and no settle window.
            "CONTENT_TABLE": currents_sandbox.TABLE,
            "CONTENT_GENERATOR": "offline",
            "SETTLE_SECONDS": "0",
            # Bulk upload: files may be staged on moto's S3 and handed over as pre-signed URLs.
            "UPLOAD_BUCKET": bulk_sandbox.BUCKET,
            "JOBS_TABLE": bulk_sandbox.TABLE,
            "ALLOWED_URL_SCHEMES": "https,http",
            "ALLOWED_URL_HOSTS": urllib.parse.urlsplit(self.endpoint).netloc,
            "API_TOKEN_SECRET": TOKEN_SECRET,
            "CORS_ORIGINS": "*",
        }
        self._stack.enter_context(_environment(env))
        self._stack.callback(_clear_caches)
        _clear_caches()
        self._provision(api_key)
        self.capture = capture_sandbox.CaptureRoute(import_bucket=import_sandbox.BUCKET)
        os.environ.update(self.capture.environment())
        self.external_id = self.capture.create_user(
            capture_sandbox.DEMO_USER, capture_sandbox.DEMO_PASSWORD, email="demo-client@example.com"
        )
        self.locks = {name: threading.Lock() for name in ("import", "currents", "bulk", "capture")}
        self.content_front = self._stack.enter_context(_JsonFront(self._content, "content-front"))
        self.bulk_front = self._stack.enter_context(_JsonFront(self._bulk_upload, "bulk-upload-front"))
        self.capture_front = self._stack.enter_context(_JsonFront(self._capture, "capture-front"))
        self.cognito_front = self._stack.enter_context(_CognitoFront(self.endpoint))
        self._stack.callback(self.stopping.set)

    def _provision(self, braze_api_key: str) -> None:
        s3, dynamodb, sqs = boto3.client("s3"), boto3.client("dynamodb"), boto3.client("sqs")
        secretsmanager = boto3.client("secretsmanager")
        for bucket in (import_sandbox.BUCKET, currents_sandbox.BUCKET, bulk_sandbox.BUCKET):
            s3.create_bucket(Bucket=bucket)
        for bucket in (import_sandbox.BUCKET, bulk_sandbox.BUCKET):
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for table, key in ((import_sandbox.TABLE, "run_id"), (bulk_sandbox.TABLE, "job_id")):
            dynamodb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        import_sandbox.create_deltas_table(dynamodb, import_sandbox.DELTAS_TABLE)
        currents_sandbox.create_content_table(dynamodb, currents_sandbox.TABLE)
        secretsmanager.create_secret(Name=import_sandbox.SECRET, SecretString=braze_api_key)
        secretsmanager.create_secret(Name=TOKEN_SECRET, SecretString=self.token)
        self.sqs = sqs
        self.generation_queue = sqs.create_queue(
            QueueName=currents_sandbox.QUEUE, Attributes={"VisibilityTimeout": "30"}
        )["QueueUrl"]
        self.copy_queue = sqs.create_queue(QueueName=bulk_sandbox.QUEUE)["QueueUrl"]
        os.environ["GENERATION_QUEUE_URL"] = self.generation_queue
        os.environ["COPY_QUEUE_URL"] = self.copy_queue
        self.notifications = sqs.create_queue(QueueName=NOTIFICATIONS)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.notifications, AttributeNames=["QueueArn"])["Attributes"]
        # The stacks' S3 triggers: the importer for every key under the incoming prefix (it ignores
        # what it does not read); Currents' .avro.
        imports = [
            {"QueueArn": arn["QueueArn"], "Events": ["s3:ObjectCreated:*"],
             "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": import_sandbox.INCOMING}]}}}
        ]  # fmt: skip
        currents = [
            {"QueueArn": arn["QueueArn"], "Events": ["s3:ObjectCreated:*"],
             "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": currents_sandbox.PREFIX},
                                                {"Name": "suffix", "Value": ".avro"}]}}}
        ]  # fmt: skip
        for bucket, configs in ((import_sandbox.BUCKET, imports), (currents_sandbox.BUCKET, currents)):
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configs}
            )

    # -- what users are told -----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {
            "aws_endpoint_url": self.endpoint,
            "region": REGION,
            "braze_url": self.braze,
            "import": {"bucket": import_sandbox.BUCKET, "incoming_prefix": import_sandbox.INCOMING},
            "currents": {
                "bucket": currents_sandbox.BUCKET,
                "prefix": currents_sandbox.PREFIX,
                "content_url": f"{self.content_front.url}/content",
                "api_key": currents_sandbox.API_KEY,
                "token": self.token,
            },
            "bulk_upload": {
                "url": f"{self.bulk_front.url}/bulk-upload",
                "api_key": bulk_sandbox.API_KEY,
                "token": self.token,
            },
            "capture": {
                "url": f"{self.capture_front.url}/event",
                "cognito_endpoint_url": self.cognito_front.url,
                "user_pool_id": self.capture.pool_id,
                "app_client_id": self.capture.client_id,
                "username": capture_sandbox.DEMO_USER,
                "password": capture_sandbox.DEMO_PASSWORD,
                "external_id": self.external_id,
            },
        }

    # -- running -----------------------------------------------------------------------------------

    def run(self) -> None:
        """Dispatch notifications and queues and flush capture until ``stopping`` is set."""
        workers = [
            threading.Thread(target=self._loop, args=(self._dispatch_notifications, 0.2), name="s3-trigger"),
            threading.Thread(target=self._loop, args=(self._run_copies, 0.5), name="copy-queue"),
            threading.Thread(target=self._loop, args=(self._flush_capture, self.flush_seconds), name="firehose"),
            # The Import stack's schedule: every minute, start runs that wait for a slot.
            threading.Thread(target=self._loop, args=(self._sweep, 60.0), name="sweep"),
        ]
        for worker in workers:
            worker.start()
        try:
            self.stopping.wait()
        finally:
            self.stopping.set()
            for worker in workers:
                worker.join(timeout=60)

    def _loop(self, step: Callable[[], bool], idle_seconds: float) -> None:
        while not self.stopping.is_set():
            try:
                busy = step()
            except Exception:
                self.log(f"error: {traceback.format_exc(limit=3).strip().splitlines()[-1]}")
                busy = False
            if not busy:
                self.stopping.wait(idle_seconds)

    def _dispatch_notifications(self) -> bool:
        messages = self.sqs.receive_message(
            QueueUrl=self.notifications, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=900
        ).get("Messages", [])
        for message in messages:
            event = json.loads(message["Body"])
            for record in event.get("Records", []):
                bucket = record["s3"]["bucket"]["name"]
                key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
                try:
                    if bucket == import_sandbox.BUCKET:
                        self._import({"Records": [record]}, key)
                    elif bucket == currents_sandbox.BUCKET:
                        self._personalize({"Records": [record]}, key)
                except Exception as exc:
                    # Lambda would retry an async invocation twice, then give up: here it is logged once.
                    self.log(f"error: {bucket}/{key}: {type(exc).__name__}: {exc}")
            self.sqs.delete_message(QueueUrl=self.notifications, ReceiptHandle=message["ReceiptHandle"])
        return bool(messages)

    def _import(self, event: dict[str, Any], key: str) -> None:
        from braze_importer.handler import handler

        with self.locks["import"]:
            pending = [event]
            run_id = None
            while pending:
                result = handler(pending.pop(0), FakeContext(INVOCATION_SECONDS, import_sandbox.FUNCTION))
                for run in result.get("runs", []):
                    if run["status"] in ("ignored", "duplicate"):
                        self.log(f"import {key}: {run['status']} (not the importer's, or already imported)")
                        continue
                    run_id = run.get("run_id") or run_id
                    report = run.get("report") or {}
                    if run["status"] not in ("completed", "stopped"):
                        self.log(
                            f"import {key}: {run['status']}, read {report.get('objects_read', 0):,}, "
                            f"accepted {report.get('accepted', 0):,} so far"
                        )
                while not self.lambda_front.pending.empty():
                    pending.append(self.lambda_front.pending.get()[1])
            if run_id:
                final = _report(run_id)
                self.log(
                    f"import {key}: {final['status']}; objects read {final['objects_read']:,}, accepted "
                    f"{final['accepted']:,}, rejected {final['rejected']:,}, failed {final['failed']:,}, "
                    f"{final['invocations']} invocation(s) in {final['seconds']:.1f} s"
                )

    def _sweep(self) -> bool:
        from braze_importer.handler import handler

        if self.stopping.wait(60.0):  # the first sweep a minute after start, as the schedule's would be
            return False
        with self.locks["import"]:
            handler({"action": "sweep"}, FakeContext(INVOCATION_SECONDS, import_sandbox.FUNCTION))
            started = []
            while not self.lambda_front.pending.empty():
                started.append(self.lambda_front.pending.get()[1])
        for event in started:
            self._import(event, f"(queued run {event.get('run_id', '')})")
        return True

    def _personalize(self, event: dict[str, Any], key: str) -> None:
        from currents_personalizer.handler import handler as personalize

        with self.locks["currents"]:
            report = personalize(event, FakeContext(300, "sandbox-currents-personalizer"))["report"]
            drained = currents_sandbox.drain_generation_queue(self.sqs, self.generation_queue)
            self.log(
                f"currents {key}: {report.get('records', 0):,} event records, {report.get('users', 0):,} users, "
                f"{drained.outcomes.get('generated', 0):,} generation(s)"
            )
            for user, reason in drained.failures.items():
                self.log(f"currents {key}: the generation for {user} failed, to be retried: {reason}")

    def _run_copies(self) -> bool:
        with self.locks["bulk"]:
            delivered = bulk_sandbox.copy_next(
                self.sqs, self.copy_queue, FakeContext(900.0, "sandbox-bulk-upload-copier")
            )
        if delivered is None:
            return False
        job_id = json.loads(delivered[0]["Body"]).get("job_id")
        status, job = self._bulk_upload("GET", f"/bulk-upload/{job_id}", {}, {}, b"", check=False)
        if status == 200 and job.get("status") in ("done", "failed"):
            self.log(f"bulk upload job {job_id}: {job['status']} -> {job.get('s3_key')} ({job.get('size')} bytes)")
        return True

    def _flush_capture(self) -> bool:
        with self.locks["capture"]:
            flushed = self.capture.flush()
        if flushed["events"]:
            self.log(
                f"capture: Firehose wrote {flushed['written']} event(s) to {flushed['key']}"
                + (f", {flushed['failed']} to the error prefix" if flushed["failed"] else "")
            )
        return False

    # -- the API fronts ----------------------------------------------------------------------------

    def _keyed(
        self, method: str, path: str, headers: dict[str, str], expected_key: str
    ) -> tuple[int, dict[str, Any]] | None:
        """API Gateway's checks for the keyed APIs: the header is the authorizer's identity source
        (missing: 401), then the API key, then the token authorizer's decision (403)."""
        from token_authorizer.handler import presented

        lowered = {k.lower(): v for k, v in headers.items()}
        if not lowered.get("authorization"):
            return 401, {"message": "Unauthorized"}
        # A header that is not "Bearer <token>" presents no token: the authorizer denies it.
        token = presented(headers) or ""
        return refused(path, method, api_key=lowered.get("x-api-key", ""), expected_key=expected_key, token=token)

    def _content(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        from currents_personalizer.api_handler import handler

        parts = [p for p in path.split("/") if p]
        if method != "GET" or not parts or parts[0] != "content" or len(parts) > 2:
            return 404 if method == "GET" else 405, {"message": "Missing Authentication Token"}
        denied = self._keyed(method, path, headers, currents_sandbox.API_KEY)
        if denied:
            return denied
        braze_id = urllib.parse.unquote(parts[1]) if len(parts) == 2 else None
        event = {
            "resource": "/content/{braze_id}" if braze_id else "/content", "path": path, "httpMethod": "GET",
            "headers": headers, "pathParameters": {"braze_id": braze_id} if braze_id else None,
            "queryStringParameters": query or None,
        }  # fmt: skip
        with self.locks["currents"]:
            response = handler(event, FakeContext(5, "sandbox-content-api"))
        return int(response["statusCode"]), json.loads(response["body"])

    def _bulk_upload(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes, *, check: bool = True
    ) -> tuple[int, dict[str, Any]]:
        from bulk_upload.api_handler import handler

        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] != "bulk-upload" or len(parts) > 2 or (method, len(parts)) not in (
            ("POST", 1), ("GET", 2),
        ):  # fmt: skip
            return 404, {"message": "Missing Authentication Token"}
        if check:
            denied = self._keyed(method, path, headers, bulk_sandbox.API_KEY)
            if denied:
                return denied
        event: dict[str, Any] = {"httpMethod": method, "path": path, "headers": headers}
        if method == "POST":
            event["body"] = body.decode("utf-8", errors="replace")
        else:
            event["pathParameters"] = {"job_id": urllib.parse.unquote(parts[1])}
        with self.locks["bulk"]:
            response = handler(event, FakeContext(29, "sandbox-bulk-upload-api"))
        status, answer = int(response["statusCode"]), json.loads(response["body"])
        if check and method == "POST":
            self.log(f"bulk upload: webhook -> {status} {answer.get('job_id', answer.get('message', ''))}")
        return status, answer

    def _capture(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if path.rstrip("/") != "/event":
            return 404, {"message": "Missing Authentication Token"}, {}
        if method == "OPTIONS":
            return 204, {}, PREFLIGHT
        if method != "POST":
            return 405, {"message": "Missing Authentication Token"}, {}
        with self.locks["capture"]:
            status, answer, extra = capture_sandbox.api_gateway_response(body, headers, self.capture.decisions)
        if "accepted" in answer:
            self.log(
                f"capture: POST /event -> {status}, {answer['accepted']} accepted, {len(answer['refused'])} refused"
            )
        # The stack's gateway responses carry the CORS header on refusals too.
        return status, answer, extra or {"Access-Control-Allow-Origin": "*"}


def _report(run_id: str) -> dict[str, Any]:
    from braze_importer.aws import DynamoRunStore
    from braze_importer.service import build_report
    from braze_importer.settings import get_settings

    run = DynamoRunStore(boto3.client("dynamodb"), import_sandbox.TABLE).get(run_id)
    if run is None:
        raise RuntimeError(f"no run {run_id}")
    settings = get_settings()
    return build_report(run, settings.layout(), allow_user_deletes=settings.allow_user_deletes)


class _JsonFront(HttpFront):
    """A local HTTP API: every request goes to ``route``; every answer is JSON."""

    def __init__(self, route: Route, name: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                split = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                extra: dict[str, str] = {}
                try:
                    status, answer, *rest = route(self.command, split.path, query, dict(self.headers.items()), body)
                    extra = rest[0] if rest else {}
                except Exception:
                    traceback.print_exc()
                    status, answer = 502, {"message": "Internal server error"}
                data = b"" if status == 204 else json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **extra}.items():
                    if status != 204 or name != "Content-Type":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler, name)


class _CognitoFront(HttpFront):
    """Cognito for the capture route's users: every call is moto's, except a user's own sign-up or
    attribute update writing an attribute the app client may not write (the external id), refused
    with Cognito's ``NotAuthorizedException`` as the stack's app client would be (moto does not
    enforce write attributes)."""

    def __init__(self, moto_endpoint: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                operation = str(self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
                try:
                    params = json.loads(body or b"{}")
                except ValueError:
                    params = {}
                if isinstance(params, dict) and capture_sandbox.unwritable_attributes(operation, params):
                    error = {"__type": "NotAuthorizedException", "message": capture_sandbox.UNWRITABLE}
                    self._answer(400, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(error).encode())
                    return
                skip = {"host", "content-length", "connection", "accept-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                request = urllib.request.Request(  # noqa: S310 - moto server on 127.0.0.1
                    moto_endpoint + self.path, data=body, headers=headers, method="POST"
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - moto on 127.0.0.1
                        status, answer_headers, data = answer.status, dict(answer.headers.items()), answer.read()
                except urllib.error.HTTPError as exc:
                    status, answer_headers, data = exc.code, dict(exc.headers.items()), exc.read()
                self._answer(status, answer_headers, data)

            def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in {"content-length", "connection", "transfer-encoding", "date", "server"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler, "cognito-front")


def _clear_caches() -> None:
    import_sandbox._clear_handler_caches()
    currents_sandbox.clear_caches()
    bulk_sandbox.clear_caches()
    capture_sandbox.clear_caches()


@contextlib.contextmanager
def _stop_on_sigterm(stopping: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal) stop as cleanly as Ctrl-C, exit 0 like it: the loop ends,
    then every service is stopped."""
    signals = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {signum: signal.signal(signum, lambda *_: stopping.set()) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def serve(
    *, info_path: str | None, braze_url: str | None, braze_api_key: str | None, flush_seconds: float, out: TextIO,
    log: TextIO,
) -> int:  # fmt: skip
    def say(line: str) -> None:
        log.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        log.flush()

    stopping = threading.Event()
    with _stop_on_sigterm(stopping):
        try:
            with Serve(
                braze_url=braze_url, braze_api_key=braze_api_key, flush_seconds=flush_seconds, log=say,
                stopping=stopping,
            ) as env:  # fmt: skip
                info = json.dumps(env.info())
                if info_path:
                    with open(info_path, "w") as f:
                        f.write(info + "\n")
                else:
                    out.write(info + "\n")
                    out.flush()
                say(f"serving: AWS at {env.endpoint}, Braze at {env.braze}; Ctrl-C or SIGTERM stops")
                env.run()
        except KeyboardInterrupt:
            pass
    say("stopped")
    return 0
