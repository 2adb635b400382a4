"""The import pump: validated objects in, Braze requests out, every object settled exactly once.

An object is *settled* once its fate is durable or final: accepted by Braze, rejected (by
validation or by Braze), or written to the failed file. Everything read but not settled is
*unsettled*; the checkpoint names the first unsettled element and the settled elements after it,
so a resumed run sends exactly what was not settled before.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import hashlib
import math
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import orjson

from .delta_stage import DeltaOptions, DeltaStage
from .endpoints import Destination, braze_message
from .objects import Invalid, Kind, classify
from .ports import (
    TRACK,
    BrazeAnswer,
    BrazeApi,
    Clock,
    Delivery,
    Endpoint,
    Group,
    SourceDenied,
    SourceGone,
    UnreadableInput,
)
from .reader import Element, JsonSyntaxError, Position

if TYPE_CHECKING:
    from .deltas import Delta

_SLICE_SECONDS = 1.0  # longest wait between two looks at the time limit
# Objects and arrays nested in one object that still make a request body: orjson writes at most
# 255 levels, and the body's own object and array take two (the object itself counts as one).
MAX_NESTING = 252
# Items of a run with rows in the failed file, carried from invocation to invocation in the run
# record as 16 hex digits each: 8,000 take 128 KB of DynamoDB's 400 KB item. A run that fails
# rows of more items stops (resumable) rather than grow its record past what DynamoDB stores.
FAILED_ITEMS_LIMIT = 8_000
_MARK = 16


def item_mark(key: str) -> str:
    """The short, fixed-size name of an order key kept in the run record (a 64-bit hash: two
    items that share one are both sent to the failed file once either fails; order still holds)."""
    return hashlib.blake2b(key.encode(), digest_size=_MARK // 2).hexdigest()


class BatchRule(Enum):
    COMBINED = "combined"  # at most N objects across attributes, events and purchases
    PER_ARRAY = "per_array"  # legacy contracts: at most N in each array


class AmbiguousPolicy(Enum):
    RESEND = "resend"  # at-least-once for the batch, counted as ambiguous
    FAIL = "fail"  # at-most-once: the batch goes to the failed file


@dataclass(frozen=True, slots=True)
class SendPolicy:
    max_in_flight: int = 80
    # Braze's /users/track limit for the whole workspace (3,000 per 3 s unless raised): the runs
    # active at once divide it; a run alone takes all of it.
    workspace_requests_per_second: float = 1000.0
    requests_per_second: float | None = None  # an optional ceiling for one run, below its share
    batch_rule: BatchRule = BatchRule.COMBINED
    max_batch_objects: int = 75
    max_batch_bytes: int = 4_000_000
    max_attempts: int = 6
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 20.0
    ambiguous: AmbiguousPolicy = AmbiguousPolicy.RESEND
    # Any one wait a rate-limit answer asks for is cut to this (a few of Braze's windows); a reset
    # further ahead than max_reset_ahead_seconds, or not a finite number, is not believed at all.
    max_wait_seconds: float = 60.0
    max_reset_ahead_seconds: float = 3600.0
    # Braze's clock need not agree with ours: a reset is believed at most one window after its
    # value was first seen, the window's length learnt from successive reset values (this guess
    # until then: Braze's /users/track window is 3 s).
    window_guess_seconds: float = 6.0
    # The limits of the other endpoint groups, each shared only by the runs sending to that group:
    # the asynchronous catalog item endpoints (16,000 a minute together) and /users/delete (20,000).
    catalog_requests_per_second: float = 16_000 / 60
    user_delete_requests_per_second: float = 20_000 / 60

    def for_group(self, group: Group) -> SendPolicy:
        """The policy of a run sending to ``group``: its limit stands for the workspace figure, and
        the catalog and delete endpoints take 50 objects a request, in one-minute windows."""
        if group is Group.TRACK:
            return self
        limit = self.catalog_requests_per_second if group is Group.CATALOG else self.user_delete_requests_per_second
        return dataclasses.replace(
            self,
            workspace_requests_per_second=limit,
            batch_rule=BatchRule.COMBINED,
            max_batch_objects=50,
            window_guess_seconds=66.0,  # a minute's window, and some of Braze's clock skew
        )


@dataclass(slots=True)
class Counters:
    objects_read: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    ambiguous: int = 0  # objects in requests that got no answer after being sent
    ambiguous_requests: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    splits: int = 0
    waits_capped: int = 0  # rate-limit waits cut to max_wait_seconds, or implausible values ignored
    skipped: int = 0  # CSV rows holding nothing but their identifier: nothing to send
    # Deltas (attributes objects only): attribute values read, sent, and left out as unchanged; objects
    # not sent at all (every value unchanged); users sent in full because their record would not fit
    # one item; look-ups and commits that failed (those users were sent in full / will be next time).
    values_read: int = 0
    values_sent: int = 0
    values_skipped: int = 0
    objects_unchanged: int = 0
    users_too_large: int = 0
    delta_lookup_errors: int = 0
    delta_commit_errors: int = 0

    def add(self, other: Counters) -> Counters:
        return Counters(**{k: v + getattr(other, k) for k, v in asdict(self).items()})

    def minus(self, other: Counters) -> Counters:
        return Counters(**{k: v - getattr(other, k) for k, v in asdict(self).items()})

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Counters:
        data = data or {}
        return cls(**{k: int(data.get(k, 0)) for k in cls.__dataclass_fields__})


class RangeSet:
    """Sorted, disjoint half-open index ranges [start, end)."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self.ranges = sorted((int(a), int(b)) for a, b in ranges if b > a)
        self._starts = [a for a, _ in self.ranges]

    def __contains__(self, index: int) -> bool:
        i = bisect.bisect_right(self._starts, index) - 1
        return i >= 0 and index < self.ranges[i][1]

    def to_list(self) -> list[list[int]]:
        return [[a, b] for a, b in self.ranges]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    offset: int
    index: int
    skip: RangeSet = field(default_factory=RangeSet)
    read: int = 0  # elements before this index have been counted as read

    @property
    def position(self) -> Position:
        return Position(self.offset, self.index)

    def to_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "index": self.index, "skip": self.skip.to_list(), "read": self.read}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Checkpoint:
        if not data:
            return cls(0, 0)
        skip = RangeSet(tuple(r) for r in data.get("skip", []))
        return cls(int(data["offset"]), int(data["index"]), skip, int(data.get("read", data["index"])))


