"""Parquet and Avro files: exact resume at every row group / block boundary and inside one, format
by content, JSON values as Braze takes them, row groups too large, damaged files, CDI rows."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
from decimal import Decimal
from itertools import count
from typing import Any

import fastavro
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from braze_importer import columnar
from braze_importer.engine import SendPolicy
from braze_importer.ports import ObjectRef
from braze_importer.reader import Format, Position
from braze_importer.service import format_for, handle_continue, handle_resume, handle_start

from tests.fakes import FakeBraze, FakeS3, gz, make_deps
from tests.unit.test_source_gone import GONE, VanishingS3

BUCKET = "imports"
T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def events(n: int) -> list[dict[str, Any]]:
    """Events with a reject every 7th row (no identifier)."""
    rows = []
    for i in range(n):
        rows.append(
            {
                "external_id": None if i % 7 == 3 else f"u{i}",
                "name": "bought",
                "time": T0 + dt.timedelta(seconds=i),
                "properties": {"i": i, "tag": f"t{i % 3}"},
            }
        )
    return rows


def sent_form(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What Braze should get for ``events(n)``: the rows with an identifier, times as ISO UTC."""
    out = []
    for row in rows:
        if row["external_id"] is None:
            continue
        out.append({**row, "time": row["time"].strftime("%Y-%m-%dT%H:%M:%S") + ".000000Z"})
    return out


def parquet_bytes(rows: list[dict[str, Any]], row_group_size: int, schema: Any = None, **kw: Any) -> bytes:
    table = pa.Table.from_pylist(rows, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size, **kw)
    return buf.getvalue()


EVENT_SCHEMA = {
    "type": "record",
    "name": "Event",
    "fields": [
        {"name": "external_id", "type": ["null", "string"]},
        {"name": "name", "type": "string"},
        {"name": "time", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {
            "name": "properties",
            "type": {
                "type": "record",
                "name": "Props",
                "fields": [{"name": "i", "type": "long"}, {"name": "tag", "type": "string"}],
            },
        },
    ],
}


def avro_bytes(rows: list[dict[str, Any]], schema: dict[str, Any] = EVENT_SCHEMA, **kw: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), rows, **kw)
    return buf.getvalue()


def avro_blocks(data: bytes) -> list[tuple[int, int]]:
    """(offset, records) of every block."""
    return [(b.offset, b.num_records) for b in fastavro.block_reader(io.BytesIO(data))]


def run_key(key: str, data: bytes, budgets: list[int], chunk: int = 4096, **deps_kw: Any) -> tuple[Any, FakeBraze, Any]:
    """Start a run, then continue it, invocation i stopping after budgets[i] time checks (the last
    budget for every invocation after)."""
    s3 = deps_kw.pop("s3", None) or FakeS3(chunk=chunk)
    s3.objects[(BUCKET, key)] = data
    braze = FakeBraze()
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=1, max_batch_objects=1), **deps_kw)

    def budget(i: int) -> Any:
        ticks = count()
        n = budgets[min(i, len(budgets) - 1)]
        return lambda: next(ticks) < n

    result = handle_start(ObjectRef(BUCKET, key, "v1", "etag", len(data)), "a", deps, budget(0))
    i = 1
    while deps.continuer.payloads:
        payload = deps.continuer.payloads.pop(0)
        result = handle_continue(payload["run_id"], payload["seq"], "b", deps, budget(i))
        i += 1
    return result, braze, deps


# -- resume at every position -------------------------------------------------------------------


ROWS = events(23)


def test_parquet_and_avro_files_hold_several_row_groups_and_blocks_of_uneven_size() -> None:
    meta = pq.ParquetFile(io.BytesIO(parquet_bytes(ROWS, 5))).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [5, 5, 5, 5, 3]
    blocks = avro_blocks(avro_bytes(ROWS, sync_interval=100))
    assert len(blocks) >= 4 and sum(n for _, n in blocks) == len(ROWS)


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
@pytest.mark.parametrize("first", range(1, len(ROWS) + 2))
def test_a_run_paused_after_any_row_resumes_and_sends_each_object_exactly_once(fmt: str, first: int) -> None:
    # One object per request and one time check per request: the first invocation stops after
    # `first` objects, at every row group / block boundary and inside every one; the next ones
    # after every 4 objects, at other positions again.
    data = parquet_bytes(ROWS, 5) if fmt == "parquet" else avro_bytes(ROWS, sync_interval=100)
    result, braze, deps = run_key(f"incoming/events/e.{fmt}", data, [first, 4])
    assert result.status == "completed"
    assert braze.stored == sent_form(ROWS)
    report = result.report
    assert report["objects_read"] == len(ROWS)
    assert report["accepted"] == len(sent_form(ROWS)) and report["rejected"] == len(ROWS) - len(sent_form(ROWS))
    rejects = deps.outputs.lines("rejects/")
    assert sorted(r["index"] for r in rejects) == [i for i, r in enumerate(ROWS) if r["external_id"] is None]


