from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from braze_importer.engine import (
    AmbiguousPolicy,
    BatchRule,
    Checkpoint,
    Outcome,
    Pump,
    PumpResult,
    RangeSet,
    SendPolicy,
)
from braze_importer.reader import Format, iter_elements

from tests.fakes import FakeBraze, FakeClock, answer


def events(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"external_id": f"u{i}", "name": "e", "time": "2026-01-01T00:00:00Z"} for i in range(start, start + n)]


class Run:
    def __init__(self, braze: FakeBraze, policy: SendPolicy | None = None, clock: FakeClock | None = None) -> None:
        self.braze = braze
        self.clock = clock or FakeClock()
        self.rejects: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []
        self.pump = Pump(
            braze,
            policy or SendPolicy(max_in_flight=1),
            self.clock,
            on_reject=self.rejects.append,
            on_failed=self.failed.append,
        )

    def go(self, objs: list[Any], start: Checkpoint | None = None, keep_going: Any = lambda: True) -> PumpResult:
        data = orjson.dumps(objs)
        start = start or Checkpoint(0, 0)
        elements = iter_elements([data[start.offset :]], Format.ARRAY, start.position)
        return asyncio.run(self.pump.run(elements, start, keep_going))


def test_batches_hold_at_most_75_objects_combined() -> None:
    braze = FakeBraze()
    result = Run(braze).go(events(200))
    assert result.outcome is Outcome.COMPLETED
    assert [len(r["events"]) for r in braze.requests] == [75, 75, 50]
    assert braze.stored == events(200)


def test_legacy_rule_allows_75_per_array() -> None:
    purchases = [{"external_id": "p", "product_id": "x", "currency": "EUR", "price": 1, "time": "2026-01-01"}] * 75
    mixed = [o for pair in zip(events(75), purchases, strict=True) for o in pair]
    braze = FakeBraze()
    Run(braze, SendPolicy(max_in_flight=1, batch_rule=BatchRule.PER_ARRAY)).go(mixed)
    assert len(braze.requests) == 1
    assert len(braze.requests[0]["events"]) == 75 and len(braze.requests[0]["purchases"]) == 75


def test_requests_stay_under_the_byte_limit() -> None:
    objs = [{**e, "properties": {"pad": "x" * 900}} for e in events(40)]
    braze = FakeBraze()
    Run(braze, SendPolicy(max_in_flight=1, max_batch_bytes=10_000)).go(objs)
    assert all(len(orjson.dumps(r)) <= 10_000 for r in braze.requests)
    assert braze.stored == objs


def test_invalid_objects_are_rejects_with_position_and_reason_but_no_value() -> None:
    objs = [
        *events(2),
        {"name": "no-id", "time": "2026-01-01"},
        "text",
        {"external_id": "secret@example.com", "name": 1, "time": "2026-01-01"},
    ]
    run = Run(FakeBraze())
    result = run.go(objs)
    assert result.outcome is Outcome.COMPLETED
    assert [r["index"] for r in run.rejects] == [2, 3, 4]
    assert "no identifier" in run.rejects[0]["reason"]
    assert run.rejects[2]["reason"] == "name: must be a non-empty string"
    assert all("secret@example.com" not in r["reason"] for r in run.rejects)
    data = orjson.dumps(objs)
    assert data[run.rejects[0]["offset"] :].startswith(b'{"name":"no-id"')


def test_201_with_errors_rejects_only_those_objects_and_never_resends() -> None:
    braze = FakeBraze(
        script=[answer(201, {"message": "success", "errors": [{"type": "bad", "input_array": "events", "index": 1}]})]
    )
    run = Run(braze)
    run.go(events(3))
    assert len(braze.requests) == 1
    assert run.pump.counters.accepted == 2 and run.pump.counters.rejected == 1
    assert run.rejects == [{"index": 1, "offset": run.rejects[0]["offset"], "source": "braze", "reason": "bad"}]


def test_413_splits_the_batch_until_it_fits() -> None:
    def too_big(payload: dict[str, Any]) -> Any:
        return answer(413, {"message": "too large"}) if len(payload["events"]) > 10 else answer()

    braze = FakeBraze(default=too_big)
    run = Run(braze)
    run.go(events(75))
    assert sorted(o["external_id"] for o in braze.stored) == sorted(o["external_id"] for o in events(75))
    assert run.pump.counters.splits > 0 and run.pump.counters.accepted == 75


def test_400_isolates_the_objects_braze_refuses() -> None:
    def refuse_u7(payload: dict[str, Any]) -> Any:
        if any(o["external_id"] == "u7" for o in payload["events"]):
            return answer(400, {"message": "bad object"})
        return answer()

    braze = FakeBraze(default=refuse_u7)
    run = Run(braze)
    run.go(events(20))
    assert len(braze.stored) == 19
    assert [r["index"] for r in run.rejects] == [7] and run.rejects[0]["reason"] == "Braze: bad object"


