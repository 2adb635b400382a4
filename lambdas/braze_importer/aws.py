"""AWS adapters: S3 reading and writing, the DynamoDB run store, self-invocation, the secret."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from botocore.exceptions import ClientError

from . import gzip_index
from .deltas import FULL_SEND_TAG
from .ports import SeekPoint, SourceDenied, SourceGone, UnreadableInput
from .runs import CONTINUING, QUEUED, RUNNING, STOPPED, RunRecord

READ_CHUNK = 1 << 20
PREFETCH_CHUNKS = 8
RUN_TTL_SECONDS = 90 * 24 * 3600
QUEUE_KEY = "queue#runs"  # the runs table item listing queued runs
QUEUE_WRITE_ATTEMPTS = 50
ACTIVE_KEY = "workspace#runs"  # the runs table item listing the runs sending to /users/track right now
TRACK_GROUP = "track"


def active_key(group: str = TRACK_GROUP) -> str:
    """The runs-table item listing the active runs of an endpoint group: /users/track's is the item
    every version has used; each other group (catalog, user_delete) has its own."""
    return ACTIVE_KEY if group == TRACK_GROUP else f"{ACTIVE_KEY}#{group}"


# What S3 answers a read pinned to a version (VersionId, or If-Match on an unversioned bucket)
# once that version is gone: deleted for good, or overwritten.
_GONE_CODES = frozenset({"NoSuchVersion", "NoSuchKey", "PreconditionFailed"})
_GONE_STATUSES = frozenset({404, 412})
# What S3 answers a tag read of an object the function may not read, or that is gone.
_UNTAGGED_CODES = frozenset({"AccessDenied", "NoSuchKey", "NoSuchVersion"})


def _source_error(exc: ClientError, offset: int) -> UnreadableInput | None:
    """The reader's error for an S3 error on a pinned read, or None if it is no such error."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _GONE_CODES or status in _GONE_STATUSES:
        return SourceGone(offset, f"the object version this run reads no longer exists (S3: {code or status})")
    if code == "AccessDenied" or status == 403:
        return SourceDenied(
            offset,
            "S3 denied reading the object version: it was deleted (S3 answers 403 instead of 404 to a"
            " reader that may not list the bucket), or the function lost access to it",
        )
    return None