def test_parquet_elements_resume_from_any_position_inside_a_row_group() -> None:
    data = parquet_bytes(ROWS, 5)
    s3 = FakeS3()
    s3.objects[(BUCKET, "k")] = data
    deps = make_deps(FakeBraze(), s3)
    ref = ObjectRef(BUCKET, "k", "v1", "etag")
    every = list(columnar.iter_parquet(deps.source, ref, Position(0, 0)))
    assert [e.index for e in every] == list(range(len(ROWS)))
    for element in every:
        assert element.anchor == Position(element.index // 5, element.index)
        assert element.next.index == element.index + 1
        for start in (element.anchor, element.next):
            again = list(columnar.iter_parquet(deps.source, ref, start))
            assert [(e.index, e.value) for e in again] == [(e.index, e.value) for e in every[start.index :]]


def test_an_avro_resume_reads_the_header_then_streams_from_the_block_not_from_byte_0() -> None:
    data = avro_bytes(ROWS, sync_interval=100)
    blocks = avro_blocks(data)
    s3 = FakeS3()
    s3.objects[(BUCKET, "k")] = data
    deps = make_deps(FakeBraze(), s3)
    ref = ObjectRef(BUCKET, "k", "v1", "etag")
    every = list(columnar.iter_avro(deps.source, ref, Position(0, 0)))
    assert [e.index for e in every] == list(range(len(ROWS)))
    firsts = [0]
    for _, n in blocks:
        firsts.append(firsts[-1] + n)
    assert sorted({e.anchor for e in every}, key=lambda p: p.offset) == [
        Position(o, f) for (o, _), f in zip(blocks, firsts, strict=False)
    ]
    for (offset, _), first in zip(blocks[1:], firsts[1:], strict=False):
        s3.ranges.clear()
        again = list(columnar.iter_avro(deps.source, ref, Position(offset, first)))
        assert [(e.index, e.value) for e in again] == [(e.index, e.value) for e in every[first:]]
        assert s3.ranges == ["bytes=0-65535", f"bytes={offset}-"]  # the header, then the blocks


# -- format by suffix and by content ------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "size", "fmt"),
    [
        ("incoming/a.parquet", 10, Format.PARQUET),
        ("incoming/part-00000-1b2c-c000.snappy.parquet", 10, Format.PARQUET),
        ("incoming/a.parq", 10, Format.PARQUET),
        ("incoming/a.PARQUET", 10, Format.PARQUET),
        ("incoming/a.avro", 10, Format.AVRO),
        ("incoming/a.parquet.gz", 10, Format.PARQUET),  # refused when read, with its reason
        ("incoming/events/20260301_120000_00011_abcde_0b6a", 10, Format.DETECT),  # Athena
        ("incoming/unload/0000_part_00", 10, Format.DETECT),  # Redshift UNLOAD
        ("incoming/unload/0000_part_00.gz", 10, Format.DETECT),
        ("incoming/unload/0000_part_00", None, Format.DETECT),
        ("incoming/a.jsonl.gz", 10, Format.LINES),
        ("incoming/a.csv", 0, Format.CSV),  # an empty CSV still gets its report (no header)
        ("incoming/unload/0000_part_00", 0, None),  # an empty object with no suffix: nothing to read
        ("incoming/spark/_SUCCESS", 0, None),
        ("incoming/spark/_committed_123", 10, None),
        ("incoming/spark/.part-0000.snappy.parquet.crc", 10, None),
        ("incoming/spark/part-0000.crc", 10, None),
        ("incoming/a.tmp", 10, None),
        ("incoming/a.txt", 10, None),
        ("incoming/unload/manifest", 10, None),  # Redshift's manifest lists the files: not data
        ("incoming/events/", 0, None),  # a folder marker
    ],
)
def test_format_by_suffix_or_left_to_the_first_bytes_and_non_data_keys_ignored(
    key: str, size: int | None, fmt: Format | None
) -> None:
    assert format_for(key, size) is fmt


