"""Runs the real Currents handlers against moto server, as Lambda and API Gateway would.

The sandbox provisions what the Currents stack would (the bucket, the content table with its
external-id index, the generation queue, the API token), uploads Avro files under the Currents
prefix, delivers each S3 notification to the personalizer, then the generation queue's messages
to the generator (as SQS batches, deleting what succeeded), and answers Content API requests
through a front that checks the API key and runs the token authorizer first.

Only the emulated services point at moto (one endpoint variable per service): with ``bedrock``
the generator calls the real Bedrock with the caller's own credentials.

The settle window is 0 here: ``process`` delivers every file's notification first and the queue
after, which is what the window achieves in AWS (the files of one period are merged before the
generation runs).
"""

from __future__ import annotations

import os
import secrets
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import orjson

from stacks.config import DEFAULT_BEDROCK_MODEL

from .api_front import refused
from .importer import REGION, FakeContext, _environment
from .services import PLACEHOLDER_CREDENTIALS, LocalStack, moto_server, sqs_record

BUCKET = "sandbox-currents"
PREFIX = "currents/"
TABLE = "sandbox-content"
QUEUE = "sandbox-generation"
TOKEN_SECRET = "sandbox/content-api-token"  # noqa: S105 - the secret's name, not its value
API_KEY = "sandbox-content-api-key"
REPORT_KEYS = (
    "files", "records", "kept", "duplicates", "no_intent", "users", "scheduled", "generated", "skipped_fresh",
    "failed", "files_failed",
)  # fmt: skip


