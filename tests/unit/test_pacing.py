"""Runs sharing one workspace's Braze limit, simulated in virtual time at Braze's own scale.

Every run is a real :class:`Pump` with its :class:`Share` refreshed from a shared table of
active runs every second, as the heartbeat does; Braze is a fixed window (a tenth of Braze's
3,000 requests per 3 s, so the tests stay quick) that answers in 30 ms and may have another
sender using part of every window. An event loop whose clock jumps to the next timer instead of
waiting runs a minute of traffic in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import math
import random
import selectors
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from braze_importer.engine import Checkpoint, Outcome, Pump, SendPolicy, Share
from braze_importer.ports import BrazeAnswer, Delivery, Endpoint
from braze_importer.reader import Format, iter_elements

from tests.fakes import MemoryActiveRuns

EPOCH = 1_800_000_000.0
LIMIT = 300  # requests per window, the workspace's
WINDOW = 3.0
PER_SECOND = LIMIT / WINDOW
BATCH = 1  # one object per request: the simulation counts requests, not objects


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Instead of waiting ``timeout`` for I/O (there is none), moves the loop's clock on by it."""

    def __init__(self, loop: VirtualLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise RuntimeError("every task waits and no timer is set: the simulation is stuck")
        self._loop.now += max(0.0, timeout)
        return list(super().select(0))


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


class LoopClock:
    """The Clock port on the virtual loop's time."""

    def __init__(self, loop: VirtualLoop, seed: int) -> None:
        self._loop = loop
        self._random = random.Random(seed)

    def monotonic(self) -> float:
        return self._loop.now

    def time(self) -> float:
        return EPOCH + self._loop.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def jitter(self) -> float:
        return self._random.random()


@dataclass
class Workspace:
    """Braze's fixed window for the whole workspace, answering in ``latency`` seconds. Another
    sender uses ``foreign_share`` of every window, spread evenly over it."""

    loop: VirtualLoop
    latency: float = 0.03
    foreign_share: float = 0.0
    log: list[tuple[float, str, int]] = field(default_factory=list)  # (time answered, run, status)
    delays: dict[str, float] = field(default_factory=dict)  # run -> extra seconds per request
    reset_skew: float = 0.0  # Braze's clock less ours: it stamps X-RateLimit-Reset by its own
    stale_reset: float | None = None  # a reset value that never changes (relative or stale)
    _window: int = -1
    _ours: int = 0

    def braze(self, run: str) -> Any:
        workspace = self

        class Client:
            async def send(self, endpoint: Endpoint, body: bytes) -> BrazeAnswer:
                return await workspace.track(run)

        return Client()

    async def track(self, run: str) -> BrazeAnswer:
        await asyncio.sleep(self.delays.get(run, 0.0))  # slow on its own side, before Braze counts it
        now = self.loop.now
        window = math.floor(now / WINDOW)
        if window != self._window:
            self._window, self._ours = window, 0
        elapsed = now - window * WINDOW
        foreign = math.floor(self.foreign_share * LIMIT * elapsed / WINDOW)
        self._ours += 1
        used = self._ours + foreign
        status = 429 if used > LIMIT else 201
        if status == 429:
            self._ours -= 1  # a refused request is not stored, and Braze does not count it twice
        reset = EPOCH + (window + 1) * WINDOW + self.reset_skew
        if self.stale_reset is not None:
            reset = self.stale_reset
        await asyncio.sleep(self.latency)
        self.log.append((self.loop.now, run, status))
        return BrazeAnswer(
            Delivery.ANSWERED,
            status=status,
            body={"message": "success" if status == 201 else "Too Many Requests"},
            limit=LIMIT,
            remaining=max(0, LIMIT - used),
            reset_at=reset,
        )

    def rate(self, run: str | None, start: float, end: float) -> float:
        """Requests per second accepted in [start, end), for one run or all."""
        n = sum(1 for t, r, s in self.log if start <= t < end and s == 201 and run in (None, r))
        return n / (end - start)

    def throttled_share(self) -> float:
        return sum(1 for _, _, s in self.log if s == 429) / max(1, len(self.log))


@dataclass
class SimRun:
    name: str
    objects: int
    starts_at: float = 0.0
    result: Any = None
    ended_at: float | None = None


def simulate(
    runs: list[SimRun],
    *,
    foreign_share: float = 0.0,
    table: bool = True,
    seconds: float = 120.0,
    delays: dict[str, float] | None = None,
    reset_skew: float = 0.0,
    stale_reset: float | None = None,
) -> Workspace:
    loop = VirtualLoop()
    workspace = Workspace(
        loop, foreign_share=foreign_share, delays=delays or {}, reset_skew=reset_skew, stale_reset=stale_reset
    )
    active = MemoryActiveRuns()
    policy = SendPolicy(max_in_flight=80, max_batch_objects=BATCH, workspace_requests_per_second=PER_SECOND)

    async def one(run: SimRun, seed: int) -> None:
        clock = LoopClock(loop, seed)
        await asyncio.sleep(run.starts_at)
        share = Share(policy.workspace_requests_per_second)
        done = asyncio.Event()

        async def heartbeat() -> None:  # what the service's heartbeat thread does, every second
            while not done.is_set():
                if table:
                    rate = share.measured_rate(clock.monotonic())
                    share.set_active(run.name, active.beat(run.name, clock.time(), 6.0, rate))
                await asyncio.sleep(1.0)

        beating = asyncio.ensure_future(heartbeat())
        await asyncio.sleep(0)
        data = orjson.dumps(
            [{"external_id": f"{run.name}-{i}", "name": "e", "time": "2026-01-01"} for i in range(run.objects)]
        )
        pump = Pump(workspace.braze(run.name), policy, clock, on_reject=_never, on_failed=_never, share=share)
        run.result = await pump.run(iter_elements([data], Format.ARRAY), Checkpoint(0, 0), lambda: loop.now < seconds)
        run.ended_at = loop.now
        done.set()
        active.leave(run.name)
        await beating

    async def main() -> None:
        await asyncio.gather(*(one(run, seed) for seed, run in enumerate(runs)))

    _run(loop, main())
    for run in runs:
        assert run.result.outcome is Outcome.COMPLETED, run.name
    return workspace


def _never(record: dict[str, Any]) -> None:
    raise AssertionError(f"nothing should be rejected or failed: {record}")


def _run(loop: VirtualLoop, main: Coroutine[Any, Any, None]) -> None:
    try:
        loop.run_until_complete(main)
    finally:
        loop.close()


def test_one_run_alone_takes_the_whole_workspace_limit() -> None:
    run = SimRun("a", 1_500)
    braze = simulate([run])
    assert run.ended_at is not None
    assert braze.rate("a", 0.0, run.ended_at) >= 0.9 * PER_SECOND
    assert braze.throttled_share() == 0.0


@pytest.mark.parametrize("n", [2, 4])
def test_runs_started_together_share_the_limit_fairly_and_stay_within_it(n: int) -> None:
    runs = [SimRun(f"r{i}", 1_800 // n) for i in range(n)]
    braze = simulate(runs)
    overlap = min(r.ended_at or 0.0 for r in runs)
    assert overlap > 6.0
    assert braze.throttled_share() <= 0.01
    for run in runs:
        assert braze.rate(run.name, 0.0, overlap) >= 0.8 / n * PER_SECOND, run.name
    assert braze.rate(None, 0.0, overlap) >= 0.9 * PER_SECOND


def test_a_run_that_starts_later_gets_its_share_and_gives_it_back_within_seconds() -> None:
    first, second = SimRun("first", 2_400), SimRun("second", 600, starts_at=6.0)
    braze = simulate([first, second])
    assert second.ended_at is not None and first.ended_at is not None and second.ended_at < first.ended_at - 6
    assert braze.rate("first", 0.0, 6.0) >= 0.9 * PER_SECOND  # alone: all of it
    # Within 3 s of the second run's start, the two split the limit.
    assert 0.35 * PER_SECOND <= braze.rate("second", 9.0, second.ended_at) <= 0.65 * PER_SECOND
    assert 0.35 * PER_SECOND <= braze.rate("first", 9.0, second.ended_at) <= 0.65 * PER_SECOND
    # Within 3 s of its end, the first run has the whole limit again.
    assert braze.rate("first", second.ended_at + 3.0, first.ended_at) >= 0.9 * PER_SECOND
    assert braze.throttled_share() <= 0.01


@pytest.mark.parametrize("table", [True, False], ids=["shared-table", "headers-only"])
def test_another_sender_makes_the_runs_slow_down_instead_of_storming_429s(table: bool) -> None:
    runs = [SimRun("a", 600), SimRun("b", 600)]
    braze = simulate(runs, foreign_share=0.3, table=table)
    overlap = min(r.ended_at or 0.0 for r in runs)
    assert braze.throttled_share() <= 0.01
    # What the other sender leaves is 70 % of the limit: the runs take most of it. Without the
    # table each run paces on the headers as if alone and they end each window a little early,
    # which squeezes the other sender towards the window's end (Braze counts it, not us).
    assert 0.6 * PER_SECOND <= braze.rate(None, 0.0, overlap) <= (0.75 if table else 0.8) * PER_SECOND
    for run in runs:
        assert braze.rate(run.name, 0.0, overlap) >= 0.25 * PER_SECOND


def test_a_run_slow_on_its_own_side_leaves_what_it_does_not_use_to_the_others() -> None:
    # The slow run's requests take 8 s each before Braze sees them (a slow source, a CPU-bound
    # gzip, big bodies): 80 in flight make about 10 requests per second, far below half the limit.
    slow_alone = SimRun("slow", 300)
    alone = simulate([slow_alone], delays={"slow": 8.0})
    assert slow_alone.ended_at is not None
    fast, slow = SimRun("fast", 3_000), SimRun("slow", 300)
    braze = simulate([fast, slow], delays={"slow": 8.0}, seconds=600.0)
    overlap = min(r.ended_at or 0.0 for r in (fast, slow))
    assert overlap > 20.0
    # The fast run takes what the slow one leaves, instead of half the limit ...
    assert braze.rate("fast", 0.0, overlap) >= 0.8 * PER_SECOND
    assert braze.rate(None, 0.0, overlap) >= 0.85 * PER_SECOND
    assert braze.throttled_share() <= 0.01
    # ... and the slow run still gets most of what it would send alone.
    assert slow.ended_at is not None and slow.ended_at <= 1.35 * slow_alone.ended_at
    assert alone.throttled_share() == 0.0


@pytest.mark.parametrize(
    ("skew", "stale"),
    [(30.0, None), (3.0, None), (-1.0, None), (-10.0, None), (0.0, 3.0), (0.0, EPOCH - 60.0)],
    ids=["ahead-30s", "ahead-3s", "behind-1s", "behind-10s", "relative-3", "a-minute-old"],
)
def test_a_reset_off_our_clock_neither_slows_the_runs_nor_storms_429s(skew: float, stale: float | None) -> None:
    runs = [SimRun("a", 1_500)]
    braze = simulate(runs, reset_skew=skew, stale_reset=stale)
    assert runs[0].ended_at is not None
    assert braze.rate(None, 0.0, runs[0].ended_at) >= 0.85 * PER_SECOND
    assert braze.throttled_share() <= 0.01
    pair = [SimRun("b", 900), SimRun("c", 900)]
    braze = simulate(pair, reset_skew=skew, stale_reset=stale)
    overlap = min(r.ended_at or 0.0 for r in pair)
    assert braze.rate(None, 0.0, overlap) >= 0.8 * PER_SECOND
    assert braze.throttled_share() <= 0.01


def test_max_min_share_counts_slow_runs_at_what_they_use_and_never_drops_below_an_even_split() -> None:
    share = Share(100.0)
    share.set_active("me", {"me": 90.0, "slow": 8.0})
    assert share.requests_per_second == pytest.approx(100.0 - 8.0 * Share.HEADROOM)
    share.set_active("me", {"me": 50.0, "new": None})  # not measured yet: an even split
    assert share.requests_per_second == 50.0
    share.set_active("me", {"me": 30.0, "a": 5.0, "b": 40.0, "c": 45.0})
    # a is slow: the other three share what it leaves; b and c use about their part
    assert share.requests_per_second == pytest.approx((100.0 - 5.0 * Share.HEADROOM) / 3)
    share.set_active("slow", {"slow": 8.0, "fast": 90.0})  # the slow run may speed up to an even split
    assert share.requests_per_second == 50.0
    assert share.fraction == 0.5
    share.lapse()  # no note for a whole lease: half the last share
    assert share.requests_per_second == 25.0


def test_a_run_that_dies_gives_its_share_back_when_its_lease_runs_out() -> None:
    active = MemoryActiveRuns()
    share = Share(1000.0)
    active.beat("dead", EPOCH, 6.0)
    share.set_active("alive", active.beat("alive", EPOCH, 6.0))
    assert share.requests_per_second == 500.0
    share.set_active("alive", active.beat("alive", EPOCH + 7.0, 6.0))  # "dead" never renewed
    assert share.requests_per_second == 1000.0