def test_429_waits_until_the_reset_header_and_resends() -> None:
    clock = FakeClock()
    braze = FakeBraze(script=[answer(429, remaining=0, reset_at=clock.time() + 2.0)])
    run = Run(braze, clock=clock)
    run.go(events(10))
    assert run.pump.counters.throttled == 1 and run.pump.counters.retries == 0
    assert braze.stored == events(10)
    assert clock.now >= 2.0  # waited for the window to reset


def test_remaining_header_pauses_before_a_429() -> None:
    clock = FakeClock()
    braze = FakeBraze(default=lambda p: answer(remaining=0, reset_at=clock.time() + 3.0))
    run = Run(braze, clock=clock)
    run.go(events(150))
    assert run.pump.counters.throttled == 0
    assert clock.now >= 3.0


def test_5xx_backs_off_exponentially_then_fails_the_batch_to_the_failed_file() -> None:
    clock = FakeClock()
    braze = FakeBraze(default=lambda p: answer(503, {"message": "down"}))
    run = Run(braze, SendPolicy(max_in_flight=1, max_attempts=4), clock)
    result = run.go(events(5))
    assert result.outcome is Outcome.COMPLETED
    assert len(braze.requests) == 4 and run.pump.counters.retries == 3
    assert run.failed == events(5)
    assert run.pump.failure_reasons == {"http_503": 5}
    # Exponential: 0.5 s, 1 s, 2 s ceilings with jitter (the fake's jitter is 0.5 -> 75 % of each).
    assert clock.now == pytest.approx(0.375 + 0.75 + 1.5)


def test_transient_5xx_then_success_sends_once() -> None:
    braze = FakeBraze(script=[answer(500), answer(502)])
    run = Run(braze)
    run.go(events(3))
    assert braze.stored == events(3) and run.pump.counters.retries == 2


def test_connection_refused_is_retried_without_counting_as_ambiguous() -> None:
    braze = FakeBraze(script=["not_sent"])
    run = Run(braze)
    run.go(events(3))
    assert braze.stored == events(3)
    assert run.pump.counters.ambiguous == 0 and run.pump.counters.retries == 1


def test_ambiguous_default_resends_and_counts_it() -> None:
    braze = FakeBraze(script=["ambiguous_stored"])
    run = Run(braze)
    run.go(events(3))
    assert braze.stored == events(3) * 2  # the one honest duplicate
    assert run.pump.counters.ambiguous == 3 and run.pump.counters.ambiguous_requests == 1


def test_ambiguous_at_most_once_sends_the_batch_to_the_failed_file() -> None:
    braze = FakeBraze(script=["ambiguous_lost"])
    run = Run(braze, SendPolicy(max_in_flight=1, ambiguous=AmbiguousPolicy.FAIL))
    run.go(events(3))
    assert braze.stored == [] and run.failed == events(3)
    assert run.pump.counters.failed == 3 and run.pump.counters.ambiguous == 3


def test_401_stops_the_run_and_keeps_everything_unsent_for_the_checkpoint() -> None:
    braze = FakeBraze(script=[answer(), answer(401, {"message": "Invalid API key"})])
    run = Run(braze)
    result = run.go(events(300))
    assert result.outcome is Outcome.STOPPED and result.stop_reason == "braze_auth_401"
    assert len(braze.stored) == 75
    assert result.checkpoint.index == 75  # the refused batch is the first unsettled one


def test_paused_run_checkpoint_resumes_exactly_once_in_order() -> None:
    objs = events(1000)
    braze = FakeBraze()
    start = Checkpoint(0, 0)
    invocations = 0
    while True:
        invocations += 1
        run = Run(braze)
        result = run.go(objs, start, keep_going=_budget(3))
        start = result.checkpoint
        if result.outcome is Outcome.COMPLETED:
            break
        assert result.outcome is Outcome.PAUSED
    assert invocations > 3
    assert braze.stored == objs


def _budget(checks: int) -> Any:
    calls = iter(range(checks))
    return lambda: next(calls, None) is not None


def test_checkpoint_skips_settled_objects_behind_an_unsettled_one() -> None:
    # Batch 1 keeps failing, batch 2 and its rejects settle; the checkpoint names batch 1 and skips the rest.
    def flaky(payload: dict[str, Any]) -> Any:
        return answer(503) if payload["events"][0]["external_id"] == "u0" else answer()

    objs = [*events(75), {"bad": 1}, *events(75, 75)]
    braze = FakeBraze(default=flaky)
    clock = FakeClock()
    pump_run = Run(braze, SendPolicy(max_in_flight=2), clock)
    deadline = 5.0
    result = pump_run.go(objs, keep_going=lambda: clock.now < deadline)
    assert result.outcome is Outcome.PAUSED
    assert result.checkpoint.index == 0
    assert 75 in result.checkpoint.skip and 76 in result.checkpoint.skip and 150 in result.checkpoint.skip
    assert 0 not in result.checkpoint.skip and 74 not in result.checkpoint.skip
    resumed = FakeBraze()
    again = Run(resumed).go(objs, result.checkpoint)
    assert again.outcome is Outcome.COMPLETED
    assert resumed.stored == events(75)  # only what was never settled


