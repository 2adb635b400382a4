"""Runs across invocations: continuation at many positions, duplicates, resume, outputs."""

from __future__ import annotations

from itertools import count, pairwise
from typing import Any

import orjson
import pytest
from braze_importer.engine import SendPolicy
from braze_importer.ports import ObjectRef
from braze_importer.service import handle_continue, handle_resume, handle_start, handle_sweep, start_queued

from tests.fakes import FakeBraze, FakeS3, answer, gz, make_deps, run_chain

BUCKET = "imports"


def sample(n: int) -> list[Any]:
    objs: list[Any] = []
    for i in range(n):
        if i % 17 == 5:
            objs.append({"name": "no identifier", "time": "2026-01-01"})  # a reject
        else:
            objs.append({"external_id": f"ü{i}", "name": "e", "time": "2026-01-01T00:00:00Z", "properties": {"i": i}})
    return objs


def expected(objs: list[Any]) -> list[Any]:
    return [o for o in objs if "external_id" in o]


def encode(objs: list[Any], shape: str) -> tuple[str, bytes]:
    if shape == "minified":
        return "incoming/a.json", orjson.dumps(objs)
    if shape == "pretty":
        return "incoming/a.json", orjson.dumps(objs, option=orjson.OPT_INDENT_2)
    if shape == "lines":
        return "incoming/a.jsonl", b"\n".join(orjson.dumps(o) for o in objs)
    return "incoming/a.jsonl.gz", gz(b"\n".join(orjson.dumps(o) for o in objs) + b"\n")


@pytest.mark.parametrize("shape", ["minified", "pretty", "lines", "gzip"])
@pytest.mark.parametrize("per_invocation", [1, 2, 5])
@pytest.mark.parametrize("read_chunk", [7, 4096])
def test_continuation_at_many_positions_delivers_each_object_once_in_order(
    shape: str, per_invocation: int, read_chunk: int
) -> None:
    objs = sample(600)
    key, data = encode(objs, shape)
    s3 = FakeS3(chunk=read_chunk)
    s3.objects[(BUCKET, key)] = data
    braze = FakeBraze()
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=1))
    statuses = run_chain(deps, ObjectRef(BUCKET, key, "v1", "etag"), per_invocation)
    assert statuses[-1] == "completed" and len(statuses) > 2
    assert braze.stored == expected(objs)
    run = next(iter(deps.store.items.values()))
    assert run.counters["objects_read"] == len(objs)
    assert run.counters["rejected"] == len(objs) - len(expected(objs))
    rejects = deps.outputs.lines("rejects/")
    assert sorted(r["index"] for r in rejects) == [i for i, o in enumerate(objs) if "external_id" not in o]
    if shape in ("minified", "lines"):
        assert any(r and r != "bytes=0-1" for r in s3.ranges)  # plain files resume with a range request


def test_resumed_run_with_unsettled_batch_behind_settled_ones_sends_nothing_twice() -> None:
    objs = sample(400)
    key, data = encode(objs, "minified")
    s3 = FakeS3()
    s3.objects[(BUCKET, key)] = data
    # First request of every invocation is slow to succeed: answers 503 once, so later batches settle first.
    failures = iter([answer(503)] * 3)
    braze = FakeBraze(default=lambda p: next(failures, answer()))
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=4))
    statuses = run_chain(deps, ObjectRef(BUCKET, key, "v1", None), 3)
    assert statuses[-1] == "completed"
    assert sorted(o["external_id"] for o in braze.stored) == sorted(o["external_id"] for o in expected(objs))


def test_duplicate_s3_notification_and_duplicate_continuation_send_nothing() -> None:
    objs = sample(300)
    key, data = encode(objs, "lines")
    s3 = FakeS3()
    s3.objects[(BUCKET, key)] = data
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    ref = ObjectRef(BUCKET, key, "v1", "etag")
    ticks = count()
    first = handle_start(ref, "a", deps, lambda: next(ticks) < 1)
    assert first.status == "continuing"
    sent = len(braze.requests)
    assert handle_start(ref, "b", deps, lambda: True).status == "duplicate"
    payload = deps.continuer.payloads.pop()
    assert handle_continue(payload["run_id"], payload["seq"], "c", deps, lambda: True).status == "completed"
    assert handle_continue(payload["run_id"], payload["seq"], "d", deps, lambda: True).status == "duplicate"
    assert len(braze.requests) > sent
    assert braze.stored == expected(objs)


