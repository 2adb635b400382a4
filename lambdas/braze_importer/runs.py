"""Run records: who owns a run, where it stands, and the conditional writes that hand it on.

A run is one import of one object version. Its record moves through these states:

    running ──pause──▶ continuing ──claim──▶ running ──finish──▶ completed
       │                                       │
       └───stop (auth, invalid JSON, unreadable file, hop limit)──▶ stopped ──resume──▶ running

A run that finds every run slot taken goes running ──queue──▶ queued and its invocation ends at
once: a queued run uses no compute. When a run gives its slot back, and from a periodic sweep,
the oldest queued runs go queued ──start──▶ continuing (a conditional write: one starter wins)
and are invoked like any continuation.

Every transition is a conditional write on (status, seq): a duplicated S3 notification or a
duplicated asynchronous invocation loses the race and sends nothing.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pipeline_common.runs import run_id_for as run_id_for  # a run's id is the copier's contract too

RUNNING = "running"
CONTINUING = "continuing"
COMPLETED = "completed"
STOPPED = "stopped"
QUEUED = "queued"


@dataclass(slots=True)
class RunRecord:
    run_id: str
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    format: str
    gzip: bool | None  # None: not decided yet (told by the first bytes when the run first reads)
    status: str = RUNNING
    seq: int = 1
    owner: str = ""
    checkpoint: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    failure_reasons: dict[str, int] = field(default_factory=dict)
    invocations: int = 0
    active_seconds: float = 0.0
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    stop_reason: str | None = None
    error: dict[str, Any] | None = None
    outputs: dict[str, int] = field(default_factory=dict)  # files written per kind
    hop_base: int = 0  # invocations before the last resume: the hop limit counts from there
    queued_hops: int = 0  # times the run found every run slot taken and was queued
    queued_at: float | None = None  # when it was last queued; the oldest queued run starts first
    # A CSV run started for another pipeline (a CI360 audience): {"id_column": …, "ignore": […]}.
    csv_options: dict[str, Any] | None = None
    # Per Braze endpoint (``/users/track``, ``PUT /catalogs/x/items``): requests started, objects taken.
    endpoints: dict[str, dict[str, int]] = field(default_factory=dict)
    # Items (catalog item ids, hashed: 16 hex digits each) with rows in the failed file: their
    # later rows follow them there in every invocation of the run (see engine.FAILED_ITEMS_LIMIT).
    failed_items: str = ""
    # The object version carried the full-send tag when the run started: every attribute value is sent
    # (and the records rewritten from it), as if no record existed.
    full_send: bool = False
    deltas: bool = False  # sent only what changed (import:deltas on, not a dry run, /users/track)

    @property
    def tag(self) -> str:
        """A short, stable name for the run's output files."""
        return run_tag(self.run_id)

    def to_item(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> RunRecord:
        known = {k: item[k] for k in cls.__dataclass_fields__ if k in item}
        return cls(**known)


def run_tag(run_id: str) -> str:
    """A short, stable name of a run that does not reveal its object (a hash of its id): the run's
    output files and traces carry it."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:12]


class RunStore(Protocol):
    def create(self, run: RunRecord) -> bool:
        """Store a new run; False if a run with that id exists."""
        ...

    def get(self, run_id: str) -> RunRecord | None: ...

    def claim(self, run_id: str, seq: int, owner: str) -> RunRecord | None:
        """continuing(seq) → running; None if someone else got there first."""
        ...

    def reopen(self, run_id: str, owner: str, *, force: bool) -> RunRecord | None:
        """stopped → running with seq+1 (with ``force`` also a running or continuing run whose
        invocation died); None if the run is not in such a state."""
        ...

    def save(self, run: RunRecord, expected_seq: int) -> bool:
        """Write the run if it is still running at ``expected_seq``; False if not."""
        ...

    def start_queued(self, run_id: str, seq: int) -> bool:
        """queued(seq) → continuing(seq+1); False if the run is not queued at ``seq`` (someone
        else started it, or it moved on)."""
        ...


class RunSlots(Protocol):
    """At most N runs active at once: N slot records, each leased to one run.

    A run holds its slot from its first invocation to its end, across continuations; the lease
    is renewed while it works, so a run whose invocation died frees its slot when the lease runs
    out. A run that finds no slot is queued, not kept waiting in an invocation; the slots keep
    the list of queued runs, which the releaser and the sweep start oldest first.
    """

    def acquire(self, run_id: str, now: float, lease_seconds: float) -> bool:
        """Take a free or expired slot, or renew the one ``run_id`` holds; False if all are taken."""
        ...

    def release(self, run_id: str) -> None: ...

    def enqueue(self, run_id: str, seq: int, queued_at: float) -> None:
        """Note that ``run_id`` waits, queued at ``seq``."""
        ...

    def waiting(self) -> list[tuple[str, int]]:
        """The noted runs (run id, queued seq), oldest first."""
        ...

    def forget(self, run_id: str, seq: int) -> None:
        """Drop the note of ``run_id`` queued at ``seq`` (a newer note stays)."""
        ...


class ActiveRuns(Protocol):
    """The runs sending to the workspace right now, so each can take its share of the rate limit.

    Every run notes itself with a short lease and renews it every second or so while it sends;
    a run that ends leaves, and one whose invocation died drops out when its lease runs out.
    """

    def beat(
        self, run_id: str, now: float, lease_seconds: float, rate: float | None = None, *, group: str = "track"
    ) -> dict[str, float | None]:
        """Note ``run_id`` as active in the endpoint ``group`` (a :class:`Group` value) until
        ``now + lease_seconds``, sending ``rate`` requests per second of late (None: not measured
        yet); the runs active now in that group, this one included, each with the rate it last
        noted. Groups have limits of their own: runs of one group never count those of another."""
        ...

    def leave(self, run_id: str, *, group: str = "track") -> None: ...