def test_rangeset_membership() -> None:
    ranges = RangeSet([(5, 7), (1, 3)])
    assert [i for i in range(9) if i in ranges] == [1, 2, 5, 6]
    assert ranges.to_list() == [[1, 3], [5, 7]]


@pytest.mark.parametrize("in_flight", [1, 8, 40])
def test_concurrency_delivers_every_object_once(in_flight: int) -> None:
    objs = events(3000)
    braze = FakeBraze()
    Run(braze, SendPolicy(max_in_flight=in_flight)).go(objs)
    assert sorted(o["external_id"] for o in braze.stored) == sorted(o["external_id"] for o in objs)


def test_a_checkpoint_keeps_the_settled_ranges_it_inherited_beyond_the_read_position() -> None:
    # Given a run whose first 75 objects are unsettled and the other 19,925 settled by an earlier invocation
    objs = events(20000)
    inherited = Checkpoint(0, 0, RangeSet([(75, 20000)]))
    saved: list[Checkpoint] = []
    braze = FakeBraze()
    clock = FakeClock()
    pump = Pump(
        braze,
        SendPolicy(max_in_flight=1),
        clock,
        on_reject=list.append,
        on_failed=list.append,
        on_progress=lambda point: saved.append(point) or True,
        progress_seconds=0.0,
    )
    elements = iter_elements([orjson.dumps(objs)], Format.ARRAY)
    # When it writes progress checkpoints while the first batch is still in flight
    asyncio.run(pump.run(elements, inherited, keep_going=lambda: True))
    assert braze.stored == objs[:75]
    crashed_at = saved[0]  # and dies right after the first one
    # Then the checkpoint still skips everything settled before, and a resume resends only what was in flight
    assert crashed_at.index == 0
    assert all(i in crashed_at.skip for i in range(75, 20000))
    resumed = FakeBraze()
    Run(resumed).go(objs, crashed_at)
    assert resumed.stored == objs[:75]


def test_a_400_that_names_every_bad_object_rejects_them_and_resends_the_rest_once() -> None:
    # Given 750 objects of which every other one is invalid for Braze, and Braze names them in errors[]
    objs = events(1500)

    def refuse_odd(payload: dict[str, Any]) -> Any:
        bad = [
            {"type": "invalid", "input_array": "events", "index": i}
            for i, o in enumerate(payload["events"])
            if int(o["external_id"][1:]) % 2
        ]
        return answer(400, {"message": "bad", "errors": bad}) if bad else answer()

    braze = FakeBraze(default=refuse_odd)
    run = Run(braze)
    run.go(objs)
    # Then each batch costs two requests, not one per object
    assert len(braze.requests) == 40
    assert braze.stored == objs[0::2]
    assert sorted(r["index"] for r in run.rejects) == list(range(1, 1500, 2))
    assert run.rejects[0]["reason"] == "Braze: invalid"


def test_a_400_whose_errors_name_nothing_it_can_find_still_isolates_by_splitting() -> None:
    def refuse_u7(payload: dict[str, Any]) -> Any:
        if any(o["external_id"] == "u7" for o in payload["events"]):
            return answer(400, {"message": "bad", "errors": [{"type": "x", "input_array": "events", "index": 99}]})
        return answer()

    braze = FakeBraze(default=refuse_u7)
    run = Run(braze)
    run.go(events(20))
    assert [r["index"] for r in run.rejects] == [7] and len(braze.stored) == 19


@pytest.mark.parametrize(
    ("headers", "waited"),
    [
        ({"retry_after": 4.0}, 4.0),  # Retry-After / X-Ratelimit-Retry-After
        ({"retry_after": 4.0, "reset_at_in": 30.0}, 4.0),  # retry-after wins over the reset
        ({"reset_at_in": 2.0}, 2.0),
    ],
)
def test_429_waits_what_braze_asks_for(headers: dict[str, float], waited: float) -> None:
    clock = FakeClock()
    kw: dict[str, Any] = {}
    if "retry_after" in headers:
        kw["retry_after"] = headers["retry_after"]
    if "reset_at_in" in headers:
        kw["reset_at"] = clock.time() + headers["reset_at_in"]
    braze = FakeBraze(script=[answer(429, **kw)])
    run = Run(braze, clock=clock)
    run.go(events(10))
    assert braze.stored == events(10)
    assert waited <= clock.now < waited + 1.0
    assert run.pump.counters.waits_capped == 0