def test_a_new_version_of_the_same_key_is_a_new_run() -> None:
    key, data = encode(sample(10), "lines")
    s3 = FakeS3()
    s3.objects[(BUCKET, key)] = data
    deps = make_deps(FakeBraze(), s3)
    assert handle_start(ObjectRef(BUCKET, key, "v1", None), "a", deps, lambda: True).status == "completed"
    assert handle_start(ObjectRef(BUCKET, key, "v2", None), "b", deps, lambda: True).status == "completed"


def test_auth_failure_stops_and_resume_finishes_exactly_where_it_stopped() -> None:
    objs = sample(500)
    key, data = encode(objs, "pretty")
    s3 = FakeS3()
    s3.objects[(BUCKET, key)] = data
    refused = {"on": False}

    def gate(payload: dict[str, Any]) -> Any:
        return answer(401, {"message": "Invalid API key"}) if refused["on"] else answer()

    braze = FakeBraze(default=gate)
    braze.script = [answer(), answer()]
    refused["on"] = True
    deps = make_deps(braze, s3)
    result = handle_start(ObjectRef(BUCKET, key, "v1", None), "a", deps, lambda: True)
    assert result.status == "stopped"
    assert result.report is not None and result.report["stop_reason"] == "braze_auth_401"
    assert result.report["resume"] == {"action": "resume", "run_id": result.run_id}
    assert len(braze.stored) == 150
    refused["on"] = False
    resumed = handle_resume(result.run_id, "b", deps, lambda: True, force=False)
    assert resumed.status == "completed"
    assert braze.stored == expected(objs)
    assert handle_resume(result.run_id, "c", deps, lambda: True, force=False).status == "not_resumable"


def test_invalid_json_stops_with_position_after_sending_what_came_before() -> None:
    objs = sample(100)
    data = orjson.dumps(objs)[:-40]  # truncated
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/t.json")] = data
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    result = handle_start(ObjectRef(BUCKET, "incoming/t.json", "v1", None), "a", deps, lambda: True)
    assert result.status == "stopped"
    assert result.report is not None
    assert result.report["stop_reason"] == "invalid_json"
    assert result.report["error"]["offset"] == len(data)
    assert "resume" not in result.report
    assert braze.stored == expected(objs)[: len(braze.stored)] and len(braze.stored) >= len(expected(objs)) - 1


@pytest.mark.parametrize("key", ["incoming/dumped.jsonl", "incoming/dumped.jsonl.gz", "incoming/dumped.ndjson"])
def test_a_json_array_written_on_one_line_and_named_json_lines_stops_with_the_hint(key: str) -> None:
    objs = sample(300)
    data = orjson.dumps(objs) + b"\n"  # what json.dump(list, f) writes
    s3 = FakeS3()
    s3.objects[(BUCKET, key)] = gz(data) if key.endswith(".gz") else data
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    result = handle_start(ObjectRef(BUCKET, key, "v1", None), "a", deps, lambda: True)
    assert result.status == "stopped" and result.report is not None
    assert result.report["stop_reason"] == "invalid_json"
    assert "name the file .json" in result.report["error"]["message"] and result.report["error"]["offset"] == 0
    assert result.report["objects_read"] == 0 and not braze.requests
    assert deps.outputs.lines("rejects/") == []


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-32-be"])
def test_a_utf16_or_utf32_file_without_a_bom_stops_with_the_encoding_named(encoding: str) -> None:
    text = "".join(orjson.dumps(o).decode() + "\n" for o in sample(30))
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/wide.jsonl")] = text.encode(encoding)
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    result = handle_start(ObjectRef(BUCKET, "incoming/wide.jsonl", "v1", None), "a", deps, lambda: True)
    assert result.status == "stopped" and result.report is not None
    assert result.report["stop_reason"] == "invalid_json" and "UTF-8" in result.report["error"]["message"]
    assert result.report["objects_read"] == 0 and not braze.requests


def test_failed_batches_land_in_a_replayable_file_outside_the_incoming_prefix() -> None:
    objs = sample(100)
    key, data = encode(objs, "lines")
    s3 = FakeS3()
    s3.objects[(BUCKET, key)] = data
    deps = make_deps(FakeBraze(default=lambda p: answer(500)), s3, SendPolicy(max_in_flight=2, max_attempts=2))
    result = handle_start(ObjectRef(BUCKET, key, "v1", None), "a", deps, lambda: True)
    assert result.status == "completed"
    assert result.report is not None and result.report["failed"] == len(expected(objs))
    failed_keys = [k for k in deps.outputs.files if k.startswith("failed/")]
    assert failed_keys and all(k.endswith(".jsonl") and not k.startswith("incoming/") for k in failed_keys)
    assert sorted(o["external_id"] for o in deps.outputs.lines("failed/")) == sorted(
        o["external_id"] for o in expected(objs)
    )