@dataclass
class CurrentsSandbox(LocalStack):
    bedrock: bool = False
    function_env: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # Each file the personalizer could not take, by key, and why (Lambda would retry its S3 event).
    failed_files: dict[str, str] = field(default_factory=dict)
    # Each user whose generation failed, by Braze id, and why (SQS would deliver it again later).
    failed_generations: dict[str, str] = field(default_factory=dict)

    def _start(self) -> None:
        endpoint = self._stack.enter_context(moto_server())
        env = {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "AWS_ENDPOINT_URL_SQS": endpoint,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint,
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", REGION),
            "CONTENT_TABLE": TABLE,
            "CONTENT_GENERATOR": "bedrock" if self.bedrock else "offline",
            "SETTLE_SECONDS": "0",
            "API_TOKEN_SECRET": TOKEN_SECRET,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            "POWERTOOLS_LOG_LEVEL": os.environ.get("SANDBOX_LOG_LEVEL", "WARNING"),
        }
        if self.bedrock:
            env.setdefault("BEDROCK_MODEL_ID", os.environ.get("BEDROCK_MODEL_ID", DEFAULT_BEDROCK_MODEL))
        else:  # nothing leaves the machine: moto accepts any credentials
            env |= PLACEHOLDER_CREDENTIALS
        self._stack.enter_context(_environment({**env, **self.function_env}))
        self._stack.callback(clear_caches)
        clear_caches()
        self.s3 = boto3.client("s3")
        self.s3.create_bucket(Bucket=BUCKET)
        create_content_table(boto3.client("dynamodb"), TABLE)
        self.sqs = boto3.client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName=QUEUE, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        os.environ["GENERATION_QUEUE_URL"] = self.queue_url
        boto3.client("secretsmanager").create_secret(Name=TOKEN_SECRET, SecretString=self.token)

    # -- files ----------------------------------------------------------------------------------

    def upload(self, paths: list[Path]) -> list[str]:
        """Upload each file under its key (``keys``)."""
        planned = keys(paths)
        for file, key in planned:
            self.s3.upload_file(str(file), BUCKET, key)
        return [key for _, key in planned]

    def process(self, keys: list[str], progress: Callable[[str], None] | None = None) -> dict[str, int]:
        """Deliver each file to the personalizer, then the generation queue; ``progress`` is told each step."""
        from currents_personalizer.handler import handler as personalize

        report = dict.fromkeys(REPORT_KEYS, 0)
        # Users are counted once, as the profiles these files changed (the personalizer counts per file).
        before = self.profiles()
        for number, key in enumerate(keys, 1):
            event = {
                "Records": [
                    {
                        "eventName": "ObjectCreated:Put",
                        "s3": {"bucket": {"name": BUCKET}, "object": {"key": urllib.parse.quote_plus(key)}},
                    }
                ]
            }
            try:
                result = personalize(event, FakeContext(300, "sandbox-currents-personalizer"))["report"]
            except Exception as exc:
                self.failed_files[key] = f"{type(exc).__name__}: {exc}"
                report["files_failed"] += 1
                continue
            finally:
                if progress:
                    progress(f"file {number:,} of {len(keys):,} delivered: {key}")
            for name in REPORT_KEYS:
                report[name] += int(result.get(name, 0))
        if progress:
            progress("generating content for the users scheduled (the generation queue)")
        drained = self.drain_queue()
        for outcome, n in drained.outcomes.items():
            if outcome in report:
                report[outcome] += n
        self.failed_generations |= drained.failures
        after = self.profiles()
        report["users"] = sum(1 for user, version in after.items() if before.get(user) != version)
        return report

    def users_with_content(self) -> list[str]:
        """The Braze ids the content table holds, sorted: the ids ``--content`` can read."""
        pages = (
            boto3.client("dynamodb")
            .get_paginator("scan")
            .paginate(TableName=TABLE, ProjectionExpression="user_id", FilterExpression="attribute_exists(content)")
        )  # profiles and counters share the table, without content
        return sorted(item["user_id"]["S"] for page in pages for item in page.get("Items", []))

    def drain_queue(self) -> Drained:
        """Deliver the generation queue to the generator (``drain_generation_queue``)."""
        return drain_generation_queue(self.sqs, self.queue_url)

    def profiles(self) -> dict[str, str]:
        """Each profile's version, by Braze id: a profile changes version when new events are merged in."""
        from currents_personalizer.store import PROFILE_PREFIX

        pages = (
            boto3.client("dynamodb")
            .get_paginator("scan")
            .paginate(
                TableName=TABLE, ProjectionExpression="user_id, version",
                FilterExpression="begins_with(user_id, :profile)",
                ExpressionAttributeValues={":profile": {"S": PROFILE_PREFIX}},
            )
        )  # fmt: skip
        return {item["user_id"]["S"]: item["version"]["N"] for page in pages for item in page.get("Items", [])}

    # -- the API, behind a front that checks credentials like API Gateway -------------------------

    def get_content(
        self, braze_id: str | None = None, query: dict[str, str] | None = None, *, api_key: str = API_KEY,
        token: str | None = None, authorization: bool = True,
    ) -> tuple[int, dict[str, Any]]:  # fmt: skip
        """``authorization=False`` sends no Authorization header: API Gateway answers 401 without
        running the authorizer (the header is its identity source); a wrong token or key gets 403."""
        from currents_personalizer.api_handler import handler as api

        if not authorization:
            return 401, {"message": "Unauthorized"}
        headers = {"x-api-key": api_key, "Authorization": f"Bearer {token if token is not None else self.token}"}
        path = f"/content/{urllib.parse.quote(braze_id, safe='')}" if braze_id else "/content"
        denied = refused(
            path, "GET", api_key=api_key, expected_key=API_KEY, token=token if token is not None else self.token
        )
        if denied:
            return denied
        event = {
            "resource": "/content/{braze_id}" if braze_id else "/content",
            "path": path,
            "httpMethod": "GET",
            "headers": headers,
            "pathParameters": {"braze_id": braze_id} if braze_id else None,
            "queryStringParameters": query or None,
        }
        response = api(event, FakeContext(5, "sandbox-content-api"))
        return int(response["statusCode"]), orjson.loads(response["body"])


@dataclass
class Drained:
    """What delivering the generation queue came to: messages per outcome, and each user whose generation
    failed with why (the generator's error code)."""

    outcomes: dict[str, int] = field(default_factory=lambda: {"failed": 0})
    failures: dict[str, str] = field(default_factory=dict)