@pytest.mark.parametrize(
    "reset",
    [float("inf"), float("nan"), 1_700_000_000_000.0, "in_a_day"],  # infinite, NaN, milliseconds, a day ahead
)
def test_an_implausible_reset_never_stalls_the_run(reset: Any) -> None:
    clock = FakeClock()
    reset_at = clock.time() + 86400 if reset == "in_a_day" else reset
    # Every answer carries the odd reset, the first one a 429 with nothing left in the window.
    braze = FakeBraze(
        script=[answer(429, remaining=0, reset_at=reset_at)],
        default=lambda p: answer(remaining=0, limit=3000, reset_at=reset_at),
    )
    run = Run(braze, clock=clock)
    result = run.go(events(300), keep_going=lambda: clock.now < 600)
    assert result.outcome is Outcome.COMPLETED
    assert braze.stored == events(300)
    assert clock.now < 30  # backed off briefly, did not wait for the "reset"
    assert run.pump.counters.waits_capped == 1


def test_a_very_long_retry_after_is_capped_and_counted() -> None:
    clock = FakeClock()
    braze = FakeBraze(script=[answer(429, retry_after=3000.0)])
    run = Run(braze, SendPolicy(max_in_flight=1, max_wait_seconds=60.0), clock)
    run.go(events(10))
    assert braze.stored == events(10)
    assert 60.0 <= clock.now < 62.0
    assert run.pump.counters.waits_capped == 1


def test_retry_after_headers_are_read_in_seconds_or_as_a_date() -> None:
    from braze_importer.braze_http import retry_after_seconds

    now = 1_800_000_000.0
    assert retry_after_seconds({"x-ratelimit-retry-after": "7"}, now) == 7.0
    assert retry_after_seconds({"retry-after": "2.5"}, now) == 2.5
    assert retry_after_seconds({"retry-after": "Fri, 15 Jan 2027 08:00:10 GMT"}, 1_800_000_000.0) == 10.0
    assert retry_after_seconds({"retry-after": "inf"}, now) is None
    assert retry_after_seconds({"retry-after": "soon"}, now) is None
    assert retry_after_seconds({}, now) is None


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] | None = None
    for level in range(depth):
        node = {"v": level, "next": node}
    assert node is not None
    return node


def test_an_object_nested_deeper_than_braze_takes_is_a_reject_and_the_rest_of_its_batch_is_sent() -> None:
    import json

    objs = [*events(2), {**events(1, 2)[0], "properties": _nested(300)}, *events(3, 3)]
    data = b"".join(json.dumps(o).encode() + b"\n" for o in objs)  # orjson writes no such nesting
    run = Run(FakeBraze())
    elements = iter_elements([data], Format.LINES, Checkpoint(0, 0).position)
    result = asyncio.run(run.pump.run(elements, Checkpoint(0, 0), lambda: True))
    assert result.outcome is Outcome.COMPLETED
    assert run.braze.stored == [o for i, o in enumerate(objs) if i != 2]
    assert len(run.rejects) == 1
    reject = run.rejects[0]
    assert reject["index"] == 2 and reject["source"] == "validation"
    assert data[reject["offset"] :].startswith(json.dumps(objs[2]).encode()[:30])
    assert "nesting deeper than Braze takes" in reject["reason"]
    assert run.pump.counters.rejected == 1 and run.pump.counters.accepted == 5


def test_an_avro_record_nested_300_deep_is_a_reject_of_the_run_not_a_crash() -> None:
    import io

    import fastavro
    from braze_importer.ports import ObjectRef
    from braze_importer.service import handle_start

    from tests.fakes import FakeS3, make_deps

    schema = {
        "type": "record", "name": "Event",
        "fields": [
            {"name": "external_id", "type": "string"}, {"name": "name", "type": "string"},
            {"name": "time", "type": "string"},
            {"name": "properties", "type": ["null", {
                "type": "record", "name": "Node",
                "fields": [{"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"]}],
            }]},
        ],
    }  # fmt: skip
    rows = [{**e, "properties": None} for e in events(4)]
    rows[1]["properties"] = _nested(300)
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), rows)
    s3 = FakeS3()
    s3.objects[("b", "incoming/events/deep.avro")] = buf.getvalue()
    braze = FakeBraze()
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=1))
    result = handle_start(ObjectRef("b", "incoming/events/deep.avro", "v1", "e", len(buf.getvalue())), "r", deps,
                          lambda: True)  # fmt: skip
    assert result.status == "completed"
    assert [o["external_id"] for o in braze.stored] == ["u0", "u2", "u3"]
    rejects = deps.outputs.lines("rejects/")  # type: ignore[attr-defined]
    assert [r["index"] for r in rejects] == [1]
    assert "nesting deeper than Braze takes" in rejects[0]["reason"]