def test_hop_limit_stops_a_chain() -> None:
    key, data = encode(sample(600), "lines")
    s3 = FakeS3()
    s3.objects[(BUCKET, key)] = data
    deps = make_deps(FakeBraze(), s3, max_hops=2)
    statuses = run_chain(deps, ObjectRef(BUCKET, key, "v1", None), 1)
    assert statuses == ["continuing", "stopped"]
    assert next(iter(deps.store.items.values())).stop_reason == "hop_limit"


def test_keys_that_are_not_json_are_ignored() -> None:
    deps = make_deps(FakeBraze(), FakeS3())
    for key in ("incoming/x.tsv.gz", "incoming/x.xml", "incoming/spark/_SUCCESS", "incoming/x.csv.bak"):
        assert handle_start(ObjectRef(BUCKET, key, "v1", None), "a", deps, lambda: True).status == "ignored"


class Crash(Exception):
    pass


def test_an_invocation_that_dies_is_resumed_resending_only_what_was_in_flight() -> None:
    objs = [o for o in sample(3000) if "external_id" in o]
    key, data = encode(objs, "lines")
    s3 = FakeS3()
    s3.objects[(BUCKET, key)] = data
    calls = count()

    def crash_midway(payload: dict[str, Any]) -> Any:
        if next(calls) == 20:
            raise Crash("the invocation died")
        return answer()

    braze = FakeBraze(default=crash_midway)
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=4), progress_seconds=0.0)
    ref = ObjectRef(BUCKET, key, "v1", None)
    with pytest.raises(Crash):
        handle_start(ref, "a", deps, lambda: True)
    stored_before = len(braze.stored)
    assert 0 < stored_before < len(objs)
    run_id = next(iter(deps.store.items))
    assert handle_resume(run_id, "b", deps, lambda: True, force=False).status == "not_resumable"  # still "running"
    assert handle_resume(run_id, "b", deps, lambda: True, force=True).status == "completed"
    ids = [o["external_id"] for o in braze.stored]
    assert set(ids) == {o["external_id"] for o in objs}
    assert len(ids) - len(set(ids)) <= 4 * 75  # at most the batches that were in flight


# -- damaged and empty files ---------------------------------------------------------------------


def _lines(n: int) -> bytes:
    return b"".join(
        orjson.dumps({"external_id": f"u{i}", "name": "e", "time": "2026-01-01T00:00:00Z"}) + b"\n" for i in range(n)
    )


