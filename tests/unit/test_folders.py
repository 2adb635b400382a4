"""Runs of files in the kind folders: CDI rows, continuation mid-file, dry runs, refused folders."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from braze_importer.engine import Counters, SendPolicy
from braze_importer.ports import ObjectRef
from braze_importer.service import handle_continue, handle_start

from tests.fakes import FakeBraze, FakeS3, MemoryActiveRuns, MemorySlots, gz, make_deps, run_chain

BUCKET = "imports"
SAMPLES = Path(__file__).parent.parent / "data" / "braze-cdi"


def cdi_event(i: int) -> dict[str, Any]:
    payload = {"name": f"view-{i}", "time": "2024-04-02T14:34:08", "properties": {"i": i}}
    return {"EXTERNAL_ID": f"u{i}", "PAYLOAD": orjson.dumps(payload).decode()}


def bad_row(i: int) -> dict[str, Any]:
    return [
        {"PAYLOAD": "{}"},  # no identifier
        {"EXTERNAL_ID": f"u{i}", "BRAZE_ID": "b", "PAYLOAD": "{}"},  # two identifiers
        {"EXTERNAL_ID": f"u{i}", "PAYLOAD": "[1]"},  # not an object
        {"EXTERNAL_ID": f"u{i}", "PAYLOAD": orjson.dumps({"name": "x"}).decode()},  # an event without time
    ][i % 4]


def rows(n: int) -> list[dict[str, Any]]:
    return [bad_row(i) if i % 13 == 7 else cdi_event(i) for i in range(n)]


def as_jsonl(objs: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(o) for o in objs) + b"\n"


def as_cdi_csv(objs: list[dict[str, Any]]) -> bytes:
    def quoted(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    lines = ["external_id,braze_id,payload"]
    for o in objs:
        lines.append(",".join([o.get("EXTERNAL_ID", ""), o.get("BRAZE_ID", ""), quoted(o["PAYLOAD"])]))
    return ("\r\n".join(lines) + "\r\n").encode()


def expected_events(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"external_id": o["EXTERNAL_ID"], **orjson.loads(o["PAYLOAD"])} for i, o in enumerate(objs) if i % 13 != 7]


@pytest.mark.parametrize("shape", ["jsonl", "jsonl.gz", "csv", "csv.gz", "json", "lines.json"])
@pytest.mark.parametrize("per_invocation", [1, 3])
def test_cdi_events_continued_mid_file_land_once_each_in_order_with_rejects(shape: str, per_invocation: int) -> None:
    objs = rows(400)
    data = as_cdi_csv(objs) if shape.startswith("csv") else as_jsonl(objs)
    if shape == "json":
        data = orjson.dumps(objs)  # an array; "lines.json" is JSON Lines named .json, as Braze's samples
    s3 = FakeS3(chunk=997)
    key = f"incoming/events/day.{shape}"
    s3.objects[(BUCKET, key)] = gz(data) if shape.endswith(".gz") else data
    braze = FakeBraze()
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=2, max_batch_objects=20))
    statuses = run_chain(deps, ObjectRef(BUCKET, key, "v1", "etag"), per_invocation)
    assert statuses[-1] == "completed" and len(statuses) > 2  # continued mid-file several times
    assert braze.stored == expected_events(objs)
    assert all(set(r) == {"events"} for r in braze.requests)  # all sent as events, never guessed
    rejects = deps.outputs.lines("rejects/")
    assert [r["index"] for r in rejects] == [i for i in range(len(objs)) if i % 13 == 7]
    assert {r["source"] for r in rejects} == {"csv" if shape.startswith("csv") else "validation"}
    reasons = " | ".join(r["reason"] for r in rejects)
    for reason in ("no identifier", "more than one identifier", "PAYLOAD: is a JSON array", "time: is required"):
        assert reason in reasons
    if shape.startswith("csv"):
        assert all(r["line"] == r["index"] + 2 for r in rejects)  # the header is line 1
    report = orjson.loads(deps.outputs.files[next(k for k in deps.outputs.files if k.startswith("reports/"))])
    assert report["source"]["kind"] == "events"
    assert report["accepted"] == len(expected_events(objs))


def test_an_attributes_object_named_like_an_event_is_sent_as_attributes_from_the_attributes_folder() -> None:
    objs = [{"external_id": "u1", "name": "GT896", "time": "whenever", "product_id": "p", "price": 3}]
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/attributes/a.json")] = orjson.dumps(objs)
    s3.objects[(BUCKET, "incoming/a.json")] = orjson.dumps(objs)
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    assert handle_start(
        ObjectRef(BUCKET, "incoming/attributes/a.json", "v1", None), "r", deps, lambda: True
    ).status == ("completed")
    assert braze.requests == [{"attributes": objs}]
    # Directly under incoming/ the kind is still inferred: a purchase without a currency is a reject.
    result = handle_start(ObjectRef(BUCKET, "incoming/a.json", "v1", None), "r", deps, lambda: True)
    assert result.report is not None and result.report["rejected"] == 1 and len(braze.requests) == 1


def test_a_plain_attributes_csv_still_imports_from_the_attributes_folder() -> None:
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/attributes/a.csv")] = b"external_id,age,payload_size\nu1,42,7\nu2,,\n"
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    result = handle_start(ObjectRef(BUCKET, "incoming/attributes/a.csv", "v1", None), "r", deps, lambda: True)
    assert result.status == "completed"
    assert braze.stored == [{"external_id": "u1", "age": 42, "payload_size": 7}]
    assert result.report is not None and result.report["skipped"] == 1


def test_a_csv_with_a_payload_column_directly_under_incoming_keeps_payload_as_an_attribute() -> None:
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/a.csv")] = b'external_id,payload\nu1,"{""a"": 1}"\n'
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    handle_start(ObjectRef(BUCKET, "incoming/a.csv", "v1", None), "r", deps, lambda: True)
    assert braze.stored == [{"external_id": "u1", "payload": '{"a": 1}'}]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"external_id,payload,tier", "holds only identifier columns"),
        (b"payload", "no identifier column"),
        (b"alias_name,payload", "needs both ALIAS_NAME and ALIAS_LABEL"),
        (b"EXTERNAL_ID,external_id,PAYLOAD", "appears twice"),
    ],
)
def test_a_cdi_csv_with_a_bad_header_stops_clearly_sending_nothing(header: bytes, message: str) -> None:
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/events/a.csv")] = header + b"\nu1,{},x\n"
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    result = handle_start(ObjectRef(BUCKET, "incoming/events/a.csv", "v1", None), "r", deps, lambda: True)
    assert result.report is not None and result.report["status"] == "stopped"
    assert message in result.report["error"]["message"] and braze.requests == []


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("attributes/attributes_sample.json", "attributes"),
        ("attributes/attributes_sample.csv", "attributes"),
        ("events/custom_events_sample.json", "events"),
        ("purchases/purchases_sample.json", "purchases"),
    ],
)
def test_brazes_cdi_samples_import_from_their_folders(key: str, kind: str) -> None:
    data = (SAMPLES / key).read_bytes()
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/" + key)] = data
    braze = FakeBraze()
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=2))
    result = handle_start(ObjectRef(BUCKET, "incoming/" + key, "v1", None), "r", deps, lambda: True)
    assert result.report is not None and result.report["status"] == "completed", result.report
    rows_in_file = len([line for line in data.splitlines() if line.strip()]) - key.endswith(".csv")
    assert result.report["accepted"] == rows_in_file and result.report["rejected"] == 0
    assert all(set(r) == {kind} for r in braze.requests)
    first = braze.stored[0]
    assert first["external_id"].startswith("s3-qa-") and "payload" not in first
    if kind == "attributes":
        assert isinstance(first["retention"], dict) and isinstance(first["age"], int)
    else:
        assert first["time"] == "2024-04-02T14:34:08" and isinstance(first["properties"], dict)


def test_a_dry_run_reads_checks_and_counts_sends_nothing_and_takes_no_slot_or_share() -> None:
    objs = rows(300)
    s3 = FakeS3(chunk=500)
    key = "incoming/dry-run/events/day.jsonl"
    s3.objects[(BUCKET, key)] = as_jsonl(objs)
    braze = FakeBraze()
    slots, active = MemorySlots(1), MemoryActiveRuns()
    assert slots.acquire("another-run", 0.0, 300.0)  # every slot taken: a real run would queue
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=2, workspace_requests_per_second=1.0), slots=slots,
                     active_runs=active)  # fmt: skip
    ref = ObjectRef(BUCKET, key, "v1", None)
    first = handle_start(ref, "r", deps, lambda: False)  # one batch, then continues
    assert first.status == "continuing" and first.delta == Counters()  # no production metrics from a dry run
    statuses = [first.status]
    while deps.continuer.payloads:
        payload = deps.continuer.payloads.pop(0)
        statuses.append(handle_continue(payload["run_id"], payload["seq"], "r", deps, lambda: False).status)
    assert statuses[-1] == "completed" and "queued" not in statuses and len(statuses) > 2
    assert braze.requests == [] and active.beats == 0
    report = orjson.loads(deps.outputs.files[next(k for k in deps.outputs.files if k.startswith("reports/"))])
    would = len(expected_events(objs))
    assert report["dry_run"] is True
    assert report["would_send"] == {"/users/track": {"requests": -(-would // 75), "objects": would}}
    assert report["accepted"] == 0 and report["requests"] == 0
    assert report["rejected"] == len(objs) - would
    assert [r["index"] for r in deps.outputs.lines("rejects/dry-run/")] == [i for i in range(300) if i % 13 == 7]
    assert deps.outputs.lines("failed/") == []


@pytest.mark.parametrize(
    ("data", "fmt", "status"),
    [
        (b'\xef\xbb\xbf  \n{"external_id": "u1", "age": 1}\n{"external_id": "u2", "age": 2}', "lines", "completed"),
        (b'[{"external_id": "u1", "age": 1}, {"external_id": "u2", "age": 2}]', "array", "completed"),
        (b'{\n "external_id": "u1"\n}\n', "array", "stopped"),  # one pretty-printed object: not lines
        # a first line many chunks long, after blank lines: its end is found as chunks come
        (b'\r\n\n{"external_id": "u1", "bio": "' + b"x" * 300 + b'"}\r\n{"external_id": "u2"}', "lines", "completed"),
        (b'{"external_id": "u1", "bio": "' + b"x" * 300 + b'"}', "lines", "completed"),  # no line break at all
    ],
)
def test_a_json_file_holding_one_object_per_line_is_read_as_json_lines(data: bytes, fmt: str, status: str) -> None:
    s3 = FakeS3(chunk=5)
    s3.objects[(BUCKET, "incoming/a.json")] = data
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    result = handle_start(ObjectRef(BUCKET, "incoming/a.json", "v1", None), "r", deps, lambda: True)
    assert result.report is not None and result.report["status"] == status
    assert result.report["source"]["format"] == fmt
    if status == "completed":
        assert [o["external_id"] for o in braze.stored] == re.findall(r'"external_id": "(u\d)"', data.decode())
    else:
        assert result.report["stop_reason"] == "invalid_json" and braze.requests == []