class Outcome(Enum):
    COMPLETED = "completed"  # every element read and settled
    PAUSED = "paused"  # stopped dispatching before the time limit; continue from the checkpoint
    STOPPED = "stopped"  # Braze refused the credentials; resume once fixed
    INVALID_JSON = "invalid_json"  # the file stops being valid JSON
    UNREADABLE = "unreadable"  # the file cannot be read on: a truncated or corrupt gzip stream
    SOURCE_GONE = "source_gone"  # the object version the run reads was deleted or overwritten
    SOURCE_DENIED = "source_access_denied"  # S3 refused to read the object version (403)


@dataclass(slots=True)
class PumpResult:
    outcome: Outcome
    checkpoint: Checkpoint
    stop_reason: str | None = None
    error: dict[str, Any] | None = None


@dataclass(slots=True)
class Item:
    index: int
    element: Element  # for its exact offset, looked up only if the object is rejected
    kind: str  # the body's array: a Kind for /users/track, ``items`` for a catalog, an identifier type
    obj: Any  # a JSON object, or a bare identifier for /users/delete
    size: int
    endpoint: Endpoint = TRACK
    key: str | None = None  # rows with the same key reach Braze in file order (a catalog item's id)
    # An attributes object sent as its delta: what to commit once Braze took it, and whose record.
    delta: Delta | None = None
    user: str | None = None
    maybe_applied: bool = False  # an attempt of its request went unanswered: Braze may have applied it


RecordSink = Callable[[dict[str, Any]], None]


class Batch:
    __slots__ = ("endpoint", "items")

    def __init__(self, items: list[Item], endpoint: Endpoint | None = None) -> None:
        self.items = items
        self.endpoint = endpoint or (items[0].endpoint if items else TRACK)

    def body(self) -> bytes:
        arrays: dict[str, list[dict[str, Any]]] = {}
        for item in self.items:
            key = item.kind
            if key in arrays:
                arrays[key].append(item.obj)
            else:
                arrays[key] = [item.obj]
        return orjson.dumps(arrays)

    def halves(self) -> tuple[Batch, Batch]:
        mid = len(self.items) // 2
        return Batch(self.items[:mid], self.endpoint), Batch(self.items[mid:], self.endpoint)

    def locate(self, input_array: str, index: int) -> Item | None:
        """The item Braze means by (input_array, index)."""
        seen = 0
        for item in self.items:
            if item.kind == input_array:
                if seen == index:
                    return item
                seen += 1
        return None


class Batcher:
    """Groups items into requests that respect Braze's object and size limits."""

    _OVERHEAD = 64  # braces, array names, commas

    def __init__(self, policy: SendPolicy) -> None:
        self._policy = policy
        self._items: list[Item] = []
        self._per_kind: dict[str, int] = {}
        self._bytes = self._OVERHEAD
        self._per_array = policy.batch_rule is BatchRule.PER_ARRAY
        self._max_objects = policy.max_batch_objects
        self._max_bytes = policy.max_batch_bytes

    def add(self, item: Item) -> Batch | None:
        """Add an item; returns the batch it closed, if adding it would overflow the current one."""
        if not self._per_array:  # one count for the whole request (inlined: once per object)
            closed = None
            items = self._items
            if items and (self._bytes + item.size + 1 > self._max_bytes or len(items) >= self._max_objects):
                closed = self.flush()
                items = self._items
            items.append(item)
            self._bytes += item.size + 1
            if len(items) >= self._max_objects:
                return self.flush()
            return closed
        closed = None
        if self._items and not self._fits(item):
            closed = self.flush()
        self._items.append(item)
        self._bytes += item.size + 1
        self._per_kind[item.kind] = self._per_kind.get(item.kind, 0) + 1
        if self._full():
            assert closed is None
            return self.flush()
        return closed

    def flush(self) -> Batch | None:
        if not self._items:
            return None
        batch = Batch(self._items, self._items[0].endpoint)
        self._items = []
        self._per_kind = {}
        self._bytes = self._OVERHEAD
        return batch

    def _fits(self, item: Item) -> bool:
        if self._bytes + item.size + 1 > self._max_bytes:
            return False
        if self._per_array:
            return self._per_kind.get(item.kind, 0) < self._max_objects
        return len(self._items) < self._max_objects

    def _full(self) -> bool:
        if self._per_array:
            return all(self._per_kind.get(k, 0) >= self._max_objects for k in Kind.ALL)
        return len(self._items) >= self._max_objects