def test_a_truncated_gzip_file_stops_the_run_and_says_so() -> None:
    data = gz(_lines(2000))
    s3 = FakeS3(chunk=4096)
    s3.objects[(BUCKET, "incoming/cut.jsonl.gz")] = data[: len(data) // 2]
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    result = handle_start(ObjectRef(BUCKET, "incoming/cut.jsonl.gz", "v1", None), "a", deps, lambda: True)
    assert result.status == "stopped"
    assert result.report is not None and result.report["stop_reason"] == "unreadable_file"
    assert "truncated" in result.report["error"]["message"]
    # Everything before the cut was imported; nothing after it was invented.
    assert 0 < len(braze.stored) < 2000
    assert all(o["external_id"] == f"u{i}" for i, o in enumerate(braze.stored))


def test_zero_padding_after_a_gzip_member_is_ignored_like_gzip_tools_do() -> None:
    s3 = FakeS3(chunk=1000)
    s3.objects[(BUCKET, "incoming/pad.jsonl.gz")] = gz(_lines(300)) + gz(_lines(2)) + b"\x00" * 5000
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    result = handle_start(ObjectRef(BUCKET, "incoming/pad.jsonl.gz", "v1", None), "a", deps, lambda: True)
    assert result.status == "completed"
    assert len(braze.stored) == 302


def test_garbage_after_a_gzip_member_stops_the_run() -> None:
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/junk.jsonl.gz")] = gz(_lines(10)) + b"\x00\x00garbage"
    deps = make_deps(FakeBraze(), s3)
    result = handle_start(ObjectRef(BUCKET, "incoming/junk.jsonl.gz", "v1", None), "a", deps, lambda: True)
    assert result.status == "stopped" and result.report is not None
    assert result.report["stop_reason"] == "unreadable_file"


@pytest.mark.parametrize("key", ["incoming/empty.jsonl", "incoming/empty.json"])
def test_a_zero_byte_object_gets_a_report_not_a_crash(key: str) -> None:
    s3 = FakeS3()
    s3.objects[(BUCKET, key)] = b""
    deps = make_deps(FakeBraze(), s3)
    result = handle_start(ObjectRef(BUCKET, key, "v1", None, size=None), "a", deps, lambda: True)
    assert result.report is not None
    if key.endswith(".jsonl"):
        assert result.status == "completed" and result.report["objects_read"] == 0
    else:
        assert result.status == "stopped" and result.report["stop_reason"] == "invalid_json"


# -- concurrent runs bounded by slots in the runs table -------------------------------------------


def _two_files(s3: FakeS3) -> tuple[ObjectRef, ObjectRef]:
    s3.objects[(BUCKET, "incoming/a.jsonl")] = _lines(600)
    s3.objects[(BUCKET, "incoming/b.jsonl")] = _lines(50)
    return ObjectRef(BUCKET, "incoming/a.jsonl", "v1", None), ObjectRef(BUCKET, "incoming/b.jsonl", "v1", None)


def test_a_run_without_a_slot_is_queued_at_once_and_never_waits_in_its_invocation() -> None:
    from tests.fakes import MemorySlots

    s3 = FakeS3()
    first, second = _two_files(s3)
    braze = FakeBraze()
    deps = make_deps(braze, s3, slots=MemorySlots(1), slot_lease_seconds=3600.0)
    ticks = count()
    assert handle_start(first, "a", deps, lambda: next(ticks) < 1).status == "continuing"
    deps.continuer.payloads.clear()
    sent, began, asked = len(braze.requests), deps.clock.time(), count()

    def keep_going() -> bool:
        next(asked)
        return True  # a whole invocation's time left: it must still not wait

    queued = handle_start(second, "b", deps, keep_going)
    assert queued.status == "queued"
    assert deps.clock.time() == began and next(asked) == 0  # no sleep, no polling
    assert len(braze.requests) == sent and deps.continuer.payloads == []  # no self-invocation either
    run_b = deps.store.get(queued.run_id)
    assert run_b is not None and run_b.status == "queued" and run_b.queued_at == began
    assert run_b.invocations == 0 and run_b.queued_hops == 1
    assert deps.slots.waiting() == [(queued.run_id, run_b.seq)]


def test_a_released_slot_starts_the_oldest_queued_run_exactly_once() -> None:
    from tests.fakes import MemorySlots

    s3 = FakeS3()
    first, second = _two_files(s3)
    s3.objects[(BUCKET, "incoming/c.jsonl")] = _lines(30)
    third = ObjectRef(BUCKET, "incoming/c.jsonl", "v1", None)
    braze = FakeBraze()
    deps = make_deps(braze, s3, slots=MemorySlots(1))
    ticks = count()
    assert handle_start(first, "a", deps, lambda: next(ticks) < 1).status == "continuing"
    first_payload = deps.continuer.payloads.pop(0)
    b = handle_start(second, "b", deps, lambda: True)
    deps.clock.now += 1
    c = handle_start(third, "c", deps, lambda: True)
    assert (b.status, c.status) == ("queued", "queued") and deps.continuer.payloads == []
    # The first run ends and gives its slot back: the releaser starts b (queued first), only b.
    assert handle_continue(first_payload["run_id"], first_payload["seq"], "d", deps, lambda: True).status == "completed"
    assert [p["run_id"] for p in deps.continuer.payloads] == [b.run_id]
    start_b = deps.continuer.payloads.pop(0)
    # A sweep racing the releaser starts nothing more: b is started, c has no slot.
    assert start_queued(deps) == []
    assert deps.continuer.payloads == []
    # A duplicated start of b loses its claim.
    assert handle_continue(start_b["run_id"], start_b["seq"], "e", deps, lambda: True).status == "completed"
    assert handle_continue(start_b["run_id"], start_b["seq"], "e2", deps, lambda: True).status == "duplicate"
    # b's end starts c, which runs to the end; nothing is left queued or held.
    start_c = deps.continuer.payloads.pop(0)
    assert start_c["run_id"] == c.run_id and deps.continuer.payloads == []
    assert handle_continue(start_c["run_id"], start_c["seq"], "f", deps, lambda: True).status == "completed"
    assert len(braze.stored) == 680
    assert deps.slots.held == {} and deps.slots.waiting() == []


def test_the_sweep_starts_queued_runs_once_a_dead_holders_lease_runs_out() -> None:
    from braze_importer.runs import run_id_for

    from tests.fakes import MemorySlots

    s3 = FakeS3()
    first, second = _two_files(s3)
    deps = make_deps(FakeBraze(), s3, slots=MemorySlots(1), slot_lease_seconds=120.0)
    # The first run took the slot and its invocation died (nothing released it).
    assert deps.slots.acquire(run_id_for(BUCKET, first.key, "v1", None), deps.clock.time(), 120.0)
    queued = handle_start(second, "b", deps, lambda: True)
    assert queued.status == "queued"
    assert handle_sweep(deps).status == "started 0"  # the lease still runs
    deps.clock.now += 121
    assert handle_sweep(deps).status == "started 1"
    payload = deps.continuer.payloads.pop(0)
    assert payload["run_id"] == queued.run_id
    assert handle_sweep(deps).status == "started 0"  # started once
    assert handle_continue(payload["run_id"], payload["seq"], "c", deps, lambda: True).status == "completed"
    assert deps.slots.waiting() == [] and deps.slots.held == {}


def test_a_resume_after_the_hop_limit_gets_the_whole_hop_limit_again() -> None:
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/long.jsonl")] = _lines(2000)
    deps = make_deps(FakeBraze(), s3, max_hops=3)
    ref = ObjectRef(BUCKET, "incoming/long.jsonl", "v1", None)
    statuses = run_chain(deps, ref, 1)
    assert statuses == ["continuing", "continuing", "stopped"]
    run_id = deps.store.get(next(iter(deps.store.items))).run_id  # type: ignore[union-attr]
    ticks = count()
    resumed = handle_resume(run_id, "op", deps, lambda: next(ticks) < 1, force=False)
    assert resumed.status == "continuing"  # not stopped again after one invocation
    payload = deps.continuer.payloads.pop(0)
    assert handle_continue(payload["run_id"], payload["seq"], "x", deps, lambda: next(ticks) < 2).status == "continuing"


# -- gzip resumes from a seek point --------------------------------------------------------------


@pytest.mark.parametrize("members", [1, 3])
def test_a_gzip_run_resumes_from_its_latest_seek_point_not_from_byte_0(members: int) -> None:
    from braze_importer.aws import S3Source

    from tests.fakes import MemorySeekPoints

    objs = sample(30000)
    text = b"\n".join(orjson.dumps(o) for o in objs) + b"\n"
    cut = [len(text) * i // members for i in range(members + 1)]
    data = b"".join(gz(text[a:b]) for a, b in pairwise(cut))
    s3 = FakeS3(chunk=50_000)
    s3.objects[(BUCKET, "incoming/big.jsonl.gz")] = data
    braze = FakeBraze()
    seeks = MemorySeekPoints()
    source = S3Source(s3, seek_spacing=100_000)
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=1), source=source, seek_points=seeks)
    statuses = run_chain(deps, ObjectRef(BUCKET, "incoming/big.jsonl.gz", "v1", None), 40)
    assert statuses[-1] == "completed" and len(statuses) > 3
    assert braze.stored == expected(objs)  # each object once, in order
    assert seeks.saves >= 2
    # Once a seek point was kept, every continuation asked S3 for the file from one, not from byte 0,
    # and those starts move forward with the run.
    starts = [int(r[6:-1]) if r else 0 for r in s3.ranges if r != "bytes=0-1"]
    assert starts[0] == 0 and starts[-1] > len(data) // 2
    later = starts[starts.index(next(s for s in starts if s > 0)) :]
    assert all(s > 0 for s in later) and later == sorted(later)


