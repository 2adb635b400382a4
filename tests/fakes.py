"""In-memory stand-ins for the importer's ports."""

from __future__ import annotations

import asyncio
import copy
import gzip
import io
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from itertools import count
from typing import Any

import orjson
from botocore.exceptions import ClientError
from braze_importer.engine import SendPolicy
from braze_importer.ports import BrazeAnswer, Delivery, Endpoint, Group, ObjectRef, SeekPoint
from braze_importer.runs import CONTINUING, QUEUED, RUNNING, STOPPED, RunRecord
from braze_importer.service import Deps, Layout, handle_continue, handle_start


class FakeClock:
    """Virtual time: sleeping advances it at once, so pacing tests take milliseconds."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = 0.0
        self.epoch = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.epoch + self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)

    def jitter(self) -> float:
        return 0.5


def answer(status: int = 201, body: dict[str, Any] | None = None, **kw: Any) -> BrazeAnswer:
    return BrazeAnswer(Delivery.ANSWERED, status=status, body=body or {"message": "success"}, **kw)


class FakeBraze:
    """Answers from ``script`` (a list consumed per request, then ``default``) and records what it
    stored: everything answered 2xx minus the objects listed in errors, plus 'ambiguous-stored'.

    Every endpoint's requests are noted in ``sent`` as (endpoint, payload); /users/track's alone
    also in ``requests``. A stored catalog request applies to ``catalogs`` (name -> id -> item) in
    arrival order, and a stored /users/delete adds its identifiers to ``deleted``. The default
    answer of a catalog endpoint is 202, of /users/delete 201, as Braze's."""

    def __init__(self, script: list[Any] | None = None, default: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.script = list(script or [])
        self.default = default or (lambda payload: answer())
        self.requests: list[dict[str, Any]] = []
        self.stored: list[dict[str, Any]] = []
        self.sent: list[tuple[Endpoint, dict[str, Any]]] = []
        self.catalogs: dict[str, dict[str, dict[str, Any]]] = {}
        self.deleted: list[tuple[str, Any]] = []

    async def send(self, endpoint: Endpoint, body: bytes) -> BrazeAnswer:
        payload = orjson.loads(body)
        self.sent.append((endpoint, payload))
        if endpoint.group is not Group.TRACK:
            return await self._other(endpoint, payload)
        self.requests.append(payload)
        step = self.script.pop(0) if self.script else self.default(payload)
        if callable(step):
            step = step(payload)
        stored = False
        if step == "ambiguous_stored":
            stored, step = True, BrazeAnswer(Delivery.AMBIGUOUS, detail="ServerDisconnectedError")
        elif step == "ambiguous_lost":
            step = BrazeAnswer(Delivery.AMBIGUOUS, detail="ServerDisconnectedError")
        elif step == "not_sent":
            step = BrazeAnswer(Delivery.NOT_SENT, detail="ClientConnectorError")
        if stored or (step.delivery is Delivery.ANSWERED and 200 <= step.status < 300):
            refused = {(e["input_array"], e["index"]) for e in step.body.get("errors", [])}
            for array in ("attributes", "events", "purchases"):
                for i, obj in enumerate(payload.get(array, [])):
                    if (array, i) not in refused:
                        self.stored.append(obj)
        return step

    async def _other(self, endpoint: Endpoint, payload: dict[str, Any]) -> BrazeAnswer:
        await asyncio.sleep(0)  # requests in flight at once may finish in any order
        if self.script:
            step = self.script.pop(0)
        else:
            step = self.default(payload) if self.default_for_all else self.braze_answer(endpoint, payload)
        if callable(step):
            step = step(endpoint, payload)
        stored = False
        if step == "ambiguous_stored":
            stored, step = True, BrazeAnswer(Delivery.AMBIGUOUS, detail="ServerDisconnectedError")
        elif step == "ambiguous_lost":
            step = BrazeAnswer(Delivery.AMBIGUOUS, detail="ServerDisconnectedError")
        elif step == "not_sent":
            step = BrazeAnswer(Delivery.NOT_SENT)
        if stored or (step.delivery is Delivery.ANSWERED and 200 <= step.status < 300):
            self.apply(endpoint, payload)
        return step

    default_for_all = False  # True: ``default`` answers every endpoint's requests, not Braze's rules

    def braze_answer(self, endpoint: Endpoint, payload: dict[str, Any]) -> BrazeAnswer:
        """What Braze answers a valid request of ``endpoint``."""
        if endpoint.group is Group.CATALOG:
            return answer(202)
        return answer(201, {"deleted": sum(len(v) for v in payload.values()), "message": "success"})

    def apply(self, endpoint: Endpoint, payload: dict[str, Any]) -> None:
        if endpoint.group is Group.CATALOG:
            items = self.catalogs.setdefault(endpoint.path.split("/")[2], {})
            for item in payload["items"]:
                if endpoint.method == "DELETE":
                    items.pop(item["id"], None)
                else:
                    items[item["id"]] = item
        else:
            self.deleted.extend((array, value) for array, values in payload.items() for value in values)

    def factory(self) -> Any:
        @asynccontextmanager
        async def open_client() -> Any:
            yield self

        return open_client


class FakeBody:
    def __init__(self, data: bytes, chunk: int) -> None:
        self._data = data
        self._chunk = chunk

    def iter_chunks(self, size: int) -> Iterator[bytes]:
        step = min(size, self._chunk)
        for i in range(0, len(self._data), step):
            yield self._data[i : i + step]

    def read(self) -> bytes:
        return self._data


class FakeS3:
    """get_object / put_object / get_object_tagging over dicts, with Range and VersionId like S3."""

    def __init__(self, chunk: int = 1 << 20) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.tags: dict[tuple[str, str], dict[str, str]] = {}
        self.chunk = chunk
        self.ranges: list[str | None] = []
        self.tag_reads: list[dict[str, Any]] = []

    def get_object(self, Bucket: str, Key: str, Range: str | None = None, **_: Any) -> dict[str, Any]:
        data = self.objects[(Bucket, Key)]
        self.ranges.append(Range)
        if Range:
            start, _, end = Range.removeprefix("bytes=").partition("-")
            if int(start) >= len(data):
                error = {"Error": {"Code": "InvalidRange", "Message": "The requested range is not satisfiable"}}
                raise ClientError(error, "GetObject")  # S3 answers 416, also for any range of an empty object
            size = len(data)
            data = data[int(start) : int(end) + 1 if end else None]
            return {
                "Body": FakeBody(data, self.chunk),
                "ContentRange": f"bytes {start}-{int(start) + len(data) - 1}/{size}",
            }
        return {"Body": FakeBody(data, self.chunk)}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = Body if isinstance(Body, bytes) else Body.read()
        return {"ETag": '"etag"', "VersionId": "v1"}

    def get_object_tagging(self, Bucket: str, Key: str, **kw: Any) -> dict[str, Any]:
        self.tag_reads.append({"Bucket": Bucket, "Key": Key, **kw})
        if (Bucket, Key) not in self.objects:
            error = {"Error": {"Code": "NoSuchKey", "Message": "The specified key does not exist."}}
            raise ClientError(error, "GetObjectTagging")
        tags = self.tags.get((Bucket, Key), {})
        return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


class MemoryRunStore:
    def __init__(self) -> None:
        self.items: dict[str, RunRecord] = {}

    def create(self, run: RunRecord) -> bool:
        if run.run_id in self.items:
            return False
        self.items[run.run_id] = copy.deepcopy(run)
        return True

    def get(self, run_id: str) -> RunRecord | None:
        run = self.items.get(run_id)
        return copy.deepcopy(run) if run else None

    def claim(self, run_id: str, seq: int, owner: str) -> RunRecord | None:
        run = self.items.get(run_id)
        if run is None or run.status != CONTINUING or run.seq != seq:
            return None
        run.status, run.owner = RUNNING, owner
        return copy.deepcopy(run)

    def reopen(self, run_id: str, owner: str, *, force: bool) -> RunRecord | None:
        run = self.items.get(run_id)
        allowed = (STOPPED, RUNNING, CONTINUING, QUEUED) if force else (STOPPED,)
        if run is None or run.status not in allowed:
            return None
        run.status, run.owner, run.seq = RUNNING, owner, run.seq + 1
        return copy.deepcopy(run)

    def save(self, run: RunRecord, expected_seq: int) -> bool:
        current = self.items.get(run.run_id)
        if current is None or current.status != RUNNING or current.seq != expected_seq:
            return False
        self.items[run.run_id] = copy.deepcopy(run)
        return True

    def start_queued(self, run_id: str, seq: int) -> bool:
        run = self.items.get(run_id)
        if run is None or run.status != QUEUED or run.seq != seq:
            return False
        run.status, run.seq = CONTINUING, seq + 1
        return True


class MemorySlots:
    """RunSlots over a dict: slot -> (holder, lease_until)."""

    def __init__(self, slots: int) -> None:
        self.held: dict[int, tuple[str, float]] = {}
        self.slots = slots
        self.queue: dict[str, tuple[int, float]] = {}  # run_id -> (queued seq, queued_at)

    def acquire(self, run_id: str, now: float, lease_seconds: float) -> bool:
        mine = [i for i, (holder, _) in self.held.items() if holder == run_id]
        free = [i for i in range(self.slots) if i not in self.held or self.held[i][1] < now]
        for i in mine or free[:1]:
            self.held[i] = (run_id, now + lease_seconds)
            return True
        return False

    def release(self, run_id: str) -> None:
        self.held = {i: h for i, h in self.held.items() if h[0] != run_id}

    def enqueue(self, run_id: str, seq: int, queued_at: float) -> None:
        self.queue = self.queue | {run_id: (seq, queued_at)}

    def waiting(self) -> list[tuple[str, int]]:
        return [(k, v[0]) for k, v in sorted(self.queue.items(), key=lambda e: (e[1][1], e[0]))]

    def forget(self, run_id: str, seq: int) -> None:
        self.queue = {k: v for k, v in self.queue.items() if not (k == run_id and v[0] == seq)}


class MemoryActiveRuns:
    """ActiveRuns over dicts: run_id -> lease_until, run_id -> recent rate (``leases`` and ``rates``
    are /users/track's; each other endpoint group has its own pair in ``groups``)."""

    def __init__(self) -> None:
        self.leases: dict[str, float] = {}
        self.rates: dict[str, float] = {}
        self.groups: dict[str, tuple[dict[str, float], dict[str, float]]] = {"track": (self.leases, self.rates)}
        self.beats = 0

    def _of(self, group: str) -> tuple[dict[str, float], dict[str, float]]:
        return self.groups.setdefault(group, ({}, {}))

    def beat(
        self, run_id: str, now: float, lease_seconds: float, rate: float | None = None, *, group: str = "track"
    ) -> dict[str, float | None]:
        self.beats += 1
        leases, rates = self._of(group)
        leases[run_id] = now + lease_seconds
        if rate is None:
            rates.pop(run_id, None)
        else:
            rates[run_id] = rate
        return {k: rates.get(k) for k, until in leases.items() if until >= now}

    def leave(self, run_id: str, *, group: str = "track") -> None:
        leases, rates = self._of(group)
        leases.pop(run_id, None)
        rates.pop(run_id, None)


class MemorySeekPoints:
    def __init__(self) -> None:
        self.points: dict[str, bytes] = {}
        self.saves = 0

    def load(self, run_id: str) -> SeekPoint | None:
        data = self.points.get(run_id)
        return SeekPoint.from_bytes(data) if data else None

    def save(self, run_id: str, point: SeekPoint) -> None:
        self.points[run_id] = point.to_bytes()
        self.saves += 1


class QueueContinuer:
    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []

    def invoke_async(self, payload: dict[str, Any]) -> None:
        self.payloads.append(payload)


class MemoryOutputs:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.files[key] = body

    def lines(self, prefix: str) -> list[dict[str, Any]]:
        return [
            orjson.loads(line)
            for key in sorted(k for k in self.files if k.startswith(prefix))
            for line in self.files[key].splitlines()
        ]


LAYOUT = Layout("incoming/", "reports/", "rejects/", "failed/")


def make_deps(braze: FakeBraze, s3: FakeS3, policy: SendPolicy | None = None, **kw: Any) -> Deps:
    from braze_importer.aws import S3Source

    return Deps(
        store=kw.pop("store", MemoryRunStore()),
        source=kw.pop("source", None) or S3Source(s3),
        outputs=kw.pop("outputs", MemoryOutputs()),
        continuer=kw.pop("continuer", QueueContinuer()),
        braze_factory=braze.factory(),
        clock=FakeClock(),
        policy=policy or SendPolicy(max_in_flight=1),
        layout=LAYOUT,
        **kw,
    )


def gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    # mtime 0: the same bytes every time, so test ids made of them agree across pytest-xdist workers
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def run_chain(deps: Deps, ref: ObjectRef, batches_per_invocation: int) -> list[str]:
    """Drive start + every continuation, each invocation stopping after N time checks."""

    def budget() -> Any:
        ticks = count()
        return lambda: next(ticks) < batches_per_invocation

    statuses = [handle_start(ref, "req-0", deps, budget()).status]
    while deps.continuer.payloads:
        payload = deps.continuer.payloads.pop(0)
        statuses.append(handle_continue(payload["run_id"], payload["seq"], "req", deps, budget()).status)
    return statuses


def create_runs_table(dynamodb: Any, name: str = "runs") -> None:
    """The importer's runs table (keyed by ``run_id``), in moto."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "run_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
