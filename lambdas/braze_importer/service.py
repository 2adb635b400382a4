"""One invocation of an import run: claim, pump from the checkpoint, write outputs, hand on."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from . import columnar
from .csv_reader import iter_rows
from .delta_stage import DeltaOptions
from .delta_store import DeltaStore
from .deltas import FULL_SEND_TAG
from .endpoints import CatalogDestination, Destination, UserDeleteDestination
from .engine import Checkpoint, Counters, Outcome, Pump, SendPolicy, Share
from .objects import Kind
from .ports import (
    BrazeAnswer,
    Clock,
    Continuer,
    Delivery,
    Endpoint,
    Group,
    ObjectRef,
    ObjectSource,
    OutputStore,
    SeekPoint,
    SeekPointStore,
    UnreadableInput,
)
from .reader import BOM, Element, Format, iter_elements
from .rows import Route, as_object, for_route, route_for
from .runs import COMPLETED, CONTINUING, QUEUED, STOPPED, ActiveRuns, RunRecord, RunSlots, RunStore, run_id_for

OUTPUT_PART_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class Layout:
    """Where outputs go: never under the incoming prefix, so they cannot start a run."""

    incoming_prefix: str
    reports_prefix: str
    rejects_prefix: str
    failed_prefix: str

    def relative(self, key: str) -> str:
        return key[len(self.incoming_prefix) :] if key.startswith(self.incoming_prefix) else key

    def route(self, key: str) -> Route:
        """What the key's folder under the incoming prefix says (kind, dry run); keys elsewhere
        (another pipeline's file imported where it lies) get today's per-object inference."""
        if not key.startswith(self.incoming_prefix):
            return Route()
        return route_for(key[len(self.incoming_prefix) :])

    def report_key(self, run: RunRecord) -> str:
        return f"{self.reports_prefix}{self.relative(run.key)}/{run.tag}.json"

    def output_prefix(self, run: RunRecord, kind: str) -> str:
        base = self.rejects_prefix if kind == "rejects" else self.failed_prefix
        return f"{base}{self.relative(run.key)}/{run.tag}/"

    def output_key(self, run: RunRecord, kind: str, part: int) -> str:
        return f"{self.output_prefix(run, kind)}part-{run.seq:05d}-{part:03d}.jsonl"


@dataclass(slots=True)
class Deps:
    store: RunStore
    source: ObjectSource
    outputs: OutputStore
    continuer: Continuer
    braze_factory: Callable[[], Any]  # an async context manager yielding a BrazeApi
    clock: Clock
    policy: SendPolicy
    layout: Layout
    max_hops: int = 1000
    progress_seconds: float = 5.0
    slots: RunSlots | None = None  # None: no bound on concurrent runs
    seek_points: SeekPointStore | None = None  # None: a gzip resume inflates from byte 0
    slot_lease_seconds: float = 300.0  # a crashed run's slot is free again after this
    active_runs: ActiveRuns | None = None  # None: the run takes the whole workspace figure
    share_refresh_seconds: float = 1.0  # how often a run renews its note and re-reads its share
    share_lease_seconds: float = 6.0  # a crashed run's share goes back to the others after this
    csv_type_cast: dict[str, str] = field(default_factory=dict)  # CSV column -> string|integer|float|boolean
    # Told what a run counted since it last told, about once a period while the run goes on, so
    # metrics show a long invocation's pace minute by minute (the rest is the result's ``delta``).
    on_counters: Callable[[Counters], None] | None = None
    counters_every_seconds: float = 60.0
    # Files under user-deletes/ delete users for good: refused unless this is set (import:allowUserDeletes).
    allow_user_deletes: bool = False
    # Send only what changed (import:deltas): the records of what was last set per user; None: off.
    deltas: DeltaStore | None = None
    delta_max_age_seconds: float = 30 * 86400.0  # import:deltaMaxAgeDays: older records are ignored
    delta_max_array: int | None = 25  # import:maxArrayLength: longer arrays are sent whole, never recorded
    # Whether the object version asks for a full send (its S3 tag FULL_SEND_TAG); None: never.
    full_send_requested: Callable[[ObjectRef], bool] | None = None


@dataclass(slots=True)
class InvocationResult:
    run_id: str
    status: str  # completed | continuing | queued | stopped | duplicate | ignored | not_resumable | superseded
    delta: Counters = field(default_factory=Counters)
    report: dict[str, Any] | None = None


def format_for(key: str, size: int | None = None) -> Format | None:
    """The format by suffix (a ``.json`` must be an array); DETECT for a name without one, as
    warehouse exports (Athena, Redshift UNLOAD) write them: told by content at the first read.
    None for keys this importer ignores: unknown suffixes, empty objects and the markers and
    side files of writers (``_SUCCESS``, ``.crc``, ``.tmp``, hidden names, manifests)."""
    name = key.rpartition("/")[2]
    if not name or name.startswith(("_", ".")):
        return None
    name = name.lower()
    bare = name[:-3] if name.endswith(".gz") else name
    if bare.endswith(".csv"):
        return Format.CSV
    if bare.endswith((".jsonl", ".ndjson")):
        return Format.LINES
    if bare.endswith(".json"):
        return Format.ARRAY
    if bare.endswith((".parquet", ".parq")):
        return Format.PARQUET
    if bare.endswith(".avro"):
        return Format.AVRO
    if "." not in bare and not bare.endswith("manifest") and size != 0:
        return Format.DETECT
    return None


def start(
    ref: ObjectRef, fmt: Format, owner: str, deps: Deps, csv_options: dict[str, Any] | None = None
) -> RunRecord | None:
    """Claim a new run for an object version; None if this notification is a duplicate."""
    run = RunRecord(
        run_id=run_id_for(ref.bucket, ref.key, ref.version_id, ref.etag),
        bucket=ref.bucket,
        key=ref.key,
        version_id=ref.version_id,
        etag=ref.etag,
        format=fmt.value,
        # Without the suffix, the first bytes tell, when the run first reads (see _decide_gzip).
        gzip=True if ref.key.endswith(".gz") else None,
        owner=owner,
        csv_options=csv_options,
        # Read once, when the run starts: a tag put on the object later does not change a run under way.
        full_send=deps.deltas is not None and deps.full_send_requested is not None and deps.full_send_requested(ref),
    )
    return run if deps.store.create(run) else None


def _decide_gzip(run: RunRecord, ref: ObjectRef, deps: Deps) -> UnreadableInput | None:
    """Tell whether an unsuffixed run's object is gzip, once, from its first bytes.

    When S3 will not give them (gone, or denied), the run stays undecided and the error is
    returned, for the run to stop with: an error is never "not gzip", and a resume looks again.
    """
    if run.gzip is not None:
        return None
    try:
        run.gzip = deps.source.is_gzip(ref)
    except UnreadableInput as exc:
        return exc
    return None


def _decide_format(run: RunRecord, ref: ObjectRef, deps: Deps) -> UnreadableInput | None:
    """Tell a suffix-less run's format (and gzip) from its first bytes, once: Parquet ``PAR1``,
    Avro ``Obj\\x01``, gzip (then the text inside it, as for a plain file), text: ``[`` or ``{``
    JSON (an array, or JSON Lines: see _array_or_lines), anything else CSV. Kept in the run record,
    so every continuation reads the same way; left undecided when S3 will not give the bytes."""
    if run.format != Format.DETECT.value:
        return None
    try:
        head, _ = deps.source.read_range(ref, 0, 4)
        if head.startswith(columnar.GZIP_MAGIC):
            run.gzip = True
            head = b"".join(itertools.islice(deps.source.chunks(ref, 0, True), 1))
        else:
            run.gzip = False
    except UnreadableInput as exc:
        return exc
    if head.startswith(columnar.PARQUET_MAGIC):
        run.format = Format.PARQUET.value
    elif head.startswith(columnar.AVRO_MAGIC):
        run.format = Format.AVRO.value
    elif head.removeprefix(BOM).lstrip(b" \t\r\n")[:1] in (b"[", b"{", b""):
        run.format = Format.ARRAY.value
    else:
        run.format = Format.CSV.value
    return None


def _columnar(run: RunRecord, ref: ObjectRef, deps: Deps, checkpoint: Checkpoint) -> Iterator[Element]:
    if run.gzip:
        name = "Parquet" if run.format == Format.PARQUET.value else "Avro"
        raise UnreadableInput(
            0,
            f"a gzip of a {name} file is not read: {name} compresses inside the file; "
            f"upload the {name} file itself (its codec does the compressing)",
        )
    if run.format == Format.PARQUET.value:
        yield from columnar.iter_parquet(deps.source, ref, checkpoint.position)
    else:
        yield from columnar.iter_avro(deps.source, ref, checkpoint.position)


def _raise(error: UnreadableInput) -> Iterator[Any]:
    """A stream (of bytes or elements) that fails with ``error`` when first read, as the source's
    own streams do."""
    raise error
    yield  # pragma: no cover - makes this a generator


def _array_or_lines(chunks: Iterator[bytes], run: RunRecord, checkpoint: Checkpoint) -> Iterator[Element]:
    """The elements of a ``.json`` file: an array, or one object per line when its first line is
    one whole object (Braze's Cloud Data Ingestion samples are JSON Lines named ``.json``; a
    pretty-printed object alone is neither, and stops as invalid JSON). Told once, from the first
    line, when the run starts reading: the run record keeps the answer, so every continuation
    reads the same way."""
    seen: list[bytes] = []
    size = 0
    head = b""
    for chunk in chunks:
        seen.append(chunk)
        size += len(chunk)
        if head[:1] == b"{" and b"\n" not in chunk and size <= _SNIFF_BYTES:
            continue  # inside the first line: nothing new until it ends or grows too long (no re-join)
        head = b"".join(seen).removeprefix(BOM).lstrip(b" \t\r\n")
        if head[:1] not in (b"", b"{") or b"\n" in head or len(head) > _SNIFF_BYTES:
            break
    else:
        head = b"".join(seen).removeprefix(BOM).lstrip(b" \t\r\n")  # the file ended inside its first line
    first_line = head.split(b"\n", 1)[0].rstrip(b" \t\r")
    if first_line.startswith(b"{") and (first_line.endswith(b"}") or len(first_line) > _SNIFF_BYTES):
        run.format = Format.LINES.value
    yield from iter_elements(itertools.chain(seen, chunks), Format(run.format), checkpoint.position)


_SNIFF_BYTES = 8 << 20  # a first line longer than this is taken for an object per line


# A dry run is paced by nothing but its own reading: no request leaves.
_DRY_RUN_REQUESTS_PER_SECOND = 1e9


class _DryRunBraze:
    """Answers every request as Braze would a valid one, without sending it anywhere."""

    async def send(self, endpoint: Endpoint, body: bytes) -> BrazeAnswer:
        if endpoint.group is Group.CATALOG:
            return BrazeAnswer(Delivery.ANSWERED, 202, {"message": "success"})
        if endpoint.group is Group.USER_DELETE:
            deleted = sum(len(v) for v in orjson.loads(body).values() if isinstance(v, list))
            return BrazeAnswer(Delivery.ANSWERED, 201, {"deleted": deleted, "message": "success"})
        return BrazeAnswer(Delivery.ANSWERED, 201, {"message": "success"})


@asynccontextmanager
async def _dry_run_braze() -> AsyncIterator[_DryRunBraze]:
    yield _DryRunBraze()


def _dry_run(deps: Deps) -> Deps:
    """The run's dependencies for a dry run: no Braze, no run slot, no part of the workspace's
    rate limit (the other runs are not slowed by it), nothing added to the function's metrics."""
    policy = dataclasses.replace(
        deps.policy, workspace_requests_per_second=_DRY_RUN_REQUESTS_PER_SECOND, requests_per_second=None
    )
    return dataclasses.replace(
        deps, braze_factory=_dry_run_braze, slots=None, active_runs=None, policy=policy, on_counters=None
    )


def process(run: RunRecord, deps: Deps, keep_going: Callable[[], bool]) -> InvocationResult:
    """Pump the run from its checkpoint until done, stopped or out of time, then record it."""
    route = deps.layout.route(run.key)
    # The run shares its endpoint group's limit, with the runs of that group only.
    deps = dataclasses.replace(deps, policy=deps.policy.for_group(route.group))
    refusal = _refusal(route, run, deps)
    if route.dry_run:
        deps = _dry_run(deps)
    if not _hold_slot(run, deps):
        return _queue(run, deps)
    began = time.monotonic()
    seq = run.seq
    checkpoint = Checkpoint.from_dict(run.checkpoint)
    ref = ObjectRef(run.bucket, run.key, run.version_id, run.etag)
    writer = _OutputWriter(run, deps)
    unreadable = _decide_format(run, ref, deps) or _decide_gzip(run, ref, deps)
    seeks = _SeekPoints(run, deps.seek_points, checkpoint.offset)
    chunks = (
        _raise(unreadable)
        if unreadable is not None
        else deps.source.chunks(
            ref,
            checkpoint.offset,
            bool(run.gzip),
            resume_from=seeks.start,
            on_point=seeks.seen if seeks.store else None,
        )
    )
    elements: Iterable[Element]
    if refusal is not None:
        elements = _raise(UnreadableInput(0, refusal[1]))
    elif run.format == Format.CSV.value:
        # A continuation reads the header again from byte 0 (and the lines before it, for a reject).
        reopen = lambda: deps.source.chunks(ref, 0, bool(run.gzip))  # noqa: E731
        options = run.csv_options or {}
        elements = iter_rows(
            chunks, checkpoint.position, deps.csv_type_cast, reopen,
            id_column=options.get("id_column"), ignore=tuple(options.get("ignore") or ()),
            cdi=route.kind is not None, kind=route.kind or Kind.ATTRIBUTES,
            convert=functools.partial(as_object, kind=route.kind) if route.kind else None,
            group=route.group,  # a catalog's or user-deletes/ rows: their own header rules and kinds
        )  # fmt: skip
    elif run.format in (Format.PARQUET.value, Format.AVRO.value):
        elements = _raise(unreadable) if unreadable is not None else _columnar(run, ref, deps, checkpoint)
    elif run.format == Format.ARRAY.value and checkpoint.offset == 0:
        elements = _array_or_lines(chunks, run, checkpoint)
    else:
        elements = iter_elements(chunks, Format(run.format), checkpoint.position)
    if run.format != Format.CSV.value:
        elements = for_route(elements, route)
    base_counters = Counters.from_dict(run.counters)
    base_reasons = dict(run.failure_reasons)
    base_seconds = run.active_seconds
    base_endpoints = {k: dict(v) for k, v in run.endpoints.items()}
    pump: Pump | None = None

    def record(point: Checkpoint) -> None:
        assert pump is not None
        run.checkpoint = point.to_dict()
        run.failed_items = pump.failed_items  # with the checkpoint: a continuation keeps each item's order
        run.counters = asdict(base_counters.add(pump.counters))
        run.failure_reasons = {**base_reasons}
        for reason, count in pump.failure_reasons.items():
            run.failure_reasons[reason] = run.failure_reasons.get(reason, 0) + count
        run.active_seconds = base_seconds + time.monotonic() - began
        run.updated_at = time.time()
        run.endpoints = {k: dict(v) for k, v in base_endpoints.items()}
        for label, counts in pump.endpoints.items():
            mine = run.endpoints.setdefault(label, {"requests": 0, "objects": 0})
            for name, count in counts.items():
                mine[name] = mine.get(name, 0) + count

    told = Counters()
    told_at = time.monotonic()

    def tell_counters() -> None:
        nonlocal told, told_at
        assert pump is not None
        if deps.on_counters is not None and time.monotonic() - told_at >= deps.counters_every_seconds:
            now = Counters(**asdict(pump.counters))
            deps.on_counters(now.minus(told))
            told, told_at = now, time.monotonic()

    def progress(point: Checkpoint) -> bool:
        # Outputs first: the checkpoint must not call settled what no file holds yet.
        writer.flush()
        record(point)
        seeks.keep(point.offset)
        tell_counters()
        return deps.store.save(run, expected_seq=seq)

    async def pump_it(holding: Callable[[], bool]) -> Any:
        nonlocal pump
        async with deps.braze_factory() as braze:
            pump = Pump(
                braze,
                deps.policy,
                deps.clock,
                on_reject=writer.reject,
                on_failed=writer.failed,
                on_progress=progress,
                progress_seconds=deps.progress_seconds,
                share=share,
                destination=destination,
                failed_items=run.failed_items,
                deltas=deltas,
            )
            # A run whose slot lease was lost (taken over after a long stall) pauses: its
            # continuation finds the slots taken and queues, instead of running beyond the bound.
            return await pump.run(elements, checkpoint, lambda: holding() and keep_going())

    destination = _destination(route)
    # A dry run sends nothing, so it neither reads nor changes the records.
    deltas = (
        DeltaOptions(
            deps.deltas,
            deps.delta_max_age_seconds,
            full=run.full_send,
            max_array=deps.delta_max_array,
        )
        if deps.deltas is not None and not route.dry_run
        else None
    )
    run.deltas = deltas is not None and route.group is Group.TRACK
    share = Share(deps.policy.workspace_requests_per_second)
    with _Heartbeat(run.run_id, deps, share, route.group) as beat, _fewer_collections():
        result = asyncio.run(pump_it(beat.still_holding))
    assert pump is not None
    writer.flush()
    record(result.checkpoint)
    run.invocations += 1
    run.error = result.error
    continue_after = False
    if result.stop_reason == "superseded":
        return InvocationResult(run.run_id, "superseded", _delta(pump.counters.minus(told), route), None)
    if result.outcome is Outcome.COMPLETED:
        run.status = COMPLETED
    elif result.outcome is Outcome.PAUSED and run.invocations - run.hop_base < deps.max_hops:
        run.status = CONTINUING
        run.seq = seq + 1
        continue_after = True
    else:
        run.status = STOPPED
        run.stop_reason = {
            Outcome.STOPPED: result.stop_reason,
            Outcome.INVALID_JSON: "invalid_json",
            Outcome.UNREADABLE: "unreadable_file",
            Outcome.SOURCE_GONE: "source_gone",
            Outcome.SOURCE_DENIED: "source_access_denied",
            Outcome.PAUSED: "hop_limit",
        }.get(result.outcome, "unknown")
        if refusal is not None:
            run.stop_reason = refusal[0]
    report = build_report(run, deps.layout, allow_user_deletes=deps.allow_user_deletes)
    deps.outputs.put(deps.layout.report_key(run), orjson.dumps(report, option=orjson.OPT_INDENT_2), "application/json")
    if run.status != COMPLETED:
        seeks.keep(result.checkpoint.offset)
    if not deps.store.save(run, expected_seq=seq):
        # Someone took the run over (a forced resume); what this invocation settled is recorded
        # in its output files, and the new owner resumes from the checkpoint it read.
        return InvocationResult(run.run_id, "superseded", _delta(pump.counters.minus(told), route), report)
    if not continue_after or not beat.still_holding():
        _leave(run.run_id, deps, route.group)  # its share goes back to the other runs now, not when the lease ends
    if deps.slots is not None:
        if continue_after:  # keep the slot for the continuation
            deps.slots.acquire(run.run_id, deps.clock.time(), deps.slot_lease_seconds)
        else:
            deps.slots.release(run.run_id)
            start_queued(deps)  # the freed slot goes to the oldest queued run
    if continue_after:
        deps.continuer.invoke_async({"action": "continue", "run_id": run.run_id, "seq": run.seq})
    return InvocationResult(run.run_id, run.status, _delta(pump.counters.minus(told), route), report)


@contextmanager
def _fewer_collections(young: int = 50_000) -> Iterator[None]:
    """Python's cyclic garbage collector runs less often while a run pumps. Rows are trees (no cycles:
    reference counting frees them), but the thousands held in batches waiting for Braze are walked again
    by every collection: 40 % of a 200,000-object import's time at the default threshold (700), a few %
    at this one. Cyclic garbage (asyncio's, exceptions') is still collected, in larger steps."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(young, threshold[0]), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


def _refusal(route: Route, run: RunRecord, deps: Deps) -> tuple[str, str] | None:
    """(stop reason, message) when the run's folder or file is not imported; nothing is sent."""
    if route.refused is not None:
        return "unsupported_folder", route.refused
    if route.user_deletes and not route.dry_run and not deps.allow_user_deletes:
        return "user_deletes_not_allowed", USER_DELETES_REFUSED
    return None


USER_DELETES_REFUSED = (
    "files under user-deletes/ delete Braze users for good, and this deployment does not allow it: set the "
    "context value import:allowUserDeletes to true in cdk.json and deploy, then resume this run (or drop the "
    "file under dry-run/user-deletes/ first to see what it would delete); nothing was sent"
)


def _destination(route: Route) -> Destination:
    if route.catalog is not None:
        return CatalogDestination(route.catalog)
    if route.user_deletes:
        return UserDeleteDestination()
    return Destination()


def _delta(counters: Counters, route: Route) -> Counters:
    """What the invocation adds to the function's metrics: nothing for a dry run (its report says
    what it found), so dry runs never look like objects sent or rejected in production."""
    return Counters() if route.dry_run else counters


class _SeekPoints:
    """Seek points of a gzip run: the one to resume from, the recent ones seen while reading, and
    the one kept beside the checkpoint (the latest at or before it: the checkpoint trails the read
    position by what is in flight, so a few recent points are remembered)."""

    RECENT = 16

    def __init__(self, run: RunRecord, store: SeekPointStore | None, offset: int) -> None:
        self.store = store if run.gzip else None
        self._run_id = run.run_id
        loaded = self.store.load(run.run_id) if self.store is not None else None
        # A point past the checkpoint belongs to a checkpoint that was never saved: not usable.
        self.start = loaded if loaded is not None and loaded.out_offset <= offset else None
        self._kept = self.start
        self._recent: deque[SeekPoint] = deque(maxlen=self.RECENT)

    def seen(self, point: SeekPoint) -> None:
        self._recent.append(point)

    def keep(self, offset: int) -> None:
        """Save the latest point at or before ``offset``; call before saving that checkpoint."""
        if self.store is None:
            return
        best = self._kept
        for point in self._recent:
            if point.out_offset <= offset and (best is None or point.out_offset > best.out_offset):
                best = point
        if best is not None and best is not self._kept:
            self.store.save(self._run_id, best)
            self._kept = best


class _Heartbeat:
    """While the pump runs, renews the run's slot lease and its note among the active runs, on
    wall-clock time from its own thread, and keeps the run's :class:`Share` up to date.

    Renewing on progress alone would not do: a run can spend minutes without any (long 429 or
    backoff waits, the final drain); a lease that ran out meanwhile would let a second run take
    the slot. A renewal that finds the slot taken by another run (this one stalled past its
    lease) clears ``still_holding``, and the pump pauses."""

    def __init__(self, run_id: str, deps: Deps, share: Share, group: Group = Group.TRACK) -> None:
        self._run_id = run_id
        self._deps = deps
        self._share = share
        self._group = group.value
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread: threading.Thread | None = None
        self._slot_renewed = time.monotonic()
        self._noted_at = deps.clock.time()  # the last successful note (or the start)

    def still_holding(self) -> bool:
        return not self._lost.is_set()

    def __enter__(self) -> _Heartbeat:
        if self._deps.active_runs is not None:
            self._note()  # before the first request: the other runs make room within a beat
        if self._deps.slots is not None or self._deps.active_runs is not None:
            self._thread = threading.Thread(target=self._beat, name="run-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        deps = self._deps
        every = every_slot = deps.slot_lease_seconds / 3
        if deps.active_runs is not None:
            every = min(every, deps.share_refresh_seconds)
        while not self._stop.wait(every):
            if deps.active_runs is not None:
                self._note()
            if deps.slots is not None and time.monotonic() - self._slot_renewed >= every_slot:
                self._renew_slot(deps.slots)

    def _note(self) -> None:
        deps = self._deps
        assert deps.active_runs is not None
        now = deps.clock.time()
        rate = self._share.measured_rate(deps.clock.monotonic())
        try:
            active = deps.active_runs.beat(self._run_id, now, deps.share_lease_seconds, rate, group=self._group)
        except Exception as exc:  # the next beat tries again
            logging.getLogger(__name__).warning("active-run renewal failed: %s", type(exc).__name__)
            if now - self._noted_at >= deps.share_lease_seconds:
                self._share.lapse()  # the others may no longer count this run: go cautiously
            return
        self._noted_at = now
        self._share.set_active(self._run_id, active)

    def _renew_slot(self, slots: RunSlots) -> None:
        try:
            held = slots.acquire(self._run_id, self._deps.clock.time(), self._deps.slot_lease_seconds)
        except Exception as exc:  # retried at the next beat: the lease outlasts two more
            logging.getLogger(__name__).warning("run slot renewal failed: %s", type(exc).__name__)
            return
        self._slot_renewed = time.monotonic()
        if not held:
            logging.getLogger(__name__).warning("run slot lost to another run: pausing")
            self._lost.set()


def _leave(run_id: str, deps: Deps, group: Group = Group.TRACK) -> None:
    if deps.active_runs is None:
        return
    try:
        deps.active_runs.leave(run_id, group=group.value)
    except Exception as exc:  # the lease runs out on its own within seconds
        logging.getLogger(__name__).warning("leaving the active runs failed: %s", type(exc).__name__)


def _hold_slot(run: RunRecord, deps: Deps) -> bool:
    """Take (or keep) one of the run slots; never waits."""
    if deps.slots is None:
        return True
    return deps.slots.acquire(run.run_id, deps.clock.time(), deps.slot_lease_seconds)


def _queue(run: RunRecord, deps: Deps) -> InvocationResult:
    """Every slot is taken: record the run as queued and end the invocation, so a waiting run
    uses no compute. The run record keeps its checkpoint (nothing of the file is lost) and queued
    time does not count against the hop limit. The note goes in before the record: a sweep that
    sees a note whose run is not queued yet leaves it alone."""
    assert deps.slots is not None
    seq = run.seq
    run.status = QUEUED
    run.seq = seq + 1
    run.queued_hops += 1
    run.queued_at = run.updated_at = deps.clock.time()
    deps.slots.enqueue(run.run_id, run.seq, run.queued_at)
    if not deps.store.save(run, expected_seq=seq):
        deps.slots.forget(run.run_id, run.seq)
        return InvocationResult(run.run_id, "superseded")
    # A slot may have come free between the look and the note (its releaser saw no queued run).
    start_queued(deps)
    return InvocationResult(run.run_id, "queued")


def start_queued(deps: Deps) -> list[str]:
    """Start queued runs, oldest first, while slots are free; the ids started.

    For each, a slot is taken in the run's name, then the run goes queued → continuing with a
    conditional write (of two starters racing, one wins; the loser's slot take was the same
    slot, renewed) and is invoked asynchronously; its note goes only once the invocation is
    sent, so a starter that dies in between leaves the sweep to send it. Called when a run gives its slot back and by
    the periodic sweep, which also covers a holder that died and whose lease ran out."""
    if deps.slots is None:
        return []
    started: list[str] = []
    for run_id, seq in deps.slots.waiting():
        run = deps.store.get(run_id)
        if run is not None and run.status == CONTINUING and run.seq == seq + 1:
            # Started, but the starter may have died before the invocation went out: send it
            # (again). A duplicate is harmless: only one invocation claims continuing(seq+1).
            deps.continuer.invoke_async({"action": "continue", "run_id": run_id, "seq": seq + 1})
            deps.slots.forget(run_id, seq)
            continue
        if run is None or run.seq > seq or (run.seq == seq and run.status != QUEUED):
            deps.slots.forget(run_id, seq)  # started by someone else, resumed, or gone
            continue
        if run.seq < seq:
            continue  # noted, not yet recorded as queued (or its queuer died: a resume clears it)
        if not deps.slots.acquire(run_id, deps.clock.time(), deps.slot_lease_seconds):
            break  # no slot free: the rest stay queued, in order
        if deps.store.start_queued(run_id, seq):
            deps.continuer.invoke_async({"action": "continue", "run_id": run_id, "seq": seq + 1})
            started.append(run_id)
        deps.slots.forget(run_id, seq)
    return started


def handle_sweep(deps: Deps) -> InvocationResult:
    started = start_queued(deps)
    return InvocationResult("sweep", f"started {len(started)}")


def build_report(run: RunRecord, layout: Layout, *, allow_user_deletes: bool) -> dict[str, Any]:
    counters = Counters.from_dict(run.counters)
    status = run.status if run.status in (COMPLETED, STOPPED) else "running"
    report: dict[str, Any] = {
        "run_id": run.run_id,
        "status": status,
        "source": {
            "bucket": run.bucket,
            "key": run.key,
            "version_id": run.version_id,
            "format": run.format,
            "gzip": run.gzip,
            **({"columns": run.csv_options} if run.csv_options else {}),
        },
        **{k: v for k, v in asdict(counters).items() if k not in _DELTA_COUNTERS},
        "invocations": run.invocations,
        "queued_invocations": run.queued_hops,
        "seconds": round(run.active_seconds, 3),
        "started_at": run.started_at,
        "updated_at": run.updated_at,
        "failure_reasons": run.failure_reasons,
        "checkpoint": run.checkpoint,
        "outputs": {
            "report": layout.report_key(run),
            **{
                kind: {"prefix": layout.output_prefix(run, kind), "files": run.outputs.get(kind, 0)}
                for kind in ("rejects", "failed")
            },
        },
    }
    route = layout.route(run.key)
    if route.group is Group.TRACK:
        report["deltas"] = _deltas_report(run, counters)
    if route.kind is not None:
        report["source"]["kind"] = route.kind
    if route.catalog is not None:
        report["source"]["catalog"] = route.catalog
        report["notes"] = [
            "accepted catalog items were queued by Braze's asynchronous catalog endpoints (202)",
            "a DELETE of an item the catalog does not have counts as accepted: deleting is idempotent",
        ]
    if route.user_deletes:
        report["source"]["user_deletes"] = True
    # Per endpoint: requests started and objects Braze took (a DELETE of a catalog item Braze
    # does not have counts as taken: deleting it again changes nothing).
    endpoints = {e.label: {"requests": 0, "objects": 0} for e in _destination(route).endpoints[:1]}
    endpoints |= {label: dict(counts) for label, counts in run.endpoints.items()}
    if route.dry_run:
        # Nothing was sent: what passed every check is what a real run would have sent.
        report["dry_run"] = True
        report["would_send"] = endpoints
        report["accepted"] = report["requests"] = 0
        if route.user_deletes and not allow_user_deletes:
            report["real_run"] = {"refused": True, "stop_reason": "user_deletes_not_allowed",
                                  "message": USER_DELETES_REFUSED}  # fmt: skip
        elif route.user_deletes:
            report["real_run"] = {"refused": False}
    else:
        report["endpoints"] = endpoints
    if run.status == STOPPED:
        report["stop_reason"] = run.stop_reason
        if run.stop_reason not in ("invalid_json", "unreadable_file", "source_gone", "unsupported_folder"):
            report["resume"] = {"action": "resume", "run_id": run.run_id}
    if run.error:
        report["error"] = run.error
    return report


# Counters the report gives in its ``deltas`` section, named there without their ``delta_`` prefix.
_DELTA_COUNTERS = (
    "values_read",
    "values_sent",
    "values_skipped",
    "objects_unchanged",
    "users_too_large",
    "delta_lookup_errors",
    "delta_commit_errors",
)


def _deltas_report(run: RunRecord, counters: Counters) -> dict[str, Any]:
    """What sending only what changed did: attribute values (identifiers not counted) read, sent and left
    out as unchanged; attributes objects not sent at all; users sent in full, unrecorded, as too large."""
    section: dict[str, Any] = {"enabled": run.deltas, "full_send": run.full_send}
    section |= {field.removeprefix("delta_"): getattr(counters, field) for field in _DELTA_COUNTERS}
    if counters.delta_commit_errors:
        section["warning"] = (
            f"{counters.delta_commit_errors} users' records could not be updated after Braze took their values: "
            "a later file could leave out a value Braze no longer holds. Import this file again with the S3 tag "
            f"{FULL_SEND_TAG[0]}={FULL_SEND_TAG[1]} to rewrite them."
        )
    return section


class _OutputWriter:
    """Buffers rejects and failed objects as JSON Lines and writes them in parts."""

    def __init__(self, run: RunRecord, deps: Deps) -> None:
        self._run = run
        self._deps = deps
        self._buffers: dict[str, list[bytes]] = {"rejects": [], "failed": []}
        self._sizes = {"rejects": 0, "failed": 0}
        self._parts = {"rejects": 0, "failed": 0}

    def reject(self, record: dict[str, Any]) -> None:
        self._add("rejects", orjson.dumps(record))

    def failed(self, obj: dict[str, Any]) -> None:
        self._add("failed", orjson.dumps(obj))

    def _add(self, kind: str, line: bytes) -> None:
        self._buffers[kind].append(line)
        self._sizes[kind] += len(line) + 1
        if self._sizes[kind] >= OUTPUT_PART_BYTES:
            self._write(kind)

    def flush(self) -> None:
        for kind in self._buffers:
            self._write(kind)

    def _write(self, kind: str) -> None:
        lines = self._buffers[kind]
        if not lines:
            return
        self._parts[kind] += 1
        key = self._deps.layout.output_key(self._run, kind, self._parts[kind])
        self._deps.outputs.put(key, b"\n".join(lines) + b"\n", "application/x-ndjson")
        self._run.outputs[kind] = self._run.outputs.get(kind, 0) + 1
        self._buffers[kind] = []
        self._sizes[kind] = 0


def handle_start(
    ref: ObjectRef,
    owner: str,
    deps: Deps,
    keep_going: Callable[[], bool],
    *,
    fmt: Format | None = None,
    csv_options: dict[str, Any] | None = None,
) -> InvocationResult:
    """Start the run of an object version: its format by its suffix unless ``fmt`` says."""
    run_id = run_id_for(ref.bucket, ref.key, ref.version_id, ref.etag)
    fmt = fmt or format_for(ref.key, ref.size)
    if fmt is None:
        return InvocationResult(run_id, "ignored")  # e.g. a .tsv.gz let through by the .gz filter
    run = start(ref, fmt, owner, deps, csv_options)
    if run is None:
        return InvocationResult(run_id, "duplicate")
    return process(run, deps, keep_going)


def handle_continue(run_id: str, seq: int, owner: str, deps: Deps, keep_going: Callable[[], bool]) -> InvocationResult:
    run = deps.store.claim(run_id, seq, owner)
    if run is None:
        return InvocationResult(run_id, "duplicate")
    return process(run, deps, keep_going)


def handle_resume(
    run_id: str, owner: str, deps: Deps, keep_going: Callable[[], bool], *, force: bool
) -> InvocationResult:
    run = deps.store.reopen(run_id, owner, force=force)
    if run is None:
        return InvocationResult(run_id, "not_resumable")
    run.stop_reason = None
    run.hop_base = run.invocations  # a resumed run gets the whole hop limit again
    return process(run, deps, keep_going)