def test_a_seek_point_past_the_checkpoint_is_not_used() -> None:
    from braze_importer.aws import S3Source
    from braze_importer.ports import SeekPoint

    from tests.fakes import MemorySeekPoints

    objs = sample(3000)
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/x.jsonl.gz")] = gz(b"\n".join(orjson.dumps(o) for o in objs))
    seeks = MemorySeekPoints()
    braze = FakeBraze()
    deps = make_deps(braze, s3, source=S3Source(s3, seek_spacing=10_000), seek_points=seeks)
    ref = ObjectRef(BUCKET, "incoming/x.jsonl.gz", "v1", None)
    ticks = count()
    assert handle_start(ref, "a", deps, lambda: next(ticks) < 2).status == "continuing"
    run_id = next(iter(deps.store.items))
    # A crash after the seek point was written but before its checkpoint: a point beyond it.
    seeks.points[run_id] = SeekPoint(10**9, 10**8, 0, b"").to_bytes()
    payload = deps.continuer.payloads.pop(0)
    assert handle_continue(payload["run_id"], payload["seq"], "b", deps, lambda: True).status == "completed"
    assert braze.stored == expected(objs)


def test_without_libz_gzip_still_imports_and_resumes_by_inflating_from_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from braze_importer import gzip_index

    monkeypatch.setattr(gzip_index, "available", lambda: False)
    objs = sample(600)
    key, data = encode(objs, "gzip")
    s3 = FakeS3(chunk=4096)
    s3.objects[(BUCKET, key)] = data
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    statuses = run_chain(deps, ObjectRef(BUCKET, key, "v1", None), 2)
    assert statuses[-1] == "completed" and len(statuses) > 2
    assert braze.stored == expected(objs)
    assert all(r is None for r in s3.ranges if r != "bytes=0-1")  # every hop read from byte 0