def csv_text() -> bytes:
    return b"external_id,first_name\nu1,Ann\nu2,Bob\n"


def lines_text() -> bytes:
    return b'{"external_id":"u1","first_name":"Ann"}\n{"external_id":"u2","first_name":"Bob"}\n'


ANN_BOB = [{"external_id": "u1", "first_name": "Ann"}, {"external_id": "u2", "first_name": "Bob"}]


@pytest.mark.parametrize(
    ("data", "fmt", "gzip"),
    [
        (parquet_bytes(ANN_BOB, 1), "parquet", False),
        (avro_bytes(ANN_BOB, {"type": "record", "name": "U", "fields": [
            {"name": "external_id", "type": "string"}, {"name": "first_name", "type": "string"}]}), "avro", False),
        (gz(lines_text()), "lines", True),
        (gz(b"\n \n" + orjson.dumps(ANN_BOB)), "array", True),
        (gz(csv_text()), "csv", True),
        (lines_text(), "lines", False),
        (orjson.dumps(ANN_BOB), "array", False),
        (csv_text(), "csv", False),
    ],
)  # fmt: skip
def test_a_key_without_suffix_is_read_by_its_first_bytes_once_for_the_whole_run(
    data: bytes, fmt: str, gzip: bool
) -> None:
    result, braze, _ = run_key("incoming/attributes/0000_part_00", data, [1])  # continues after each object
    assert result.status == "completed", result.report
    assert braze.stored == ANN_BOB
    assert result.report["source"]["format"] == fmt and result.report["source"]["gzip"] is gzip
    assert result.report["invocations"] >= 2  # the continuations read as the first invocation decided


@pytest.mark.parametrize(
    ("key", "data"),
    [("incoming/a.parquet.gz", gz(parquet_bytes(ANN_BOB, 1))), ("incoming/0000_part_00", gz(avro_bytes(ANN_BOB, {
        "type": "record", "name": "U", "fields": [{"name": "external_id", "type": "string"},
                                                  {"name": "first_name", "type": "string"}]})))],
)  # fmt: skip
def test_a_gzip_of_a_parquet_or_avro_file_is_refused_with_its_reason(key: str, data: bytes) -> None:
    result, braze, _ = run_key(key, data, [100])
    assert result.status == "stopped" and result.report["stop_reason"] == "unreadable_file"
    assert "gzip of a" in result.report["error"]["message"] and "upload the" in result.report["error"]["message"]
    assert not braze.requests


def test_an_empty_suffix_less_object_is_ignored() -> None:
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/_SUCCESS")] = b""
    deps = make_deps(FakeBraze(), s3)
    assert handle_start(ObjectRef(BUCKET, "incoming/x/0000_part_00", "v1", "e", 0), "a", deps, lambda: True).status == (
        "ignored"
    )
    assert handle_start(ObjectRef(BUCKET, "incoming/_SUCCESS", "v1", "e", 0), "a", deps, lambda: True).status == (
        "ignored"
    )


def test_importing_the_handler_imports_neither_pyarrow_nor_fastavro() -> None:
    code = (
        "import sys, braze_importer.handler, braze_importer.service, braze_importer.columnar;"
        "bad = [m for m in ('pyarrow', 'fastavro') if m in sys.modules];"
        "assert not bad, bad"
    )
    env_path = ":".join(["lambdas", "."])
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": env_path, "POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# -- values -------------------------------------------------------------------------------------


def one_parquet_run(rows: list[dict[str, Any]], schema: Any = None, key: str = "incoming/attributes/a.parquet") -> Any:
    return run_key(key, parquet_bytes(rows, 100, schema), [1000])