class S3Source:
    """Streams an object version, from a byte offset, decompressing gzip on the fly.

    Reads are pinned to the version the run started with; once it is gone, reading raises
    :class:`SourceGone` (or :class:`SourceDenied` for a 403), when the stream is first read.
    """

    def __init__(self, s3: Any, *, seek_spacing: int = gzip_index.DEFAULT_SPACING) -> None:
        self._s3 = s3
        self._spacing = seek_spacing

    def is_gzip(self, ref: Any) -> bool:
        """Whether the object version starts with the gzip magic; raises :class:`SourceGone` or
        :class:`SourceDenied` when S3 will not say (an error is never "not gzip")."""
        if ref.size == 0:
            return False
        try:
            head = self._s3.get_object(**self._target(ref), Range="bytes=0-1")["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return False  # S3 answers 416 for any range of an empty object
            if (error := _source_error(exc, 0)) is not None:
                raise error from None
            raise
        return bool(head == b"\x1f\x8b")

    def full_send_requested(self, ref: Any) -> bool:
        """Whether the object version carries the full-send tag (``deltas.FULL_SEND_TAG``; its value
        compared trimmed, in any case). Tags S3 will not show (access denied, the version gone) ask for
        nothing: the run reads the object next and reports what became of it."""
        kwargs: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            kwargs["VersionId"] = ref.version_id
        try:
            tags = self._s3.get_object_tagging(**kwargs).get("TagSet", [])
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in _UNTAGGED_CODES:
                raise
            # The code only: the key may name a person or a customer.
            logging.getLogger(__name__).warning("object tags unreadable, no full send: S3 answered %s", code)
            return False
        key, value = FULL_SEND_TAG
        return any(t.get("Key") == key and str(t.get("Value", "")).strip().lower() == value for t in tags)

    def read_range(self, ref: Any, start: int, length: int) -> tuple[bytes, int]:
        """One ranged GET of the object version: ``length`` bytes from ``start`` and the object's
        size (from Content-Range); nothing past the end."""
        if length <= 0:
            raise ValueError("a range of no bytes")
        try:
            answer = self._s3.get_object(**self._target(ref), Range=f"bytes={start}-{start + length - 1}")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b"", start if start else 0  # at or past the end (any range of an empty object)
            if (error := _source_error(exc, start)) is not None:
                raise error from None
            raise
        data = answer["Body"].read()
        total = str(answer.get("ContentRange", "")).rpartition("/")[2]
        return data, int(total) if total.isdigit() else start + len(data)

    def chunks(
        self,
        ref: Any,
        offset: int,
        gzip: bool,
        *,
        resume_from: SeekPoint | None = None,
        on_point: Callable[[SeekPoint], None] | None = None,
    ) -> Iterator[bytes]:
        if not gzip:
            return self._stream(ref, offset, offset)
        if not gzip_index.available():
            # Without libz's block-level API a gzip stream cannot be entered in the middle:
            # inflate and discard up to the offset.
            return _skip(_gunzip(self._stream(ref, 0, offset)), offset)
        start = resume_from if resume_from is not None and resume_from.out_offset <= offset else None
        begin = 0 if start is None else start.read_from
        stream = self._stream(ref, begin, offset)
        out = gzip_index.inflate(stream, start=start, on_point=on_point, spacing=self._spacing)
        return _skip(out, offset - (start.out_offset if start is not None else 0))

    def _stream(self, ref: Any, offset: int, position: int) -> Iterator[bytes]:
        """The object's bytes from ``offset`` on, requested when first read (so a version that is
        gone is reported by the reader, inside the run); ``position`` is the decompressed offset
        the caller wants, for the error."""
        kwargs = self._target(ref)
        if offset:
            kwargs["Range"] = f"bytes={offset}-"
        try:
            body = self._s3.get_object(**kwargs)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return  # the offset is the end of the object
            if (error := _source_error(exc, position)) is not None:
                raise error from None
            raise
        yield from _prefetch(body.iter_chunks(READ_CHUNK))

    @staticmethod
    def _target(ref: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            kwargs["VersionId"] = ref.version_id
        elif ref.etag:
            kwargs["IfMatch"] = ref.etag  # an overwritten unversioned object must not be resumed
        return kwargs


def _gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Inflate a (possibly multi-member) gzip stream in bounded pieces.

    Like gzip(1): zero bytes after a member are padding and end the stream; anything else that is
    not a complete member (a truncated file, trailing garbage, a corrupt block) raises
    :class:`UnreadableInput`, so a damaged file is never reported as completely imported.
    """
    inflater: Any = zlib.decompressobj(wbits=31)
    produced = 0  # decompressed bytes so far, for the error's position
    member_started = False  # the current member has consumed input
    padding = False  # only zero bytes may follow
    try:
        for chunk in chunks:
            data = chunk
            while data:
                if padding or (not member_started and data[0] == 0):
                    if data.strip(b"\x00"):
                        raise UnreadableInput(produced, "data after the gzip padding is not a gzip member")
                    padding = True
                    break
                member_started = True
                out = inflater.decompress(data, READ_CHUNK)
                if out:
                    produced += len(out)
                    yield out
                data = inflater.unconsumed_tail
                while not data and not inflater.eof:
                    out = inflater.decompress(b"", READ_CHUNK)
                    if not out:
                        break
                    produced += len(out)
                    yield out
                if inflater.eof:
                    data = inflater.unused_data + data
                    inflater = zlib.decompressobj(wbits=31)
                    member_started = False
    except zlib.error as exc:
        raise UnreadableInput(produced, f"corrupt gzip data ({exc})") from None
    if member_started:
        raise UnreadableInput(produced, "the gzip stream ends before its last member does (truncated file?)")


def _skip(chunks: Iterator[bytes], offset: int) -> Iterator[bytes]:
    for chunk in chunks:
        if offset >= len(chunk):
            offset -= len(chunk)
            continue
        yield chunk[offset:] if offset else chunk
        offset = 0


def _prefetch(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Read ahead in a thread so the event loop rarely waits on S3."""
    q: queue.Queue[Any] = queue.Queue(PREFETCH_CHUNKS)
    done = object()
    stop = threading.Event()

    def pump() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        q.put(chunk, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the reader, which raises it
            q.put(exc)

    thread = threading.Thread(target=pump, name="s3-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class S3Outputs:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)


class DynamoRunStore:
    """Run records as one JSON document plus the attributes the conditions test."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def create(self, run: RunRecord) -> bool:
        return _put_if(
            self._db, TableName=self._table, Item=self._item(run), ConditionExpression="attribute_not_exists(run_id)"
        )

    def get(self, run_id: str) -> RunRecord | None:
        item = self._db.get_item(TableName=self._table, Key={"run_id": {"S": run_id}}, ConsistentRead=True).get("Item")
        return RunRecord.from_item(orjson.loads(item["doc"]["S"])) if item else None

    def claim(self, run_id: str, seq: int, owner: str) -> RunRecord | None:
        return self._transition(
            run_id,
            owner,
            condition="#s = :continuing AND seq = :seq",
            values={":continuing": {"S": CONTINUING}, ":seq": {"N": str(seq)}},
            bump=False,
        )

    def reopen(self, run_id: str, owner: str, *, force: bool) -> RunRecord | None:
        condition = "#s IN (:stopped, :running, :continuing, :queued)" if force else "#s = :stopped"
        values = {":stopped": {"S": STOPPED}}
        if force:
            values |= {":running": {"S": RUNNING}, ":continuing": {"S": CONTINUING}, ":queued": {"S": QUEUED}}
        return self._transition(run_id, owner, condition=condition, values=values, bump=True)

    def save(self, run: RunRecord, expected_seq: int) -> bool:
        values = {":running": {"S": RUNNING}, ":seq": {"N": str(expected_seq)}}
        return self._put_run(run, "#s = :running AND seq = :seq", values)

    def start_queued(self, run_id: str, seq: int) -> bool:
        current = self.get(run_id)
        if current is None or current.status != QUEUED or current.seq != seq:
            return False
        current.status = CONTINUING
        current.seq = seq + 1
        current.updated_at = time.time()
        return self._put_run(
            current, "#s = :queued AND seq = :seq", {":queued": {"S": QUEUED}, ":seq": {"N": str(seq)}}
        )

    def _transition(
        self, run_id: str, owner: str, *, condition: str, values: dict[str, Any], bump: bool
    ) -> RunRecord | None:
        current = self.get(run_id)
        if current is None:
            return None
        old_seq = current.seq
        current.status = RUNNING
        current.owner = owner
        current.updated_at = time.time()
        if bump:
            current.seq += 1
        if not self._put_run(current, f"{condition} AND seq = :old", {**values, ":old": {"N": str(old_seq)}}):
            return None
        return current

    def _put_run(self, run: RunRecord, condition: str, values: dict[str, Any]) -> bool:
        """Write the run if ``condition`` (on ``#s``, its status) holds; False if it does not."""
        return _put_if(
            self._db,
            TableName=self._table,
            Item=self._item(run),
            ConditionExpression=condition,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )

    @staticmethod
    def _item(run: RunRecord) -> dict[str, Any]:
        return {
            "run_id": {"S": run.run_id},
            "status": {"S": run.status},
            "seq": {"N": str(run.seq)},
            "updated_at": {"N": str(int(run.updated_at))},
            "expires_at": {"N": str(int(run.updated_at) + RUN_TTL_SECONDS)},
            "doc": {"S": orjson.dumps(run.to_item()).decode()},
        }


def _conditional(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _put_if(db: Any, **put: Any) -> bool:
    """A conditional ``put_item``: True if written, False if its condition did not hold."""
    try:
        db.put_item(**put)
    except ClientError as exc:
        if _conditional(exc):
            return False
        raise
    return True


class DynamoRunSlots:
    """Run slots as items ``slot#0`` … ``slot#N-1`` of the runs table (see :class:`RunSlots`)."""

    def __init__(self, dynamodb: Any, table: str, slots: int) -> None:
        self._db = dynamodb
        self._table = table
        self._keys = [f"slot#{i}" for i in range(slots)]

    def acquire(self, run_id: str, now: float, lease_seconds: float) -> bool:
        holders = {key: self._holder(key) for key in self._keys}
        mine = [key for key, held in holders.items() if held and held[0] == run_id]
        candidates = mine or [key for key, held in holders.items() if not held or held[1] < now]
        return any(self._take(key, run_id, now, lease_seconds) for key in candidates)

    def release(self, run_id: str) -> None:
        for key in self._keys:
            held = self._holder(key)
            if held and held[0] == run_id:
                self._take(key, run_id, 0.0, 0.0)  # a lease that has already run out

    def enqueue(self, run_id: str, seq: int, queued_at: float) -> None:
        self._edit_queue(lambda entries: entries | {run_id: (seq, queued_at)})

    def waiting(self) -> list[tuple[str, int]]:
        entries, _ = self._read_queue()
        return [(run_id, seq) for run_id, (seq, _) in sorted(entries.items(), key=lambda e: (e[1][1], e[0]))]

    def forget(self, run_id: str, seq: int) -> None:
        self._edit_queue(lambda entries: {k: v for k, v in entries.items() if not (k == run_id and v[0] == seq)})

    def _read_queue(self) -> tuple[dict[str, tuple[int, float]], int]:
        item = self._db.get_item(TableName=self._table, Key={"run_id": {"S": QUEUE_KEY}}, ConsistentRead=True).get(
            "Item"
        )
        if not item:
            return {}, 0
        raw = orjson.loads(item["entries"]["S"])
        return {k: (int(v[0]), float(v[1])) for k, v in raw.items()}, int(item["version"]["N"])

    def _edit_queue(self, edit: Callable[[dict[str, tuple[int, float]]], dict[str, tuple[int, float]]]) -> None:
        """Read, change and write the queue item, conditional on its version (retried on a race)."""
        for attempt in range(QUEUE_WRITE_ATTEMPTS):
            entries, version = self._read_queue()
            changed = edit(entries)
            if changed == entries:
                return
            condition = "version = :v" if version else "attribute_not_exists(run_id)"
            values = {":v": {"N": str(version)}} if version else None
            if _put_if(
                self._db,
                TableName=self._table,
                Item={
                    "run_id": {"S": QUEUE_KEY},
                    "entries": {"S": orjson.dumps(changed).decode()},
                    "version": {"N": str(version + 1)},
                },
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            ):
                return
            time.sleep(0.01 * (attempt + 1))
        raise RuntimeError("the run queue is too busy to update; try again")

    def _holder(self, key: str) -> tuple[str, float] | None:
        item = self._db.get_item(TableName=self._table, Key={"run_id": {"S": key}}, ConsistentRead=True).get("Item")
        if not item or "holder" not in item:
            return None
        return item["holder"]["S"], float(item["lease_until"]["N"])

    def _take(self, key: str, run_id: str, now: float, lease_seconds: float) -> bool:
        until = now + lease_seconds
        return _put_if(
            self._db,
            TableName=self._table,
            Item={
                "run_id": {"S": key},
                "holder": {"S": run_id},
                "lease_until": {"N": f"{until:.3f}"},
                "expires_at": {"N": str(int(max(until, time.time())) + RUN_TTL_SECONDS)},
            },
            ConditionExpression="attribute_not_exists(holder) OR holder = :me OR lease_until < :now",
            ExpressionAttributeValues={":me": {"S": run_id}, ":now": {"N": f"{now:.3f}"}},
        )


class DynamoActiveRuns:
    """Active runs as two maps of one runs-table item per endpoint group (see :class:`ActiveRuns`
    and :func:`active_key`): ``members`` (run id → lease end) and ``rates`` (run id → its recent
    requests per second). A renewal is one UpdateItem of the run's own entries, never a
    read-modify-write of the whole maps, and its answer is the whole item: one request per beat."""

    TIDY_PER_BEAT = 5  # expired entries removed per beat, at most

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def beat(
        self, run_id: str, now: float, lease_seconds: float, rate: float | None = None, *, group: str = TRACK_GROUP
    ) -> dict[str, float | None]:
        key = {"run_id": {"S": active_key(group)}}
        try:
            item = self._renew(key, run_id, now + lease_seconds, rate)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ValidationException":
                raise
            # The first run ever (or an item written before rates were noted): the maps do not
            # exist yet, and a nested path needs them.
            self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET members = if_not_exists(members, :empty), rates = if_not_exists(rates, :empty)",
                ExpressionAttributeValues={":empty": {"M": {}}},
            )
            item = self._renew(key, run_id, now + lease_seconds, rate)
        leases = {k: float(v["N"]) for k, v in item.get("members", {}).get("M", {}).items()}
        rates = {k: float(v["N"]) for k, v in item.get("rates", {}).get("M", {}).items()}
        # The answer is counted before any tidying: the renewal has succeeded whatever follows.
        active = {k: rates.get(k) for k, until in leases.items() if until >= now}
        for expired in [k for k, until in leases.items() if until < now][: self.TIDY_PER_BEAT]:
            try:
                self._remove(key, expired, condition_before=now)
            except Exception as exc:  # a throttled tidy-up: the next beat (of any run) tries again
                logging.getLogger(__name__).warning("tidying an expired active run failed: %s", type(exc).__name__)
                break
        return active

    def leave(self, run_id: str, *, group: str = TRACK_GROUP) -> None:
        self._remove({"run_id": {"S": active_key(group)}}, run_id)

    def _renew(self, key: dict[str, Any], run_id: str, until: float, rate: float | None) -> dict[str, Any]:
        values = {
            ":until": {"N": f"{until:.3f}"},
            ":expires": {"N": str(int(max(until, time.time())) + RUN_TTL_SECONDS)},
        }
        update = "SET members.#run = :until, expires_at = :expires"
        if rate is None or not math.isfinite(rate):
            update += " REMOVE rates.#run"  # not measured yet: the others count it at an even split
        else:
            update += ", rates.#run = :rate"
            values[":rate"] = {"N": f"{max(0.0, rate):.3f}"}
        answer = self._db.update_item(
            TableName=self._table,
            Key=key,
            UpdateExpression=update,
            ExpressionAttributeNames={"#run": run_id},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return dict(answer.get("Attributes") or {})

    def _remove(self, key: dict[str, Any], run_id: str, *, condition_before: float | None = None) -> None:
        """Drop a run's entries (only if its lease ended before ``condition_before``, when given:
        a run that renewed meanwhile stays)."""
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": key,
            "ExpressionAttributeNames": {"#run": run_id},
        }
        if condition_before is not None:
            update["ConditionExpression"] = "members.#run < :now"
            update["ExpressionAttributeValues"] = {":now": {"N": f"{condition_before:.3f}"}}
        # An item written before rates were noted has no rates map to remove from: members alone.
        for expression in ("REMOVE members.#run, rates.#run", "REMOVE members.#run"):
            try:
                self._db.update_item(**update, UpdateExpression=expression)
                return
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                if code == "ConditionalCheckFailedException":
                    return
                if code != "ValidationException":
                    raise


class DynamoSeekPoints:
    """A gzip run's latest seek point, as an item ``seek#<run id>`` of the runs table."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def load(self, run_id: str) -> SeekPoint | None:
        key = {"run_id": {"S": f"seek#{run_id}"}}
        item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return SeekPoint.from_bytes(item["point"]["B"]) if item else None

    def save(self, run_id: str, point: SeekPoint) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                "run_id": {"S": f"seek#{run_id}"},
                "point": {"B": point.to_bytes()},
                "expires_at": {"N": str(int(time.time()) + RUN_TTL_SECONDS)},
            },
        )


class LambdaContinuer:
    """Hands the run to a fresh invocation of this function."""

    def __init__(self, lambda_client: Any, function_name: str) -> None:
        self._client = lambda_client
        self._function = function_name

    def invoke_async(self, payload: dict[str, Any]) -> None:
        self._client.invoke(FunctionName=self._function, InvocationType="Event", Payload=orjson.dumps(payload))


def read_api_key(secrets: Any, secret_id: str) -> str:
    """The secret holds the key itself, or a JSON object with ``api_key``."""
    value = secrets.get_secret_value(SecretId=secret_id)["SecretString"].strip()
    if value.startswith("{"):
        data = orjson.loads(value)
        value = str(data.get("api_key", "")).strip()
    if not value:
        raise ValueError("the Braze API key secret is empty")
    return str(value)
