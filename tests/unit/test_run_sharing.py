"""A run's place among the runs of the workspace: its note in the active runs, its slot, and
what it does when Braze or the slot table tells it to hold back."""

from __future__ import annotations

import time as real_time
from typing import Any

import orjson
from braze_importer.engine import SendPolicy, Share
from braze_importer.ports import ObjectRef
from braze_importer.service import _Heartbeat, handle_continue, handle_start

from tests.fakes import FakeBraze, FakeS3, MemoryActiveRuns, MemorySlots, answer, make_deps
from tests.unit.test_engine import Run, events

BUCKET = "imports"


def put(s3: FakeS3, key: str, objs: list[Any]) -> ObjectRef:
    s3.put_object(Bucket=BUCKET, Key=key, Body=orjson.dumps(objs))
    return ObjectRef(BUCKET, key, None, key)


def test_a_run_notes_itself_among_the_active_runs_and_leaves_when_it_ends() -> None:
    s3, active = FakeS3(), MemoryActiveRuns()
    seen: list[int] = []

    def look(payload: dict[str, Any]) -> Any:
        seen.append(len(active.leases))
        return answer()

    deps = make_deps(FakeBraze(default=look), s3, active_runs=active)
    assert handle_start(put(s3, "incoming/a.json", events(200)), "x", deps, lambda: True).status == "completed"
    assert active.beats >= 1 and seen and min(seen) == 1  # noted before its first request
    assert active.leases == {}  # gone once it completed: its share is the others' again


def test_a_paused_run_keeps_its_note_for_the_continuation() -> None:
    s3, active = FakeS3(), MemoryActiveRuns()
    deps = make_deps(FakeBraze(), s3, active_runs=active)
    calls = iter([True, False])
    result = handle_start(put(s3, "incoming/a.json", events(300)), "x", deps, lambda: next(calls, False))
    assert result.status == "continuing"
    assert list(active.leases) == [result.run_id]


def test_a_run_whose_slot_was_taken_pauses_and_queues_instead_of_running_past_the_bound() -> None:
    s3, slots = FakeS3(), MemorySlots(1)

    def stall(payload: dict[str, Any]) -> Any:
        # The run stalls past its lease; another run takes the slot meanwhile.
        slots.held[0] = ("someone-else", real_time.time() + 3600)
        real_time.sleep(0.4)
        return answer()

    deps = make_deps(FakeBraze(script=[stall]), s3, slots=slots)
    deps.slot_lease_seconds = 0.15
    ref = put(s3, "incoming/a.json", events(600))
    result = handle_start(ref, "x", deps, lambda: True)
    assert result.status == "continuing"  # it stopped sending after the renewal failed
    assert result.delta.accepted < 600
    payload = deps.continuer.payloads[-1]  # type: ignore[attr-defined]
    assert handle_continue(payload["run_id"], payload["seq"], "y", deps, lambda: True).status == "queued"


def test_a_503_with_retry_after_waits_what_braze_asked_for() -> None:
    braze = FakeBraze(script=[answer(503, {"message": "busy"}, retry_after=5.0)])
    run = Run(braze, SendPolicy(max_in_flight=1))
    run.go(events(10))
    assert braze.stored == events(10)
    assert 5.0 <= run.clock.now < 6.0  # not the 0.4 s of the first backoff step


class _Failing(MemoryActiveRuns):
    """The runs table stops answering (throttled, network) while ``failing`` is set."""

    failing = False

    def beat(
        self, run_id: str, now: float, lease_seconds: float, rate: float | None = None, *, group: str = "track"
    ) -> dict[str, float | None]:
        if self.failing:
            raise ConnectionError("the runs table is unreachable")
        return super().beat(run_id, now, lease_seconds, rate, group=group)


def test_a_run_that_cannot_renew_its_note_for_a_whole_lease_goes_on_cautiously() -> None:
    active = _Failing()
    deps = make_deps(FakeBraze(), FakeS3(), active_runs=active)
    share = Share(1000.0)
    beat = _Heartbeat("a", deps, share)
    active.beat("b", deps.clock.time(), 60.0)
    beat._note()
    assert share.requests_per_second == 500.0
    active.failing = True
    for _ in range(5):  # a few failed beats within the lease: the note still stands
        deps.clock.now += 1.0  # type: ignore[attr-defined]
        beat._note()
    assert share.requests_per_second == 500.0
    deps.clock.now += 1.5  # type: ignore[attr-defined]
    beat._note()  # a whole lease without a renewal: the others may no longer count this run
    assert share.requests_per_second == 250.0
    active.failing = False
    deps.clock.now += 1.0  # type: ignore[attr-defined]
    beat._note()
    assert share.requests_per_second == 500.0