class Share:
    """This run's part of the workspace's rate limit, by max-min fairness: the runs active in it
    split the workspace figure evenly, except that a run using clearly less than an even split (a
    slow source, a CPU-bound gzip, a wait for a Retry-After) is counted at what it uses, with some
    headroom, and the others share what it leaves. A run's share is never below an even split, so
    one that speeds up again gets its part back within a beat or two.

    The run's heartbeat notes the run's own recent request rate (:meth:`measured_rate`) among the
    active runs and hands their answer to :meth:`set_active` every second or so (from another
    thread: plain attribute writes); the governor reads the share before every request and counts
    the requests it lets go in ``sent``."""

    SLOW = 0.75  # a run below this part of the fair level is counted at what it uses
    HEADROOM = 1.25  # ... times this, so it may speed up a little before the others notice
    RATE_SPAN = 3.0  # seconds over which a run measures its own rate (Braze's window)
    MIN_SPAN = 1.5  # a run that has measured for less is counted at an even split

    def __init__(self, workspace_requests_per_second: float) -> None:
        self.workspace_requests_per_second = workspace_requests_per_second
        self.requests_per_second = workspace_requests_per_second  # alone until the first note
        self.sent = 0  # requests this run has started
        self._confirmed = self.requests_per_second  # the share at the last successful note
        self._samples: deque[tuple[float, int]] = deque()

    @property
    def fraction(self) -> float:
        """This run's part of the workspace, between 0 and 1."""
        return self.requests_per_second / self.workspace_requests_per_second

    def set_active(self, run_id: str, active: Mapping[str, float | None]) -> None:
        """The share given the active runs and their recent rates (None: not measured yet)."""
        limit = self.workspace_requests_per_second
        runs = max(1, len(active) + (run_id not in active))
        level = limit / runs
        rates = sorted(r for k, r in active.items() if k != run_id and r is not None)
        used = 0.0
        for counted, rate in enumerate(rates, start=1):  # water-filling: the slowest first
            if rate >= self.SLOW * level:
                break
            used += rate * self.HEADROOM
            level = (limit - used) / (runs - counted)  # the level rises as each is counted
        self.requests_per_second = self._confirmed = min(limit, max(limit / runs, level))

    def lapse(self) -> None:
        """No note has succeeded for a whole lease: the other runs may no longer count this one,
        so it goes on at half its last share (Braze's headers still cap it) until a note succeeds."""
        self.requests_per_second = self._confirmed / 2

    def measured_rate(self, now: float) -> float | None:
        """Requests per second this run started over the last ``RATE_SPAN`` seconds (``now`` is
        monotonic); None until it has measured for ``MIN_SPAN``."""
        samples = self._samples
        samples.append((now, self.sent))
        while len(samples) > 2 and now - samples[1][0] >= self.RATE_SPAN:
            samples.popleft()
        start, sent = samples[0]
        if now - start < self.MIN_SPAN:
            return None
        return (self.sent - sent) / (now - start)