def drain_generation_queue(sqs: Any, queue_url: str) -> Drained:
    """Deliver the generation queue to the generator in SQS batches until it is empty (a message
    deferred to the end of a cooldown is delayed and stays behind, and so does one that failed, as SQS
    would keep it for a later try)."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
    from currents_personalizer import generator_handler

    drained = Drained()
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=5).get("Messages", [])
        if not messages:
            return drained
        try:
            result = generator_handler.handler(
                {"Records": [sqs_record(m) for m in messages]}, FakeContext(300, "sandbox-currents-generator")
            )
        except BatchProcessingError:  # every message failed: Lambda would have the whole batch delivered again
            result = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
        why = generator_handler.last_failures()
        retry = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        for outcome, n in result.get("outcomes", {}).items():
            if outcome != "failed":  # counted below, with the messages that failed for other reasons
                drained.outcomes[outcome] = drained.outcomes.get(outcome, 0) + n
        drained.outcomes["failed"] += len(retry)
        for message in messages:
            if message["MessageId"] not in retry:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                drained.failures[_user_of(message)] = why.get(message["MessageId"], "no reason given")
        if retry:
            return drained


def _user_of(message: dict[str, Any]) -> str:
    """The Braze id a generation message is for, or its message id when it names none."""
    try:
        body = orjson.loads(message["Body"])
    except orjson.JSONDecodeError:
        body = None
    user = body.get("user_id") if isinstance(body, dict) else None
    return user if isinstance(user, str) else f"(message {message['MessageId']})"


def create_content_table(dynamodb: Any, name: str) -> None:
    """The content table as the Currents stack defines it: Braze id key, external-id index."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "user_id", "AttributeType": "S"},
            {"AttributeName": "external_id", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-external-id",
                "KeySchema": [{"AttributeName": "external_id", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def keys(paths: list[Path]) -> list[tuple[Path, str]]:
    """Each file and its key: a directory's ``.avro`` files keep their paths relative to it; a file, or a
    directory's file whose path below it holds no ``event_type=…`` folder, keeps its path from its
    ``dataexport.…`` or ``event_type=…`` folder on (Braze's layout), or just its name."""
    planned = []
    for path in paths:
        files = sorted(p for p in path.rglob("*.avro") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            relative = file.relative_to(path) if path.is_dir() else _from_export_folder(file)
            if "event_type=" not in relative.as_posix():  # a folder inside the layout: keep the layout's part
                relative = _from_export_folder(file)
            planned.append((file, PREFIX + relative.as_posix()))
    return planned


def clashes(planned: list[tuple[Path, str]]) -> list[tuple[Path, Path, str]]:
    """Files that would land on one key (two copies of one export layout): the second would replace the
    first in the bucket, as in S3."""
    seen: dict[str, Path] = {}
    found = []
    for file, key in planned:
        if key in seen and seen[key].resolve() != file.resolve():
            found.append((seen[key], file, key))
        seen.setdefault(key, file)
    return found


def not_avro(paths: list[Path]) -> list[Path]:
    """The files in the directories of ``paths`` that are not ``.avro`` (``keys`` leaves them out)."""
    return [
        file for path in paths if path.is_dir() for file in sorted(path.rglob("*"))
        if file.is_file() and file.suffix != ".avro"
    ]  # fmt: skip


def unread(planned: list[tuple[Path, str]]) -> list[Path]:
    """The files the personalizer would ignore: not ``.avro``, or not under an ``event_type=…/`` folder of
    Braze's layout (the event type is read from the key)."""
    from currents_personalizer.events import event_type_from_key

    return [file for file, key in planned if not key.endswith(".avro") or event_type_from_key(key) is None]


def _from_export_folder(file: Path) -> Path:
    """``file``'s path from its ``dataexport.…`` folder on, else from its ``event_type=…`` folder on (the
    part of Braze's layout the personalizer reads), else just its name."""
    parts = file.resolve().parts
    for prefix in ("dataexport.", "event_type="):
        for i, part in enumerate(parts):
            if part.startswith(prefix):
                return Path(*parts[i:])
    return Path(file.name)


def clear_caches() -> None:
    """Settings and clients are cached per container; a new sandbox is a new container."""
    for module, names in (
        ("currents_personalizer.settings", ("get_settings",)),
        ("currents_personalizer.wiring", ("content_table", "content_generator")),
        ("currents_personalizer.handler", ("_personalizer",)),
    ):
        if module in sys.modules:
            for name in names:
                getattr(sys.modules[module], name).cache_clear()
    if "token_authorizer.handler" in sys.modules:
        sys.modules["token_authorizer.handler"]._CACHE.clear()


def report_json(
    report: dict[str, int], content: dict[str, tuple[int, dict[str, Any]]], *, failed_files: dict[str, str],
    failed_generations: dict[str, str], users_with_content: list[str],
) -> dict[str, Any]:  # fmt: skip
    return {
        "report": {k: report[k] for k in REPORT_KEYS},
        "failed_files": failed_files,
        "failed_generations": failed_generations,
        "users_with_content": users_with_content,
        "content": {key: {"status": status, "body": body} for key, (status, body) in content.items()},
    }