def test_parquet_values_become_json_as_braze_takes_them() -> None:
    schema = pa.schema(
        [
            ("external_id", pa.string()),
            ("seen_naive", pa.timestamp("ns")),
            ("seen_paris", pa.timestamp("ms", "Europe/Paris")),
            ("dob", pa.date32()),
            ("score", pa.decimal128(10, 2)),
            ("visits", pa.decimal128(20, 0)),
            ("ratio", pa.float64()),
            ("address", pa.struct([("city", pa.string()), ("since", pa.timestamp("s"))])),
            ("tags", pa.list_(pa.string())),
            ("prices", pa.list_(pa.decimal128(6, 2))),
            ("counts", pa.map_(pa.string(), pa.int64())),
            ("nickname", pa.dictionary(pa.int32(), pa.string())),
            ("flag", pa.bool_()),
        ]
    )
    rows = [
        {
            "external_id": "u1",
            "seen_naive": dt.datetime(2024, 4, 2, 14, 34, 8, 123456),
            "seen_paris": dt.datetime(2024, 4, 2, 16, 34, 8, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "dob": dt.date(1990, 5, 17),
            "score": Decimal("12.50"),
            "visits": Decimal("12345678901234567890"),
            "ratio": 0.25,
            "address": {"city": "Lyon", "since": dt.datetime(2020, 1, 1)},
            "tags": ["a", "b"],
            "prices": [Decimal("1.00"), Decimal("2.25")],
            "counts": [("x", 1), ("y", 2)],
            "nickname": "Al",
            "flag": True,
        },
        # Nulls are left out, as an empty CSV cell is: an attribute is never unset by a null column.
        {"external_id": "u2", "ratio": None, "tags": None, "flag": False, "score": Decimal("3.00")},
    ]
    result, braze, _ = one_parquet_run(rows, schema)
    assert result.status == "completed", result.report
    assert braze.stored == [
        {
            "external_id": "u1",
            "seen_naive": "2024-04-02T14:34:08.123456Z",
            "seen_paris": "2024-04-02T14:34:08.000Z",
            "dob": "1990-05-17",
            "score": 12.5,
            "visits": 12345678901234567890,
            "ratio": 0.25,
            "address": {"city": "Lyon", "since": "2020-01-01T00:00:00.000000Z"},
            "tags": ["a", "b"],
            "prices": [1, 2.25],
            "counts": {"x": 1, "y": 2},
            "nickname": "Al",
            "flag": True,
        },
        {"external_id": "u2", "score": 3, "flag": False},
    ]


def test_parquet_values_without_a_json_form_reject_their_row_naming_the_column_only() -> None:
    schema = pa.schema(
        [
            ("external_id", pa.string()),
            ("avatar", pa.binary()),
            ("ratio", pa.float64()),
            ("nested", pa.struct([("weights", pa.list_(pa.float32()))])),
        ]
    )
    rows = [
        {"external_id": "u1", "avatar": b"\x89PNG-secret", "ratio": 1.0},
        {"external_id": "u2", "avatar": None, "ratio": float("nan")},
        {"external_id": "u3", "ratio": float("inf")},
        {"external_id": "u4", "nested": {"weights": [1.0, float("-inf")]}},
        {"external_id": "u5", "avatar": None, "ratio": 2.0, "nested": {"weights": [0.5]}},
    ]
    result, braze, deps = one_parquet_run(rows, schema)
    assert result.status == "completed"
    assert braze.stored == [{"external_id": "u5", "ratio": 2.0, "nested": {"weights": [0.5]}}]
    rejects = {r["index"]: r for r in deps.outputs.lines("rejects/")}
    assert sorted(rejects) == [0, 1, 2, 3]
    assert rejects[0]["reason"].startswith("column avatar: binary data (bytes) has no JSON form")
    assert rejects[1]["reason"] == rejects[2]["reason"] == "column ratio: NaN or an infinity has no JSON form"
    assert rejects[3]["reason"] == "column nested: NaN or an infinity has no JSON form"
    assert all(r["source"] == "parquet" for r in rejects.values())
    assert "secret" not in orjson.dumps(list(rejects.values())).decode()


def test_avro_values_become_json_and_values_without_a_json_form_reject_their_row() -> None:
    schema = {
        "type": "record",
        "name": "U",
        "fields": [
            {"name": "external_id", "type": "string"},
            {"name": "seen", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
            {"name": "local", "type": ["null", {"type": "long", "logicalType": "local-timestamp-micros"}]},
            {"name": "dob", "type": ["null", {"type": "int", "logicalType": "date"}]},
            {
                "name": "score",
                "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}],
            },
            {"name": "raw", "type": ["null", "bytes"]},
            {"name": "ratio", "type": ["null", "double"]},
            {"name": "color", "type": ["null", {"type": "enum", "name": "Color", "symbols": ["RED", "BLUE"]}]},
            {"name": "counts", "type": ["null", {"type": "map", "values": "long"}]},
        ],
    }
    rows = [
        {
            "external_id": "u1",
            "seen": dt.datetime(2024, 4, 2, 14, 34, 8, 123000, tzinfo=dt.UTC),
            "local": dt.datetime(2024, 4, 2, 14, 34, 8),
            "dob": dt.date(1990, 5, 17),
            "score": Decimal("12.50"),
            "ratio": 0.5,
            "color": "RED",
            "counts": {"x": 1},
        },
        {"external_id": "u2", "score": Decimal("3.00")},
        {"external_id": "u3", "raw": b"secret"},
        {"external_id": "u4", "ratio": float("nan")},
    ]
    result, braze, deps = run_key("incoming/attributes/a.avro", avro_bytes(rows, schema), [1000])
    assert result.status == "completed", result.report
    assert braze.stored == [
        {
            "external_id": "u1",
            "seen": "2024-04-02T14:34:08.123000Z",
            "local": "2024-04-02T14:34:08.000000Z",
            "dob": "1990-05-17",
            "score": 12.5,
            "ratio": 0.5,
            "color": "RED",
            "counts": {"x": 1},
        },
        {"external_id": "u2", "score": 3},
    ]
    rejects = {r["index"]: r["reason"] for r in deps.outputs.lines("rejects/")}
    assert rejects == {
        2: "column raw: binary data (bytes) has no JSON form; write it as a string column",
        3: "column ratio: NaN or an infinity has no JSON form",
    }


# -- CDI rows -----------------------------------------------------------------------------------


CDI = [
    {"EXTERNAL_ID": "u1", "PAYLOAD": '{"first_name": "Ann", "points": 3}'},
    {"EXTERNAL_ID": "u2", "PAYLOAD": None},  # a reject: an empty payload
    {"EXTERNAL_ID": None, "PAYLOAD": '{"first_name": "Nobody"}'},  # a reject: no identifier
]


def test_cdi_rows_from_parquet_are_braze_objects() -> None:
    result, braze, deps = one_parquet_run(CDI)
    assert result.status == "completed"
    assert braze.stored == [{"external_id": "u1", "first_name": "Ann", "points": 3}]
    reasons = [r["reason"] for r in deps.outputs.lines("rejects/")]
    assert reasons[0] == "PAYLOAD: is empty; it must be a JSON object"
    assert reasons[1].startswith("no identifier")


@pytest.mark.parametrize("payload", ["json", "record", "map"])
def test_cdi_rows_from_avro_with_a_json_string_record_or_map_payload(payload: str) -> None:
    types: dict[str, Any] = {
        "json": "string",
        "record": {
            "type": "record",
            "name": "P",
            "fields": [{"name": "first_name", "type": "string"}, {"name": "points", "type": "long"}],
        },
        "map": {"type": "map", "values": ["string", "long"]},
    }
    schema = {
        "type": "record",
        "name": "Row",
        "fields": [
            {"name": "EXTERNAL_ID", "type": ["null", "string"]},
            {"name": "PAYLOAD", "type": ["null", types[payload]]},
        ],
    }
    value: Any = {"first_name": "Ann", "points": 3}
    rows = [
        {"EXTERNAL_ID": "u1", "PAYLOAD": orjson.dumps(value).decode() if payload == "json" else value},
        {"EXTERNAL_ID": "u2", "PAYLOAD": None},
    ]
    result, braze, deps = run_key("incoming/attributes/cdi.avro", avro_bytes(rows, schema), [1000])
    assert result.status == "completed", result.report
    assert braze.stored == [{"external_id": "u1", "first_name": "Ann", "points": 3}]
    assert [r["reason"] for r in deps.outputs.lines("rejects/")] == ["PAYLOAD: is empty; it must be a JSON object"]


# -- row group too large, damaged files, codecs, source gone ------------------------------------


def two_row_groups() -> bytes:
    small = pa.Table.from_pylist([{"external_id": f"u{i}", "note": "x"} for i in range(5)])
    large = pa.Table.from_pylist([{"external_id": f"v{i}", "note": f"{i:0>2000}"} for i in range(50)])
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, small.schema, compression="snappy") as writer:
        writer.write_table(small)
        writer.write_table(large)
    return buf.getvalue()


def test_a_row_group_too_large_for_the_function_memory_stops_the_run_with_the_sizes_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = two_row_groups()
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    small, large = meta.row_group(0).total_byte_size, meta.row_group(1).total_byte_size
    monkeypatch.setattr(columnar, "memory_limit", lambda memory_mb=None: (small + large) // 2)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
    result, braze, _ = run_key("incoming/attributes/big.parquet", data, [1000])
    assert result.status == "stopped" and result.report["stop_reason"] == "unreadable_file"
    message = result.report["error"]["message"]
    assert f"row group 1 holds {large:,} bytes uncompressed" in message
    assert f"more than the {(small + large) // 2:,}" in message and "1769 MB" in message
    assert "smaller row groups" in message
    assert result.report["error"]["offset"] == 1
    assert [o["external_id"] for o in braze.stored] == [f"u{i}" for i in range(5)]  # the first row group settled
    assert "resume" not in result.report


def test_the_row_group_limit_follows_the_function_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", raising=False)
    assert columnar.memory_limit() is None  # not on Lambda: no limit
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
    assert columnar.memory_limit() == (1769 - 256) * 2**20 // 2
    assert columnar.memory_limit(3008) == (3008 - 256) * 2**20 // 2
    assert columnar.memory_limit(256) == 64 * 2**20


@pytest.mark.parametrize("cut", [1, 8, 100])
def test_a_truncated_parquet_file_stops_as_unreadable_sending_nothing(cut: int) -> None:
    data = parquet_bytes(ROWS, 5)
    result, braze, _ = run_key("incoming/events/t.parquet", data[:-cut], [1000])
    assert result.status == "stopped" and result.report["stop_reason"] == "unreadable_file"
    assert "footer" in result.report["error"]["message"]
    assert not braze.requests


def test_a_corrupt_row_group_stops_the_run_there_with_the_rows_before_it_settled() -> None:
    data = bytearray(parquet_bytes(ROWS, 5, compression="snappy"))
    meta = pq.ParquetFile(io.BytesIO(bytes(data))).metadata
    column = meta.row_group(2).column(3)  # properties.tag... any column chunk of row group 2
    start = column.data_page_offset
    data[start : start + column.total_compressed_size] = b"\xff" * column.total_compressed_size
    result, braze, _ = run_key("incoming/events/c.parquet", bytes(data), [1000])
    assert result.status == "stopped" and result.report["stop_reason"] == "unreadable_file"
    assert result.report["error"]["offset"] == 2 and "row group 2" in result.report["error"]["message"]
    assert braze.stored == sent_form(ROWS[:10])


def test_a_bad_avro_sync_marker_stops_at_its_block_with_every_block_before_it_settled() -> None:
    data = bytearray(avro_bytes(ROWS, sync_interval=100))
    blocks = avro_blocks(bytes(data))
    offset, _ = blocks[2]
    next_offset, _ = blocks[3]
    data[next_offset - 1] ^= 0xFF  # the last byte of block 2's sync marker
    result, braze, _ = run_key("incoming/events/c.avro", bytes(data), [1000])
    assert result.status == "stopped" and result.report["stop_reason"] == "unreadable_file"
    assert result.report["error"]["offset"] == offset
    assert f"block at byte {offset}" in result.report["error"]["message"]
    before = sum(n for _, n in blocks[:2])
    assert braze.stored == sent_form(ROWS[:before])


@pytest.mark.parametrize("cut", [1, 10])
def test_a_truncated_avro_file_stops_as_unreadable_after_its_whole_blocks(cut: int) -> None:
    data = avro_bytes(ROWS, sync_interval=100)
    blocks = avro_blocks(data)
    result, braze, _ = run_key("incoming/events/t.avro", data[:-cut], [1000])
    assert result.status == "stopped" and result.report["stop_reason"] == "unreadable_file"
    assert result.report["error"]["offset"] == blocks[-1][0]
    assert braze.stored == sent_form(ROWS[: len(ROWS) - blocks[-1][1]])


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy", "bzip2", "xz"])
def test_avro_codecs_read_without_native_packages_beyond_the_bundle(codec: str) -> None:
    result, braze, _ = run_key("incoming/events/z.avro", avro_bytes(ROWS, codec=codec, sync_interval=100), [3, 5])
    assert result.status == "completed"
    assert braze.stored == sent_form(ROWS)


def _long(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def test_an_avro_codec_the_bundle_cannot_read_is_refused_with_the_codecs_it_can() -> None:
    schema = orjson.dumps({"type": "record", "name": "U", "fields": [{"name": "external_id", "type": "string"}]})
    meta = [(b"avro.schema", schema), (b"avro.codec", b"zstandard")]
    header = b"Obj\x01" + _long(len(meta))
    for k, v in meta:
        header += _long(len(k)) + k + _long(len(v)) + v
    data = header + _long(0) + b"S" * 16
    result, braze, _ = run_key("incoming/attributes/z.avro", data, [1000])
    assert result.status == "stopped" and result.report["stop_reason"] == "unreadable_file"
    assert "'zstandard' is not read" in result.report["error"]["message"]
    assert "null, deflate or snappy" in result.report["error"]["message"]
    assert not braze.requests


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
@pytest.mark.parametrize("case", ["version_deleted", "access_denied"])
def test_a_source_gone_or_denied_mid_run_stops_with_its_own_reason(fmt: str, case: str) -> None:
    data = parquet_bytes(ROWS, 5) if fmt == "parquet" else avro_bytes(ROWS, sync_interval=100)
    key = f"incoming/events/g.{fmt}"
    s3 = VanishingS3(chunk=4096)
    s3.objects[(BUCKET, key)] = data
    braze = FakeBraze()
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=1, max_batch_objects=1))
    ticks = count()
    started = handle_start(ObjectRef(BUCKET, key, "v1", "etag"), "a", deps, lambda: next(ticks) < 7)
    assert started.status == "continuing"
    s3.gone = ("AccessDenied", 403) if case == "access_denied" else GONE[case]
    payload = deps.continuer.payloads.pop(0)
    stored = list(braze.stored)
    result = handle_continue(payload["run_id"], payload["seq"], "b", deps, lambda: True)
    assert result.status == "stopped"
    assert result.report["stop_reason"] == ("source_access_denied" if case == "access_denied" else "source_gone")
    assert braze.stored == stored
    if case == "access_denied":
        s3.gone = None
        resumed = handle_resume(started.run_id, "c", deps, lambda: True, force=False)
        assert resumed.status == "completed"
        assert braze.stored == sent_form(ROWS)


def test_a_parquet_file_without_times_is_read_without_importing_pyarrow_compute() -> None:
    # pyarrow.compute takes a tenth of a second or more to import: only timestamps, dates and
    # times (converted vectorised) need it.
    code = """
import io, sys
import pyarrow as pa, pyarrow.parquet as pq
from braze_importer import columnar
from braze_importer.ports import ObjectRef
from braze_importer.reader import Position
from tests.fakes import FakeBraze, FakeS3, make_deps
buf = io.BytesIO()
rows = [{"external_id": "u1", "n": 1.5, "tags": ["a"], "p": {"x": 1}}, {"external_id": "u2", "n": None, "p": None}]
pq.write_table(pa.Table.from_pylist(rows), buf)
assert "pyarrow.compute" not in sys.modules
s3 = FakeS3()
s3.objects[("b", "k")] = buf.getvalue()
source = make_deps(FakeBraze(), s3).source
got = [e.value for e in columnar.iter_parquet(source, ObjectRef("b", "k", "v", None), Position(0, 0))]
assert got == [rows[0], {"external_id": "u2"}], got
assert "pyarrow.compute" not in sys.modules, "imported"
"""
    done = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": "lambdas:."}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_an_avro_block_declaring_more_bytes_than_the_importer_holds_stops_the_run_without_reading_them() -> None:
    good = avro_bytes(ROWS, sync_interval=100)
    blocks = avro_blocks(good)
    offset, _ = blocks[1]
    data = good[:offset] + _long(5) + _long(1 << 40) + b"x" * 100  # a block saying it holds 1 TB
    result, braze, _ = run_key("incoming/events/huge.avro", data, [1000])
    assert result.status == "stopped" and result.report["stop_reason"] == "unreadable_file"
    assert "1,099,511,627,776 bytes" in result.report["error"]["message"]
    assert braze.stored == sent_form(ROWS[: blocks[0][1]])