def test_a_starter_that_died_before_invoking_leaves_the_sweep_to_invoke_the_run() -> None:
    from braze_importer.runs import run_id_for

    from tests.fakes import MemorySlots

    class FailingOnce:
        def __init__(self) -> None:
            self.payloads: list[dict[str, object]] = []
            self.fail = True

        def invoke_async(self, payload: dict[str, object]) -> None:
            if self.fail:
                self.fail = False
                raise ConnectionError("Lambda unreachable")
            self.payloads.append(payload)

    s3 = FakeS3()
    first, second = _two_files(s3)
    continuer = FailingOnce()
    deps = make_deps(FakeBraze(), s3, slots=MemorySlots(1), slot_lease_seconds=120.0, continuer=continuer)
    assert deps.slots.acquire(run_id_for(BUCKET, first.key, "v1", None), deps.clock.time(), 120.0)
    queued = handle_start(second, "b", deps, lambda: True)
    deps.clock.now += 121
    with pytest.raises(ConnectionError):
        handle_sweep(deps)  # the run went queued -> continuing, its invocation was lost
    handle_sweep(deps)
    (payload,) = continuer.payloads
    assert payload["run_id"] == queued.run_id
    assert handle_continue(queued.run_id, int(payload["seq"]), "c", deps, lambda: True).status == "completed"
    assert deps.slots.waiting() == []


def test_a_run_waiting_on_braze_keeps_its_slot_without_making_progress() -> None:
    """Long 429 or backoff waits make no progress; the lease must still be renewed meanwhile."""
    import time as real_time

    from tests.fakes import MemorySlots

    s3 = FakeS3()
    first, _ = _two_files(s3)
    renewals: list[float] = []
    slots = MemorySlots(1)
    acquire = slots.acquire

    def counting_acquire(run_id: str, now: float, lease_seconds: float) -> bool:
        renewals.append(now)
        return acquire(run_id, now, lease_seconds)

    slots.acquire = counting_acquire  # type: ignore[method-assign]

    def slow(payload: dict[str, Any]) -> Any:
        real_time.sleep(0.5)  # Braze keeps the run waiting in real time, with no progress made
        return answer()

    deps = make_deps(FakeBraze(script=[slow]), s3, slots=slots)
    deps.slot_lease_seconds = 0.15
    assert handle_start(first, "a", deps, lambda: True).status == "completed"
    assert len(renewals) >= 3  # the first take, then heartbeats every lease / 3 while Braze waited


def test_a_long_invocation_tells_its_counts_as_it_goes_and_the_rest_at_its_end() -> None:
    from braze_importer.engine import Counters

    told: list[Counters] = []
    s3 = FakeS3()
    lines = [orjson.dumps({"external_id": f"u{i}", "city": "x"}) for i in range(2000)]
    s3.objects[(BUCKET, "incoming/a.jsonl")] = b"\n".join(lines) + b"\n"
    braze = FakeBraze()
    deps = make_deps(braze, s3, on_counters=told.append, counters_every_seconds=0.0, progress_seconds=0.0)
    result = handle_start(ObjectRef(BUCKET, "incoming/a.jsonl", "v1", "e"), "o", deps, lambda: True)
    assert result.status == "completed" and len(told) >= 2
    total = Counters()
    for delta in [*told, result.delta]:
        total = total.add(delta)
    assert (total.objects_read, total.accepted, total.requests) == (2000, 2000, len(braze.requests))
    assert all(d.requests >= 0 and d.accepted >= 0 for d in told)