class Governor:
    """Paces requests within this run's share of the workspace's rate limit.

    The pace is the least of:
    - the run's share (:class:`Share`: its max-min fair part of the workspace figure) and the
      optional per-run ceiling;
    - what Braze's headers say the workspace has left: X-RateLimit-Remaining (less this run's
      requests in flight) over the seconds to X-RateLimit-Reset, times the run's part of the
      workspace.
      Anyone else sending to the workspace (another integration, a CDI sync) uses the window up
      faster, and every run slows down with it instead of running into 429s;
    - after a 429, a multiplicative cut that recovers additively with successes (AIMD).
    A token bucket turns the pace into request starts. Besides, a per-window budget from the
    headers: what X-RateLimit-Remaining leaves after the requests still in flight, and
    X-RateLimit-Limit for a window that has just begun. Until the first answer arrives the budget
    is one request, so a run never opens with a burst. After a 429, a pause until
    X-RateLimit-Reset (with jitter, so runs sharing the workspace do not restart in step).
    """

    _MIN_RATE = 0.5  # requests per second: a rate of zero would never look again

    def __init__(
        self, policy: SendPolicy, clock: Clock, share: Share | None = None, counters: Counters | None = None
    ) -> None:
        self._clock = clock
        self._counters = counters or Counters()  # where capped or doubted waits are counted
        self._share = share or Share(policy.workspace_requests_per_second)
        self._ceiling = policy.requests_per_second or math.inf
        self._factor = 1.0  # the AIMD multiplier
        self._left_rate: float | None = None  # requests per second the window has left, workspace-wide
        self._tokens = 1.0
        self._stamp = clock.monotonic()
        self._paused_until = 0.0
        self._budget = 1.0  # requests we may still start in the current window
        self._window_end: float | None = None  # monotonic
        self._limit: int | None = None
        self._max_wait = policy.max_wait_seconds
        self._max_reset_ahead = policy.max_reset_ahead_seconds
        self._window_guess = policy.window_guess_seconds
        self._window_length: float | None = None  # learnt from successive reset values
        self._latest_reset: float | None = None
        # reset value -> when first seen (clock.time()), and whether it agreed with our clock then
        self._first_seen: dict[float, tuple[float, bool]] = {}
        self._window_reset: float | None = None  # the reset value of the current window
        self._doubted: set[str] = set()  # reset values counted in waits_capped already
        self.in_flight = 0

    def rate(self, now: float) -> float:
        """Requests per second this run may start now."""
        share = self._share
        rate = min(self._ceiling, share.requests_per_second)
        if self._left_rate is not None and self._window_end is not None and now < self._window_end:
            rate = min(rate, self._left_rate * share.fraction)
        return max(self._MIN_RATE, rate * self._factor)

    async def acquire(self, should_stop: Callable[[], bool]) -> bool:
        """Wait for permission to send one request; False if the run is stopping."""
        while not should_stop():
            now = self._clock.monotonic()
            if now < self._paused_until:
                await self._clock.sleep(min(self._paused_until - now, _SLICE_SECONDS))
                continue
            if self._window_end is not None and now >= self._window_end:
                self._window_end = None  # a new window: it holds the full limit
                self._left_rate = None
                self._budget = float(self._limit) if self._limit is not None else 1.0
            if self._budget < 1.0 and self._window_end is None and self.in_flight == 0:
                self._budget = 1.0  # no answer is on its way to tell us more: probe with one request
            if self._budget < 1.0:
                # Wait for the window to end, or for an answer that tells us more.
                wait = self._window_end - now + 0.25 * self._clock.jitter() if self._window_end else 0.01
                await self._clock.sleep(min(wait, _SLICE_SECONDS))
                continue
            rate = self.rate(now)
            self._tokens = min(max(1.0, rate / 10), self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            if self._tokens >= 1.0 - 1e-9:  # a token earned by sleeping must not be lost to rounding
                self._tokens = max(0.0, self._tokens - 1.0)
                self._budget -= 1.0
                self._share.sent += 1
                return True
            wait = (1.0 - self._tokens) / rate
            if self._window_end is not None:
                wait = min(wait, max(0.001, self._window_end - now))  # the next window may allow more
            await self._clock.sleep(min(wait, _SLICE_SECONDS))
        return False

    def observe(self, answer: BrazeAnswer) -> None:
        reset_in = self._reset_in(answer.reset_at)
        if answer.remaining is None or reset_in is None:
            if answer.reset_at is not None and reset_in is None:
                self._doubt(answer.reset_at)
            if self._limit is None:
                self._budget = float("inf")  # no (usable) headers: the token bucket alone paces
            return
        if reset_in <= 0:  # an answer from a window that is already over
            if self._window_end is None:
                self._budget = float("inf")  # nothing on the current window: the token bucket paces
            return
        now = self._clock.monotonic()
        end = now + reset_in
        if answer.limit is not None:
            self._limit = answer.limit
        left = float(answer.remaining - self.in_flight)
        reset_at = answer.reset_at
        assert reset_at is not None
        newer = self._window_reset is None or reset_at >= self._window_reset + 0.5  # a later window
        if self._window_end is None or end > self._window_end + 0.5 or newer:
            self._window_end = end
            self._window_reset = reset_at
            self._budget = left
        else:
            self._budget = min(self._budget, left)
        self._left_rate = max(0.0, left) / max(reset_in, 0.05)

    def throttled(self, answer: BrazeAnswer, fallback_seconds: float) -> None:
        """A 429: slow down, and wait what Braze asked for (Retry-After first, then the reset),
        never longer than ``max_wait_seconds`` at once."""
        self._factor = max(0.05, self._factor * 0.7)
        self._budget = min(self._budget, 0.0)
        asked = answer.retry_after if answer.retry_after is not None else self._reset_in(answer.reset_at)
        if asked is None:
            if answer.reset_at is not None:
                self._doubt(answer.reset_at)  # a value that cannot be right: backing off instead
            self._pause_for(fallback_seconds * (1 + self._clock.jitter()))
            return
        self._pause_for(self.capped(max(0.0, asked)) + 0.25 * self._clock.jitter())

    def capped(self, seconds: float) -> float:
        """A wait Braze asked for, cut to ``max_wait_seconds`` (and counted if it was)."""
        if seconds > self._max_wait:
            self._counters.waits_capped += 1
            return self._max_wait
        return seconds

    def _reset_in(self, reset_at: float | None) -> float | None:
        """Seconds until the window X-RateLimit-Reset names ends, by this run's clock; zero or less
        for a window already over; None if the header is missing or not believable (infinite,
        NaN, in milliseconds, or more than an hour away from now: a relative or stale value).

        Braze's clock need not agree with ours. A window ends at most one window length after its
        reset value was first seen, so a reset further ahead (Braze's clock ahead) is cut to that,
        and one at or before now (Braze's clock behind) is taken as that; each such value is
        counted once in ``waits_capped``."""
        if reset_at is None or not math.isfinite(reset_at):
            return None
        now = self._clock.time()
        ahead = reset_at - now
        if abs(ahead) > self._max_reset_ahead:
            return None
        seen = self._first_seen.get(reset_at)
        first, trusted = seen if seen is not None else self._sighted(reset_at, now, ahead)
        if trusted:
            return ahead  # it agreed with our clock when first seen
        learnt = self._window_length
        if first - reset_at >= (learnt if learnt is not None else self._window_guess):
            return None  # already a window or more in the past when first seen: stale
        bound = first + (learnt if learnt is not None else self._window_guess) - now
        if learnt is None and bound <= 0 < ahead:
            return ahead  # the window may be longer than the guess: nothing was learnt yet
        return min(ahead, bound) if ahead > 0 else bound

    def _sighted(self, reset_at: float, now: float, ahead: float) -> tuple[float, bool]:
        """A reset value seen for the first time: learn the window's length from it, and whether
        it agrees with our clock (then it is taken as it is)."""
        latest = self._latest_reset
        if latest is not None and reset_at > latest:
            step = reset_at - latest  # a whole number of windows
            if step >= 0.5:
                self._window_length = step if self._window_length is None else min(self._window_length, step)
        if latest is None or reset_at > latest:
            self._latest_reset = reset_at
        learnt = self._window_length
        trusted = 0 < ahead <= (learnt + 0.05 if learnt is not None else self._window_guess)
        if ahead <= 0 or (learnt is not None and not trusted):
            self._doubt(reset_at)  # Braze's clock is off ours (or the value is stale)
        self._first_seen[reset_at] = (now, trusted)
        while len(self._first_seen) > 8:
            del self._first_seen[next(iter(self._first_seen))]
        return now, trusted

    def _doubt(self, reset_at: float) -> None:
        """Count a reset value not believed as it is, once per value."""
        key = repr(reset_at)
        if key not in self._doubted:
            if len(self._doubted) > 64:
                self._doubted.clear()
            self._doubted.add(key)
            self._counters.waits_capped += 1

    def succeeded(self) -> None:
        if self._factor < 1.0:
            self._factor = min(1.0, self._factor + 0.02)

    def _pause_for(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock.monotonic() + seconds)


class Pump:
    """Reads elements, validates, batches and sends them with bounded concurrency."""

    def __init__(
        self,
        braze: BrazeApi,
        policy: SendPolicy,
        clock: Clock,
        *,
        on_reject: RecordSink,
        on_failed: RecordSink,
        on_progress: Callable[[Checkpoint], bool] | None = None,
        progress_seconds: float = 5.0,
        counters: Counters | None = None,
        share: Share | None = None,
        destination: Destination | None = None,
        failed_items: str = "",
        failed_items_limit: int = FAILED_ITEMS_LIMIT,
        deltas: DeltaOptions | None = None,
    ) -> None:
        self._braze = braze
        self._destination = destination or Destination()
        self._tracking = type(self._destination) is Destination
        # /users/track's one batcher, looked up once rather than per object
        self._track_batcher = Batcher(policy) if self._tracking else None
        # Per endpoint label: requests started and objects Braze took (for the report).
        self.endpoints: dict[str, dict[str, int]] = {}
        self.stop_error: dict[str, Any] | None = None  # why the run stopped, when Braze said so
        self._batchers: dict[Hashable, Batcher] = {TRACK: self._track_batcher} if self._track_batcher else {}
        self._open_keys: dict[str, Batcher] = {}  # ordering key -> the batcher whose open batch holds it
        self._flying: dict[str, int] = {}  # ordering key -> batches holding it that are on their way
        self._landed = asyncio.Event()  # set whenever a batch's sending ends
        # Marks (item_mark) of the order keys of rows that went to the failed file, this run's
        # earlier invocations' included: later rows of those items follow them there.
        self._failed_keys: set[str] = {failed_items[i : i + _MARK] for i in range(0, len(failed_items), _MARK)}
        self._failed_limit = failed_items_limit
        self._policy = policy
        self._clock = clock
        self._on_reject = on_reject
        self._on_failed = on_failed
        self.counters = counters or Counters()
        self.failure_reasons: dict[str, int] = {}
        self._governor = Governor(policy, clock, share, self.counters)
        self._slots = asyncio.Semaphore(policy.max_in_flight)
        self._stopping = asyncio.Event()
        self._stop_reason: str | None = None
        self._unsettled: dict[int, Position] = {}  # index -> where to restart to reach it
        self._tasks: set[asyncio.Task[None]] = set()
        self._errors: list[BaseException] = []
        self._answered = 0
        self._keep_going: Callable[[], bool] = lambda: True
        self._inherited = RangeSet()  # what earlier invocations settled, beyond where this one reads
        # A checkpoint every few seconds bounds what a crashed invocation makes the next one resend.
        self._on_progress = on_progress
        self._progress_seconds = progress_seconds
        self._last_progress = clock.monotonic()
        # Send only what changed (/users/track's attributes objects only).
        self._stage: DeltaStage | None = None
        self._deltas = deltas if self._tracking else None

    async def run(
        self,
        elements: Iterable[Element],
        start: Checkpoint,
        keep_going: Callable[[], bool],
    ) -> PumpResult:
        """Send everything from ``start``. Once a first request is answered, ``keep_going()`` is
        asked at every wait; when it turns False the pump stops dispatching, lets requests in
        flight finish and returns a checkpoint naming exactly what is still unsettled."""
        self._keep_going = keep_going
        self._inherited = start.skip
        next_read = start.position
        read_end = start.index
        skip = start.skip if start.skip.ranges else None
        outcome = Outcome.COMPLETED
        error = None
        counters, unsettled, counted = self.counters, self._unsettled, start.read
        if self._deltas is not None:
            self._stage = DeltaStage(self._deltas, self.counters, self._clock.time, self._settle, counted=start.read)
        track, stage = self._track_batcher, self._stage
        try:
            for element in elements:
                index = element.index
                look = (index & 0xFFF) == 0  # also look now and then when nothing is sent
                if skip is None or index not in skip:
                    if index >= counted:
                        counters.objects_read += 1
                    if track is not None and element.kind is not None and element.error is None and not element.skipped:
                        # An object typed and checked by its reader or its folder's rules, for
                        # /users/track: _admit's own path, inlined (it runs once per object).
                        unsettled[index] = element.anchor
                        typed = Item(index, element, element.kind, element.value, element.size)
                        if stage is not None and typed.kind == Kind.ATTRIBUTES:
                            look = await self._staged(stage.push(typed)) or look
                        elif (batch := track.add(typed)) is not None:
                            await self._dispatch(batch)
                            look = True
                    elif (item := self._admit(element)) is None:
                        pass
                    elif stage is not None and item.kind == Kind.ATTRIBUTES:
                        look = await self._staged(stage.push(item)) or look
                    elif item.key is not None:
                        look = await self._place(item) or look
                    elif (batch := (track or self._batcher(item)).add(item)) is not None:
                        await self._dispatch(batch)
                        look = True
                next_read = element.next
                read_end = index + 1
                if look:
                    self._progress(next_read, read_end, counted)
                    if self._should_stop():
                        outcome = Outcome.PAUSED  # what is still in the batcher stays unsettled
                        if stage is not None:  # diffed (and counted) now: the next invocation counts from read_end
                            await self._staged(stage.finish())
                        break
            else:
                await self._flush_all()
        except (SourceGone, SourceDenied) as exc:
            # The file cannot be read from here: stop at once, what is still batched stays unsettled.
            outcome = Outcome.SOURCE_GONE if isinstance(exc, SourceGone) else Outcome.SOURCE_DENIED
            error = {"offset": exc.offset, "message": exc.message}
        except UnreadableInput as exc:
            outcome = Outcome.INVALID_JSON if isinstance(exc, JsonSyntaxError) else Outcome.UNREADABLE
            error = {"offset": exc.offset, "message": exc.message}
            await self._flush_all()
        try:
            await self._drain()
        finally:
            if stage is not None:
                await stage.close()
        if self._stop_reason is not None:
            outcome = Outcome.STOPPED
            error = self.stop_error or error
        elif outcome is Outcome.COMPLETED and self._unsettled:
            outcome = Outcome.PAUSED  # the time limit came while retries were pending
        return PumpResult(outcome, self._checkpoint(next_read, read_end, start.read), self._stop_reason, error)

    def _progress(self, next_read: Position, read_end: int, counted: int) -> None:
        now = self._clock.monotonic()
        if self._on_progress is None or now - self._last_progress < self._progress_seconds:
            return
        self._last_progress = now
        if not self._on_progress(self._checkpoint(next_read, read_end, counted)):
            self._stop_reason = "superseded"  # another invocation took the run over
            self._stopping.set()

    def _should_stop(self) -> bool:
        # The clock is consulted only once a request has been answered (or something settled
        # without one), so every invocation makes progress however little time it starts with.
        counters = self.counters
        if (
            not self._stopping.is_set()
            and (self._answered or counters.rejected or counters.objects_unchanged)
            and not self._keep_going()
        ):
            self._stopping.set()
        return self._stopping.is_set()

    # -- admission ---------------------------------------------------------------------------

    def _admit(self, element: Element) -> Item | None:
        if element.error is not None:
            source = element.error_source or ("json" if element.line is None else "csv")
            self._reject(element.index, element.offset, source, element.error, element.line)
            return None
        if element.kind is not None:  # a CSV row, typed and checked by its reader
            if element.skipped:
                self.counters.skipped += 1
                return None
            kind = element.kind
        else:
            try:
                kind = classify(element.value)
            except Invalid as exc:
                self._reject(element.index, element.offset, "validation", exc.reason)
                return None
        self._unsettled[element.index] = element.anchor
        if self._tracking:  # /users/track's own: the kind is the array, no order key
            return Item(element.index, element, kind, element.value, element.size)
        endpoint, array, key = self._destination.route(kind, element.value)
        return Item(element.index, element, array, element.value, element.size, endpoint, key)

    def _batcher(self, item: Item) -> Batcher:
        """The batcher of an item's lane: one per endpoint, and per array where requests hold one."""
        lane = item.endpoint if self._destination.mixes_arrays else (item.endpoint, item.kind)
        batcher = self._batchers.get(lane)
        if batcher is None:
            batcher = self._batchers[lane] = Batcher(self._policy)
        return batcher

    async def _place(self, item: Item) -> bool:
        """Batch an item that has an order key, sending the batches it closes; True if one was sent.

        Rows with the same key (a catalog item's id) reach Braze in file order: before an item
        joins a batch, the open batch holding its key is sent, and the item waits until no batch
        holding its key is on its way (however many retries that batch takes). Requests never
        overtake each other for one key, at the cost of one round trip per repeated key."""
        key = item.key
        assert key is not None
        sent = False
        open_in = self._open_keys.get(key)
        if open_in is not None and (batch := open_in.flush()) is not None:
            await self._dispatch(batch)
            sent = True
        while key in self._flying:
            if self._should_stop():
                return True  # the item stays unsettled, for the next invocation; the caller looks
            self._landed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._landed.wait(), _SLICE_SECONDS)
        if self._failed_keys and item_mark(key) in self._failed_keys:
            # An earlier row of this item went to the failed file: this one follows it there, so
            # replaying that file applies both in file order (sent now, a replay would undo it).
            self._fail(Batch([item], item.endpoint), "earlier_row_of_item_failed")
            return sent
        batcher = self._batcher(item)
        self._open_keys[key] = batcher
        if (batch := batcher.add(item)) is not None:
            await self._dispatch(batch)
            sent = True
        return sent

    async def _staged(self, ready: Awaitable[list[Item]]) -> bool:
        """Batch the items the delta stage released (settling at once those with nothing to send);
        True if it released any (time to look at the clock: a file of unchanged objects sends nothing)."""
        track = self._track_batcher
        assert track is not None
        items = await ready
        for item in items:
            if item.obj is None:  # every value unchanged: nothing to send, settled
                del self._unsettled[item.index]
            elif (batch := track.add(item)) is not None:
                await self._dispatch(batch)
        return bool(items)

    async def _flush_all(self) -> None:
        if self._stage is not None:
            await self._staged(self._stage.finish())
        for batcher in list(self._batchers.values()):
            if (batch := batcher.flush()) is not None:
                await self._dispatch(batch)

    def _reject(self, index: int, offset: int, source: str, reason: str, line: int | None = None) -> None:
        self.counters.rejected += 1
        record: dict[str, Any] = {"index": index, "offset": offset, "source": source, "reason": reason}
        if line is not None:
            record["line"] = line
        self._on_reject(record)

    # -- sending -----------------------------------------------------------------------------

    async def _dispatch(self, batch: Batch) -> None:
        keys = [] if self._tracking else [item.key for item in batch.items if item.key is not None]
        for key in keys:  # on its way from now: no other batch holding the key may start
            self._open_keys.pop(key, None)
            self._flying[key] = self._flying.get(key, 0) + 1
        await self._slots.acquire()
        if self._stopping.is_set():
            self._slots.release()
            self._landing(keys)
            return
        task = asyncio.ensure_future(self._send_in_slot(batch, keys))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Only the unexpected raises: stop, and let the invocation fail after the drain.
            self._errors.append(task.exception())  # type: ignore[arg-type]
            self._stopping.set()

    async def _send_in_slot(self, batch: Batch, keys: list[str]) -> None:
        try:
            await self._send(batch)
        finally:
            self._slots.release()
            self._landing(keys)

    def _landing(self, keys: list[str]) -> None:
        for key in keys:
            left = self._flying.get(key, 0) - 1
            if left > 0:
                self._flying[key] = left
            else:
                self._flying.pop(key, None)
        self._landed.set()

    def _count_request(self, endpoint: Endpoint) -> None:
        self.counters.requests += 1
        counts = self.endpoints.get(endpoint.label)
        if counts is None:
            counts = self.endpoints[endpoint.label] = {"requests": 0, "objects": 0}
        counts["requests"] += 1

    async def _send(self, batch: Batch) -> None:
        destination = self._destination
        try:
            body = batch.body()
        except orjson.JSONEncodeError:
            # Something in the batch orjson cannot write (nesting deeper than its 255 levels):
            # only then is each object tried alone; those are rejects, the rest goes on.
            rest = self._unwritable(batch)
            if not rest:
                return
            batch = Batch(rest, batch.endpoint)
            body = batch.body()
        if len(body) > self._policy.max_batch_bytes and len(batch.items) > 1:
            await self._split(batch)
            return
        attempt = 0
        while True:
            if not await self._governor.acquire(self._should_stop):
                return  # stopping: the batch stays unsettled and is sent by the next invocation
            self._count_request(batch.endpoint)
            self._governor.in_flight += 1
            try:
                answer = await self._braze.send(batch.endpoint, body)
            finally:
                self._governor.in_flight -= 1
            self._answered += 1
            if answer.delivery is Delivery.ANSWERED:
                self._governor.observe(answer)
                status = answer.status
                if 200 <= status < 300:
                    self._governor.succeeded()
                    self._accept(batch, answer)
                    return
                if status == 429:
                    self.counters.throttled += 1
                    self._governor.throttled(answer, self._backoff(1))
                    continue  # not stored: resend, it does not use up an attempt
                if status in (401, 403):
                    self._stop_reason = f"braze_auth_{status}"
                    self._stopping.set()
                    return
                if (stop := destination.stop(batch, answer)) is not None:
                    # The endpoint cannot take anything (a catalog that does not exist): the batch
                    # stays unsettled, and a resume once that is fixed sends it.
                    self._stop_reason, self.stop_error = stop
                    self._stopping.set()
                    return
                named = destination.refused(batch, answer) if status in (400, 404) else {}
                gone = destination.absent(batch, answer) if status in (400, 404) else set()
                if named or gone:
                    # Nothing was stored, and Braze named the objects it refuses (or has not got, for
                    # a delete): settle those and send the rest as one request, instead of splitting
                    # down to single objects.
                    rest = [item for item in batch.items if item.index not in named and item.index not in gone]
                    self._accept_items([i for i in batch.items if i.index in gone], batch.endpoint)
                    self._reject_items([i for i in batch.items if i.index in named], "braze", named)
                    if rest:
                        await self._send(Batch(rest, batch.endpoint))
                    return
                if status in (400, 413) and len(batch.items) > 1:
                    await self._split(batch)  # nothing was stored: isolate the offending objects
                    return
                if status == 400:
                    self._reject_batch(batch, "braze", braze_message(answer, "rejected by Braze (400)"))
                    return
                if status == 413:
                    self._reject_batch(batch, "braze", "object too large for Braze (413)")
                    return
                reason = f"http_{status}"
            elif answer.delivery is Delivery.AMBIGUOUS:
                if self._stage is not None:
                    self._stage.unsure(batch.items)
                self.counters.ambiguous += len(batch.items)
                self.counters.ambiguous_requests += 1
                if self._policy.ambiguous is AmbiguousPolicy.FAIL:
                    self._fail(batch, f"ambiguous_{answer.detail or 'no_answer'}")
                    return
                reason = f"ambiguous_{answer.detail or 'no_answer'}"
            else:
                reason = f"not_sent_{answer.detail or 'connection'}"
            attempt += 1
            if attempt >= self._policy.max_attempts:
                self._fail(batch, reason)
                return
            self.counters.retries += 1
            wait = self._backoff(attempt)
            if answer.retry_after is not None:  # a 503 may say when to come back: not sooner
                wait = max(wait, self._governor.capped(answer.retry_after))
            if not await self._sleep(wait):
                return

    def _unwritable(self, batch: Batch) -> list[Item]:
        """Reject the items of ``batch`` that cannot be written as a request body; the others."""
        rest: list[Item] = []
        for item in batch.items:
            try:
                Batch([item], batch.endpoint).body()
            except orjson.JSONEncodeError as exc:
                del self._unsettled[item.index]
                self._reject(item.index, item.element.offset, "validation", unwritable_reason(exc), item.element.line)
                if self._stage is not None:
                    self._stage.refused([item])
            else:
                rest.append(item)
        return rest

    async def _split(self, batch: Batch) -> None:
        self.counters.splits += 1
        for half in batch.halves():
            if self._stopping.is_set():
                return
            await self._send(half)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep in short slices, giving up as soon as the run is stopping; False if it is."""
        deadline = self._clock.monotonic() + seconds
        while not self._should_stop():
            left = deadline - self._clock.monotonic()
            if left <= 0:
                return True
            await self._clock.sleep(min(left, _SLICE_SECONDS))
        return False

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._policy.backoff_cap_seconds, self._policy.backoff_base_seconds * 2 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * self._clock.jitter())

    # -- settling ----------------------------------------------------------------------------

    def _accept_items(self, items: list[Item], endpoint: Endpoint) -> None:
        for item in items:
            del self._unsettled[item.index]
        self._accepted(endpoint, len(items))

    def _accepted(self, endpoint: Endpoint, objects: int) -> None:
        self.counters.accepted += objects
        counts = self.endpoints.get(endpoint.label)
        if counts is None:
            counts = self.endpoints[endpoint.label] = {"requests": 0, "objects": 0}
        counts["objects"] += objects

    def _reject_items(self, items: list[Item], source: str, reasons: dict[int, str]) -> None:
        if self._stage is not None:
            self._stage.refused(items)
        for item in items:
            del self._unsettled[item.index]
            self._reject(item.index, item.element.offset, source, f"Braze: {reasons[item.index]}", item.element.line)

    def _accept(self, batch: Batch, answer: BrazeAnswer) -> None:
        refused = self._destination.refused(batch, answer)
        unsettled = self._unsettled
        stage = self._stage
        if stage is not None:
            stage.refused([item for item in batch.items if item.index in refused])
            # Settled once their records are written (see DeltaStage), not now.
            stage.accepted([item for item in batch.items if item.delta is not None and item.index not in refused])
        for item in batch.items:
            if item.delta is None or item.index in refused:
                del unsettled[item.index]
            if refused and (reason := refused.get(item.index)) is not None:
                self._reject(item.index, item.element.offset, "braze", reason, item.element.line)
        self._accepted(batch.endpoint, len(batch.items) - len(refused))

    def _reject_batch(self, batch: Batch, source: str, reason: str) -> None:
        if self._stage is not None:
            self._stage.refused(batch.items)
        for item in batch.items:
            del self._unsettled[item.index]
            self._reject(item.index, item.element.offset, source, reason, item.element.line)

    def _settle(self, indices: list[int]) -> None:
        """Objects whose records are now written (Braze took them earlier): settled."""
        unsettled = self._unsettled
        for index in indices:
            unsettled.pop(index, None)

    def _fail(self, batch: Batch, reason: str) -> None:
        reasons = self.failure_reasons
        if self._stage is not None:
            self._stage.unanswered(batch.items)  # Braze may have applied them: the records forget
        for item in batch.items:
            del self._unsettled[item.index]
            try:
                self._on_failed(self._destination.replayable(item))
            except orjson.JSONEncodeError as exc:  # never sent (a later row of a failed item)
                self._reject(item.index, item.element.offset, "validation", unwritable_reason(exc), item.element.line)
                continue
            self.counters.failed += 1
            reasons[reason] = reasons.get(reason, 0) + 1
            if item.key is not None:
                self._failed_keys.add(item_mark(item.key))
        if len(self._failed_keys) > self._failed_limit and self._stop_reason is None:
            # Forgetting an item would let its later rows overtake the failed one: stop instead.
            self._stop_reason = "too_many_failed_items"
            self.stop_error = {
                "message": f"rows of more than {self._failed_limit} items could not be sent and are in the failed "
                "file; the run keeps the order of each item's rows only up to that many: find why Braze did not "
                "take them (see failure_reasons), then resume this run and replay the failed file"
            }
            self._stopping.set()

    @property
    def failed_items(self) -> str:
        """The marks of the items with rows in the failed file, for the run record."""
        return "".join(sorted(self._failed_keys))

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.wait(set(self._tasks), timeout=_SLICE_SECONDS)
            self._should_stop()
        if self._errors:
            raise self._errors[0]

    def _checkpoint(self, next_read: Position, read_end: int, counted: int) -> Checkpoint:
        """Restart at the earliest of: the anchor of the first unsettled element, or where the
        next unread element is reached; skip what is settled from there to what was read."""
        resume = next_read
        if self._unsettled:
            anchor = self._unsettled[min(self._unsettled)]
            if anchor.index < resume.index:
                resume = anchor
        settled: list[tuple[int, int]] = []
        run_start = resume.index
        for index in sorted(i for i in self._unsettled if i >= resume.index):
            if index > run_start:
                settled.append((run_start, index))
            run_start = index + 1
        if read_end > run_start:
            settled.append((run_start, read_end))
        # Elements not read yet keep the fate earlier invocations gave them: dropping those ranges
        # would make a resume after a crash send them again.
        for a, b in self._inherited.ranges:
            if b > read_end:
                settled.append((max(a, read_end), b))
        return Checkpoint(resume.offset, resume.index, RangeSet(_merged(settled)), max(counted, read_end))


def unwritable_reason(exc: Exception) -> str:
    """Why an object cannot go into a request body (orjson's words name no value)."""
    if "recursion" in str(exc).lower():
        return f"nesting deeper than Braze takes (more than {MAX_NESTING} levels of objects and arrays)"
    return f"cannot be written as JSON: {exc}"


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
