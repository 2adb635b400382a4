"""Runs that send only what changed: imports of snapshots one after another through the service, with the
records in memory, Braze's attribute semantics from the emulator, and every way a request can end."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from itertools import count
from typing import Any

import orjson
import pytest
from braze_importer.delta_store import MemoryDeltaStore
from braze_importer.deltas import Changes, Record
from braze_importer.engine import AmbiguousPolicy, Checkpoint, SendPolicy
from braze_importer.ports import BrazeAnswer, Delivery, ObjectRef
from braze_importer.service import Deps, handle_start

from sandbox.braze_emulator import Users
from tests.fakes import FakeBraze, FakeS3, answer, make_deps, run_chain

BUCKET = "imports"
REFUSING_FIRST = {"message": "success", "errors": [{"type": "bad", "input_array": "attributes", "index": 0}]}


def snapshot(users: int, seed: int, changed: float = 0.0, base: list[dict[str, Any]] | None = None) -> list[Any]:
    """Attributes objects of ``users`` users; with ``base``, the same users with about ``changed`` of the
    values changed (scalars, a string array's items, a nested key, a value gone to null)."""
    rng = random.Random(seed)
    if base is None:
        return [
            {
                "external_id": f"u{i}",
                "first_name": f"name{i}",
                "points": i,
                "vip": i % 3 == 0,
                "tags": [f"t{i % 5}", f"t{i % 7}x"],
                "address": {"city": f"c{i % 11}", "zip": f"{i:05d}"},
            }
            for i in range(users)
        ]
    out = []
    for obj in base:
        new = orjson.loads(orjson.dumps(obj))
        for name in ("first_name", "points", "vip", "tags", "address"):
            if rng.random() < changed:
                if name == "tags":
                    new["tags"] = [*new["tags"][1:], f"n{rng.randrange(99)}"]
                elif name == "address":
                    new["address"]["city"] = f"moved{rng.randrange(99)}"
                elif name == "vip":
                    new["vip"] = None
                else:
                    new[name] = f"{new[name]}!"
        out.append(new)
    return out


def put(s3: FakeS3, key: str, objs: list[Any]) -> ObjectRef:
    s3.objects[(BUCKET, key)] = b"\n".join(orjson.dumps(o) for o in objs)
    return ObjectRef(BUCKET, key, "v1", f"etag-{key}")


def held(braze: FakeBraze) -> dict[str, dict[str, Any]]:
    """What Braze holds per external_id after every object it took, in the order it took them."""
    users = Users()
    for obj in braze.stored:
        if "name" not in obj:  # events are not attributes
            users.apply([("attributes", obj)], max_array=500, keep_entries=False)
    return {p.external_id: normal(dict(p.attributes or {})) for p in users.by_external.values()}


def normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sorted(set(value))
    return value


def expected(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["external_id"]: normal({k: v for k, v in o.items() if k != "external_id"}) for o in objs}


def changed_values(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> int:
    return sum(1 for a, b in zip(first, second, strict=True) for name in b if normal(a.get(name)) != normal(b[name]))


class ThreadedStore(MemoryDeltaStore):
    """The memory store called as the DynamoDB one is: look-ups and writes in worker threads."""

    in_process = False


def deps_with(braze: FakeBraze, s3: FakeS3, store: Any, **kw: Any) -> Deps:
    return make_deps(braze, s3, kw.pop("policy", SendPolicy(max_in_flight=4)), deltas=store, **kw)


def run(deps: Deps, ref: ObjectRef) -> dict[str, Any]:
    result = handle_start(ref, "owner", deps, lambda: True)
    assert result.status == "completed", result
    assert result.report is not None
    return result.report


@pytest.mark.parametrize("store_class", [MemoryDeltaStore, ThreadedStore])
def test_a_second_snapshot_sends_only_what_changed_and_braze_ends_holding_it(store_class: type) -> None:
    first = snapshot(600, seed=1)
    second = snapshot(600, seed=2, changed=0.05, base=first)
    s3, braze, store = FakeS3(), FakeBraze(), store_class()
    deps = deps_with(braze, s3, store)
    one = run(deps, put(s3, "incoming/one.jsonl", first))
    assert one["deltas"] | {"enabled": True} == one["deltas"]
    assert one["deltas"]["values_sent"] == one["deltas"]["values_read"] == 600 * 5
    braze.stored.clear()
    sent_before = len(braze.requests)
    two = run(deps, put(s3, "incoming/two.jsonl", second))
    really = changed_values(first, second)
    assert 0 < really < 600
    assert two["deltas"]["values_sent"] == really
    assert two["deltas"]["values_skipped"] == 600 * 5 - really
    unchanged_users = sum(1 for a, b in zip(first, second, strict=True) if normal(a) == normal(b))
    assert two["deltas"]["objects_unchanged"] == unchanged_users
    assert two["accepted"] + two["deltas"]["objects_unchanged"] == two["objects_read"] == 600
    assert len(braze.requests) - sent_before == -(-(600 - unchanged_users) // 75)
    # Braze, given the first file whole and then the deltas, holds the second snapshot.
    braze.stored[:0] = first
    assert held(braze) == expected(second)
    # A third import of the same file sends nothing at all.
    three = run(deps, put(s3, "incoming/three.jsonl", second))
    assert three["deltas"]["values_sent"] == 0 and three["deltas"]["objects_unchanged"] == 600
    assert three["requests"] == 0


def test_events_and_purchases_are_never_diffed() -> None:
    events = [{"external_id": f"u{i % 3}", "name": "opened", "time": "2026-01-01T00:00:00Z"} for i in range(9)]
    s3, braze = FakeS3(), FakeBraze()
    deps = deps_with(braze, s3, MemoryDeltaStore())
    run(deps, put(s3, "incoming/a.jsonl", events))
    run(deps, put(s3, "incoming/b.jsonl", events))
    assert len([o for o in braze.stored if o.get("name") == "opened"]) == 18


def test_the_same_user_again_while_a_delta_is_uncommitted_is_sent_in_full() -> None:
    objs = [
        {"external_id": "u", "a": 1, "b": 1},
        {"external_id": "u", "a": 2, "b": 1},
        {"external_id": "u", "a": 3, "b": 1},
    ]
    s3, braze, store = FakeS3(), FakeBraze(), MemoryDeltaStore()
    deps = deps_with(braze, s3, store)
    run(deps, put(s3, "incoming/one.jsonl", [{"external_id": "u", "a": 1, "b": 1}]))
    braze.stored.clear()
    report = run(deps, put(s3, "incoming/two.jsonl", objs))
    # The first changes nothing (not sent); the second sends its change; the third comes while the
    # second's is not committed, so it is sent whole (its record may be behind).
    assert braze.stored == [{"external_id": "u", "a": 2}, {"external_id": "u", "a": 3, "b": 1}]
    assert report["deltas"]["objects_unchanged"] == 1
    # What the record says afterwards is never wrong: the last object again sends nothing or the truth.
    braze.stored.clear()
    run(deps, put(s3, "incoming/three.jsonl", [objs[-1]]))
    assert braze.stored in ([], [{"external_id": "u", "a": 3}], [{"external_id": "u", "a": 3, "b": 1}])


@pytest.mark.parametrize("store_class", [MemoryDeltaStore, ThreadedStore])
def test_same_user_repeated_across_windows_and_requests_in_flight_keeps_braze_right(store_class: type) -> None:
    # One request at a time: with several in flight, /users/track keeps no order between a user's objects
    # (with or without deltas), so Braze's final state would depend on which request landed last.
    rng = random.Random(7)
    s3, braze, store = FakeS3(), FakeBraze(), store_class()
    deps = deps_with(braze, s3, store, policy=SendPolicy(max_in_flight=1))
    truth: dict[str, dict[str, Any]] = {}
    for n in range(4):
        objs = []
        for _ in range(700):
            user = f"u{rng.randrange(40)}"
            obj = {"external_id": user, "a": rng.randrange(3), "b": rng.choice(["x", "y"])}
            objs.append(obj)
            truth[user] = {"a": obj["a"], "b": obj["b"]}
        run(deps, put(s3, f"incoming/{n}.jsonl", objs))
        # Braze's state (the objects applied in the order taken) matches the last value of every user.
        assert held(braze) == truth


def test_an_object_refused_in_errors_leaves_the_record_as_it_was() -> None:
    s3, store = FakeS3(), MemoryDeltaStore()
    braze = FakeBraze()
    deps = deps_with(braze, s3, store)
    run(deps, put(s3, "incoming/one.jsonl", [{"external_id": "u", "a": 1}, {"external_id": "v", "a": 1}]))
    braze.script = [
        answer(201, {"message": "success", "errors": [{"type": "bad", "input_array": "attributes", "index": 0}]})
    ]
    report = run(deps, put(s3, "incoming/two.jsonl", [{"external_id": "u", "a": 2}, {"external_id": "v", "a": 2}]))
    assert report["rejected"] == 1
    braze.stored.clear()
    run(deps, put(s3, "incoming/three.jsonl", [{"external_id": "u", "a": 2}, {"external_id": "v", "a": 2}]))
    assert braze.stored == [{"external_id": "u", "a": 2}]  # u's change was never applied: sent again


@pytest.mark.parametrize("ending", ["ambiguous_lost", "ambiguous_stored", "not_sent", "http_500"])
def test_an_unanswered_or_failed_request_makes_the_records_forget_what_it_set(ending: str) -> None:
    s3, store = FakeS3(), MemoryDeltaStore()
    braze = FakeBraze()
    policy = SendPolicy(max_in_flight=1, max_attempts=1, ambiguous=AmbiguousPolicy.FAIL)
    deps = deps_with(braze, s3, store, policy=policy)
    run(deps, put(s3, "incoming/one.jsonl", [{"external_id": "u", "a": 1, "b": 1}]))
    braze.script = [answer(500) if ending == "http_500" else ending]
    report = run(deps, put(s3, "incoming/two.jsonl", [{"external_id": "u", "a": 2, "b": 1}]))
    assert report["failed"] == 1
    # The failed file holds the object as read, not the delta sent of it.
    failed = deps.outputs.lines("failed/")  # type: ignore[attr-defined]
    assert failed == [{"external_id": "u", "a": 2, "b": 1}]
    braze.stored.clear()
    run(deps, put(s3, "incoming/three.jsonl", [{"external_id": "u", "a": 1, "b": 1}]))
    # Braze may hold a=2 or a=1: the record claims neither, so a=1 is sent; b was not touched.
    assert braze.stored == [{"external_id": "u", "a": 1}]


@pytest.mark.parametrize("store_class", [MemoryDeltaStore, ThreadedStore])
def test_records_change_only_for_what_braze_took_across_continuations(store_class: type) -> None:
    first = snapshot(300, seed=3)
    second = snapshot(300, seed=4, changed=0.2, base=first)
    s3, braze, store = FakeS3(chunk=97), FakeBraze(), store_class()
    deps = deps_with(braze, s3, store, policy=SendPolicy(max_in_flight=2))
    assert run_chain(deps, put(s3, "incoming/one.jsonl", first), 2)[-1] == "completed"
    statuses = run_chain(deps, put(s3, "incoming/two.jsonl", second), 1)
    assert statuses[-1] == "completed" and len(statuses) > 2
    assert held(braze) == expected(second)
    # Each value counted once, however many invocations re-read it.
    report = next(r for r in deps.store.items.values() if r.key.endswith("two.jsonl"))  # type: ignore[attr-defined]
    assert report.counters["values_read"] == 300 * 5
    assert report.counters["values_sent"] == changed_values(first, second)
    braze.stored.clear()
    run(deps, put(s3, "incoming/three.jsonl", second))
    assert braze.stored == []


def test_a_full_send_sends_every_value_and_rewrites_the_records() -> None:
    first = snapshot(50, seed=5)
    s3, braze, store = FakeS3(), FakeBraze(), MemoryDeltaStore()
    full_keys = {"incoming/full.jsonl"}
    deps = deps_with(braze, s3, store, full_send_requested=lambda ref: ref.key in full_keys)
    run(deps, put(s3, "incoming/one.jsonl", first))
    store.records["e:u0"] = Record({"points": b"?"}, store.records["e:u0"].updated_at, 99)
    report = run(deps, put(s3, "incoming/full.jsonl", first))
    assert report["deltas"]["full_send"] is True
    assert report["deltas"]["values_sent"] == 250 and report["accepted"] == 50
    braze.stored.clear()
    run(deps, put(s3, "incoming/again.jsonl", first))
    assert braze.stored == []  # every record rewritten whole, u0's unknown value included


def test_records_older_than_the_maximum_age_are_ignored() -> None:
    first = snapshot(10, seed=6)
    s3, braze, store = FakeS3(), FakeBraze(), MemoryDeltaStore()
    deps = deps_with(braze, s3, store, delta_max_age_seconds=3600)
    run(deps, put(s3, "incoming/one.jsonl", first))
    deps.clock.epoch += 3601  # type: ignore[attr-defined]
    report = run(deps, put(s3, "incoming/two.jsonl", first))
    assert report["deltas"]["values_sent"] == 50


class FailingStore(MemoryDeltaStore):
    def __init__(self, fail_get: bool = False, fail_commit: bool = False) -> None:
        super().__init__()
        self.fail_get, self.fail_commit = fail_get, fail_commit

    def get_many(self, keys: Any) -> dict[str, Record]:
        if self.fail_get:
            raise RuntimeError("unreachable")
        return super().get_many(keys)

    def commit(self, key: str, changes: Changes, now: float) -> None:
        if self.fail_commit:
            raise RuntimeError("unreachable")
        super().commit(key, changes, now)


def test_a_store_that_cannot_be_read_means_full_sends_not_a_stopped_run() -> None:
    first = snapshot(150, seed=8)
    s3, braze, store = FakeS3(), FakeBraze(), FailingStore()
    deps = deps_with(braze, s3, store)
    run(deps, put(s3, "incoming/one.jsonl", first))
    store.fail_get = True
    braze.stored.clear()
    report = run(deps, put(s3, "incoming/two.jsonl", first))
    assert report["deltas"]["lookup_errors"] == 150
    assert len(braze.stored) == 150 and report["deltas"]["values_sent"] == 750


def test_commit_errors_are_counted_and_the_report_says_how_to_recover() -> None:
    s3, braze, store = FakeS3(), FakeBraze(), FailingStore(fail_commit=True)
    deps = deps_with(braze, s3, store)
    report = run(deps, put(s3, "incoming/one.jsonl", snapshot(20, seed=9)))
    assert report["deltas"]["commit_errors"] == 20
    assert "braze-send=full" in report["deltas"]["warning"]
    assert report["accepted"] == 20


def test_a_dry_run_neither_reads_nor_changes_the_records() -> None:
    s3, braze, store = FakeS3(), FakeBraze(), MemoryDeltaStore()
    deps = deps_with(braze, s3, store)
    report = run(deps, put(s3, "incoming/dry-run/one.jsonl", snapshot(20, seed=10)))
    assert report["deltas"]["enabled"] is False and store.records == {}


def test_without_a_store_everything_is_sent_as_before() -> None:
    first = snapshot(20, seed=11)
    s3, braze = FakeS3(), FakeBraze()
    deps = make_deps(braze, s3)
    run(deps, put(s3, "incoming/one.jsonl", first))
    report = run(deps, put(s3, "incoming/two.jsonl", first))
    assert report["deltas"]["enabled"] is False and report["deltas"]["values_read"] == 0
    assert braze.stored == first + first


def test_a_file_of_unchanged_objects_still_stops_when_time_runs_out() -> None:
    first = snapshot(2_000, seed=12)
    s3, braze, store = FakeS3(), FakeBraze(), MemoryDeltaStore()
    deps = deps_with(braze, s3, store)
    run(deps, put(s3, "incoming/one.jsonl", first))
    ticks = count()
    result = handle_start(put(s3, "incoming/two.jsonl", first), "owner", deps, lambda: next(ticks) < 3)
    assert result.status == "continuing"


def test_every_kind_of_answer_in_a_random_run_leaves_no_record_claiming_what_braze_lacks() -> None:
    rng = random.Random(13)
    steps: list[Callable[[dict[str, Any]], BrazeAnswer | str]] = [
        lambda p: answer(),
        lambda p: "ambiguous_stored",
        lambda p: "ambiguous_lost",
        lambda p: answer(500),
        lambda p: answer(
            201, {"message": "success", "errors": [{"type": "x", "input_array": "attributes", "index": 0}]}
        ),
        lambda p: BrazeAnswer(Delivery.NOT_SENT, detail="x"),
    ]
    braze = FakeBraze(default=lambda payload: rng.choice(steps)(payload))
    s3, store = FakeS3(), MemoryDeltaStore()
    policy = SendPolicy(max_in_flight=3, max_attempts=2, ambiguous=AmbiguousPolicy.FAIL, backoff_base_seconds=0.01)
    deps = deps_with(braze, s3, store, policy=policy)
    objs: list[dict[str, Any]] = []
    for n in range(6):
        objs = [{"external_id": f"u{i}", "a": rng.randrange(3), "t": [rng.choice("xyz")]} for i in range(60)]
        handle_start(put(s3, f"incoming/{n}.jsonl", objs), "owner", deps, lambda: True)
    # Now Braze answers everything: one more import of the last file must leave Braze holding it.
    braze.default = lambda payload: answer()
    run(deps, put(s3, "incoming/last.jsonl", objs))
    assert held(braze) == expected(objs)


def test_an_object_whose_delta_fails_is_sent_whole_and_its_record_forgets(monkeypatch: pytest.MonkeyPatch) -> None:
    from braze_importer import delta_stage, deltas

    def fragile(obj: dict[str, Any], record: Any, **kw: Any) -> Any:
        if obj.get("boom"):
            raise RecursionError("too deep")
        return deltas.diff(obj, record, **kw)

    s3, braze, store = FakeS3(), FakeBraze(), MemoryDeltaStore()
    deps = deps_with(braze, s3, store)
    run(deps, put(s3, "incoming/one.jsonl", [{"external_id": "u", "a": 1}, {"external_id": "v", "a": 1}]))
    monkeypatch.setattr(delta_stage, "diff", fragile)
    braze.stored.clear()
    report = run(
        deps, put(s3, "incoming/two.jsonl", [{"external_id": "u", "a": 2, "boom": 1}, {"external_id": "v", "a": 1}])
    )
    assert report["accepted"] == 1 and report["deltas"]["objects_unchanged"] == 1
    assert braze.stored == [{"external_id": "u", "a": 2, "boom": 1}]
    monkeypatch.undo()
    braze.stored.clear()
    run(deps, put(s3, "incoming/three.jsonl", [{"external_id": "u", "a": 1}]))
    assert braze.stored == [{"external_id": "u", "a": 1}]  # the record no longer claims a=1


class SlowWrites(ThreadedStore):
    """Writes that take a while, noting which users' records are written."""

    def __init__(self) -> None:
        super().__init__()
        self.written: set[str] = set()

    def commit_many(self, work: Any, now: float) -> int:
        time.sleep(0.01)
        errors = super().commit_many(work, now)
        self.written.update(key for key, _ in work)
        return errors


def test_no_checkpoint_calls_an_object_settled_before_its_record_is_written() -> None:
    first = snapshot(1500, seed=14)
    s3, braze, store = FakeS3(), FakeBraze(), SlowWrites()
    deps = deps_with(braze, s3, store, progress_seconds=0.0)
    saves: list[tuple[Checkpoint, set[str]]] = []
    save = deps.store.save

    def noting(run: Any, expected_seq: int) -> bool:
        saves.append((Checkpoint.from_dict(run.checkpoint), set(store.written)))
        return save(run, expected_seq=expected_seq)

    deps.store.save = noting  # type: ignore[method-assign]
    run(deps, put(s3, "incoming/one.jsonl", first))
    assert len(saves) > 3
    for point, written in saves:
        settled = [*range(point.index), *(i for i in range(point.index, 1500) if i in point.skip)]
        assert all(f"e:u{i}" in written for i in settled), point


def test_an_object_refused_after_an_unanswered_attempt_makes_its_record_forget() -> None:
    s3, braze, store = FakeS3(), FakeBraze(), MemoryDeltaStore()
    deps = deps_with(braze, s3, store, policy=SendPolicy(max_in_flight=1, backoff_base_seconds=0.01))
    run(deps, put(s3, "incoming/one.jsonl", [{"external_id": "u", "a": 1}]))
    # The first attempt is stored but unanswered; the resend is refused (Braze took it the first time).
    braze.script = ["ambiguous_stored", answer(400, REFUSING_FIRST)]
    report = run(deps, put(s3, "incoming/two.jsonl", [{"external_id": "u", "a": 2}]))
    assert report["rejected"] == 1
    braze.stored.clear()
    run(deps, put(s3, "incoming/three.jsonl", [{"external_id": "u", "a": 1}]))
    assert braze.stored == [{"external_id": "u", "a": 1}]  # Braze may hold a=2: the record claims nothing


def test_a_run_collects_garbage_less_often_and_puts_the_thresholds_back() -> None:
    import gc

    seen: list[tuple[int, int, int]] = []
    s3 = FakeS3()
    braze = FakeBraze(default=lambda payload: seen.append(gc.get_threshold()) or answer())  # type: ignore[func-returns-value]
    before = gc.get_threshold()
    run(deps_with(braze, s3, MemoryDeltaStore()), put(s3, "incoming/one.jsonl", snapshot(10, seed=15)))
    assert seen and seen[0][0] >= 50_000
    assert gc.get_threshold() == before


def test_an_unanswered_attempt_makes_the_record_forget_even_if_the_invocation_ends_before_the_resend() -> None:
    s3, braze, store = FakeS3(), FakeBraze(), MemoryDeltaStore()
    deps = deps_with(braze, s3, store, policy=SendPolicy(max_in_flight=1, backoff_base_seconds=0.01))
    run(deps, put(s3, "incoming/one.jsonl", [{"external_id": "u", "a": 1}]))
    braze.script = ["ambiguous_stored", answer(400, REFUSING_FIRST)]
    # One time check per invocation: the first ends in the backoff after the unanswered attempt.
    statuses = run_chain(deps, put(s3, "incoming/two.jsonl", [{"external_id": "u", "a": 2}]), 1)
    assert len(statuses) > 1
    braze.stored.clear()
    run(deps, put(s3, "incoming/three.jsonl", [{"external_id": "u", "a": 1}]))
    assert braze.stored == [{"external_id": "u", "a": 1}]


def test_a_window_being_diffed_keeps_its_users_staleness_through_a_prune(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from braze_importer import delta_stage
    from braze_importer.engine import TRACK, Counters, Item

    monkeypatch.setattr(delta_stage, "_PRUNE_AT", 0)  # prune on every commit

    class Slow(ThreadedStore):
        reads = 0

        def get_many(self, keys: Any) -> dict[str, Record]:
            keys = list(keys)
            found = super().get_many(keys)
            if "e:dup" in keys:
                self.reads += 1
                if self.reads == 2:
                    time.sleep(0.2)  # the second look-up of e:dup answers late
            return found

        def commit(self, key: str, changes: Changes, now: float) -> None:
            if key == "e:slow":
                time.sleep(0.05)
            super().commit(key, changes, now)

    store = Slow()
    for user in ("dup", "slow", "f"):
        store.commit(f"e:{user}", deltas_diff({"external_id": user, "a": 0}).changes, 1.0)

    def item(index: int, obj: dict[str, Any]) -> Item:
        return Item(index, None, "attributes", obj, 0, TRACK)  # type: ignore[arg-type]

    async def scenario() -> Any:
        stage = delta_stage.DeltaStage(
            delta_stage.DeltaOptions(store, 1e9, window=1, lookups_ahead=1), Counters(), lambda: 2.0, lambda _: None
        )
        ready: list[Item] = []
        for index, obj in enumerate(
            ({"external_id": "slow", "a": 1}, {"external_id": "dup", "a": 1}, {"external_id": "dup", "a": 0})
        ):
            ready += await stage.push(item(index, obj))
            await asyncio.sleep(0.01)
        stage.accepted([i for i in ready if i.index == 1])  # Braze took a=1: written before the last is diffed
        await asyncio.sleep(0.05)
        stage.accepted([i for i in ready if i.index == 0])  # a write that ends (and prunes) while it is awaited
        later = await stage.push(item(3, {"external_id": "f", "a": 1}))
        later += await stage.finish()
        await stage.close()
        return next(i for i in later if i.index == 2)

    last = asyncio.run(scenario())
    assert last.obj == {"external_id": "dup", "a": 0}  # sent: its record was read before a=1 was written


def deltas_diff(obj: dict[str, Any]) -> Any:
    from braze_importer.deltas import diff

    return diff(obj, None, now=1.0, max_age_seconds=1e9)
