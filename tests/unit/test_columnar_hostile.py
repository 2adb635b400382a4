"""Hostile Parquet and Avro files: nanosecond times nested in values, invalid UTF-8, dictionary
columns that decode far larger than the file, catalog files whose rows would read differently
row by row, and duplicate column names. None may escape as an exception or lose data silently."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from braze_importer import columnar
from braze_importer.aws import S3Source
from braze_importer.ports import ObjectRef
from braze_importer.reader import Position

from tests.fakes import FakeS3
from tests.unit.test_columnar import run_key

NS = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z


def pq_bytes(table: pa.Table, **kw: Any) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kw)
    return buf.getvalue()


def event_table(properties: pa.Array) -> pa.Table:
    return pa.table({"external_id": ["u1"], "name": ["e"], "time": ["2024-01-01T00:00:00Z"], "properties": properties})


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        (
            pa.StructArray.from_arrays([pa.array([NS], pa.timestamp("ns"))], ["at"]),
            {"at": "2023-11-14T22:13:20.123456Z"},
        ),
        (
            pa.StructArray.from_arrays([pa.array([[NS]], pa.list_(pa.timestamp("ns")))], ["at"]),
            {"at": ["2023-11-14T22:13:20.123456Z"]},
        ),
        (
            pa.StructArray.from_arrays([pa.array([NS], pa.timestamp("ns", tz="UTC"))], ["at"]),
            {"at": "2023-11-14T22:13:20.123456Z"},
        ),
        (
            pa.StructArray.from_arrays([pa.array([45_296_123_456_789], pa.time64("ns"))], ["t"]),
            {"t": "12:34:56.123456"},
        ),
    ],
    ids=["struct-timestamp", "list-timestamp", "struct-zoned-timestamp", "struct-time64"],
)
def test_nanosecond_times_nested_in_a_value_are_truncated_to_microseconds_like_top_level_ones(
    properties: pa.Array, expected: Any
) -> None:
    data = pq_bytes(event_table(properties), version="2.6", coerce_timestamps=None)
    result, braze, deps = run_key("incoming/events/x.parquet", data, [1000])
    assert result.status == "completed", result.report
    assert deps.outputs.lines("rejects/") == []
    [event] = [e for e in braze.stored]
    assert event["properties"] == expected


def test_a_value_pyarrow_cannot_convert_rejects_its_row_naming_the_column(monkeypatch: pytest.MonkeyPatch) -> None:
    table = pa.table({"external_id": ["u1", "u2"], "tier": ["gold", "silver"]})
    real = columnar._pylist

    def failing(array: Any) -> list[Any]:
        if pa.types.is_string(array.type) and "silver" in array.to_pylist():
            raise pa.ArrowInvalid("cannot convert")
        return real(array)

    monkeypatch.setattr(columnar, "_pylist", failing)
    result, braze, deps = run_key("incoming/attributes/x.parquet", pq_bytes(table), [1000])
    assert result.status == "completed"
    assert braze.stored == [{"external_id": "u1", "tier": "gold"}]
    [reject] = deps.outputs.lines("rejects/")
    assert reject["index"] == 1 and reject["reason"].startswith("column tier:")


def test_invalid_utf8_in_a_string_column_rejects_only_its_rows_naming_the_column() -> None:
    bad = pa.array([b"Paris", b"caf\xe9", b"Oslo"], pa.binary()).view(pa.string())
    table = pa.table({"external_id": ["u1", "u2", "u3"], "city": bad})
    result, braze, deps = run_key("incoming/attributes/x.parquet", pq_bytes(table), [1000])
    assert result.status == "completed", result.report
    assert braze.stored == [{"external_id": "u1", "city": "Paris"}, {"external_id": "u3", "city": "Oslo"}]
    [reject] = deps.outputs.lines("rejects/")
    assert reject["index"] == 1 and reject["reason"].startswith("column city:") and "UTF-8" in reject["reason"]


def test_invalid_utf8_inside_a_struct_rejects_its_row() -> None:
    bad = pa.array([b"ok", b"\xff\xfe"], pa.binary()).view(pa.string())
    table = pa.table(
        {
            "external_id": ["u1", "u2"],
            "name": ["e", "e"],
            "time": ["2024-01-01T00:00:00Z"] * 2,
            "properties": pa.StructArray.from_arrays([bad], ["s"]),
        }
    )
    result, braze, deps = run_key("incoming/events/x.parquet", pq_bytes(table), [1000])
    assert result.status == "completed", result.report
    assert [e["properties"] for e in braze.stored] == [{"s": "ok"}]
    [reject] = deps.outputs.lines("rejects/")
    assert reject["index"] == 1 and reject["reason"].startswith("column properties:")


# -- decoded size --------------------------------------------------------------------------------


def dictionary_bomb(rows: int, length: int, store_schema: bool = True) -> bytes:
    """One string of ``length`` characters in every row, dictionary-encoded: a small file. Without
    the Arrow schema stored (as Spark writes), pyarrow reads the column as plain strings."""
    bio = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["x" * length]))
    table = pa.table({"external_id": [f"u{i}" for i in range(rows)], "bio": bio})
    return pq_bytes(table, row_group_size=rows, store_schema=store_schema)


def read_all(data: bytes, start: Position | None = None, memory_mb: int | None = None) -> list[Any]:
    s3 = FakeS3()
    s3.objects[("b", "k")] = data
    return list(
        columnar.iter_parquet(
            S3Source(s3), ObjectRef("b", "k", "v", "e", len(data)), start or Position(0, 0), memory_mb
        )
    )


def test_a_dictionary_column_is_decoded_in_slices_within_the_byte_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    data = dictionary_bomb(3000, 20_000)  # 60 MB decoded from a file of a few KB
    assert len(data) < 200_000
    seen: list[int] = []
    real = columnar._ParquetPlan.rows

    def rows(self: Any, batch: Any) -> Any:
        seen.append(batch.num_rows)
        return real(self, batch)

    monkeypatch.setattr(columnar._ParquetPlan, "rows", rows)
    monkeypatch.setattr(columnar, "BATCH_BYTES", 1 << 20)
    elements = read_all(data, memory_mb=1769)
    assert len(elements) == 3000 and sum(seen) == 3000
    assert max(seen) * 20_000 <= 1 << 20  # no slice decodes more than the budget
    # positions are the row group and the row, whatever the slices
    assert [e.anchor for e in elements[:3]] == [Position(0, 0), Position(0, 1), Position(0, 2)]
    assert elements[-1].next == Position(1, 3000)
    resumed = read_all(data, Position(0, 2500), memory_mb=1769)
    assert [e.value for e in resumed] == [e.value for e in elements[2500:]]


def test_a_dictionary_encoded_text_column_read_as_plain_strings_is_read_few_rows_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = dictionary_bomb(3000, 20_000, store_schema=False)
    assert pq.ParquetFile(io.BytesIO(data)).schema_arrow.field("bio").type == pa.string()
    read: list[int] = []
    real = columnar._slices

    def slices(batch: Any, dictionaries: bool) -> Any:
        read.append(batch.num_rows)  # the batch as pyarrow decoded it, before any slicing
        return real(batch, dictionaries)

    monkeypatch.setattr(columnar, "_slices", slices)
    monkeypatch.setattr(columnar, "BATCH_BYTES", 1 << 20)
    elements = read_all(data, memory_mb=1769)
    assert len(elements) == 3000 and sum(read) == 3000
    assert max(read) * 20_000 <= 1 << 20
    assert [e.anchor for e in elements[-2:]] == [Position(0, 2998), Position(0, 2999)]


def test_a_row_decoding_larger_than_the_function_can_hold_stops_the_run_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    words = pa.DictionaryArray.from_arrays(pa.array([0] * 50, pa.int32()), pa.array(["x" * 100_000]))
    lists = pa.ListArray.from_arrays(pa.array([0, 50], pa.int32()), words)
    table = pa.table({"external_id": ["u1"], "tags": lists})  # 5 MB decoded, 100 KB in the file
    monkeypatch.setattr(columnar, "memory_limit", lambda memory_mb=None: 1 << 20)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
    result, braze, _ = run_key("incoming/attributes/x.parquet", pq_bytes(table), [1000])
    assert result.status == "stopped" and result.report["stop_reason"] == "unreadable_file"
    assert "row 0 of row group 0" in result.report["error"]["message"]
    assert "too large" in result.report["error"]["message"]
    assert braze.stored == []


# -- catalogs: one reading per file ----------------------------------------------------------------


def test_a_catalog_file_of_item_fields_never_reads_a_row_as_a_cdi_row() -> None:
    table = pa.table({"id": ["A", "B"], "name": [None, "bee"]})
    result, braze, deps = run_key("incoming/catalogs/shop/items.parquet", pq_bytes(table), [1000])
    assert result.status == "completed"
    assert [(e.method, item) for e, p in braze.sent for item in p["items"]] == [
        ("PUT", {"id": "A"}),
        ("PUT", {"id": "B", "name": "bee"}),
    ]
    assert deps.outputs.lines("rejects/") == []


@pytest.mark.parametrize(
    "cdi",
    [pa.array([True, True, False]), pa.array([None, '{"name": "bee"}', None])],
    ids=["deleted", "payload"],
)
def test_a_catalog_file_with_cdi_and_item_field_columns_is_refused_as_a_csv_header_is(cdi: pa.Array) -> None:
    table = pa.table({"id": ["A", "B", "C"], "name": [None, "bee", None], "deleted": cdi})
    if pa.types.is_string(cdi.type):
        table = table.rename_columns(["id", "name", "payload"])
    result, braze, _ = run_key("incoming/catalogs/shop/items.parquet", pq_bytes(table), [1000])
    assert result.status == "stopped"
    assert "column 'name'" in result.report["error"]["message"]
    assert braze.sent == []


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
def test_a_cdi_catalog_file_reads_every_row_as_a_cdi_row(fmt: str) -> None:
    rows = [
        {"id": "A", "payload": None, "deleted": True},
        {"id": "B", "payload": '{"name": "bee"}', "deleted": None},
        {"id": "C", "payload": None, "deleted": False},
    ]
    if fmt == "parquet":
        data = pq_bytes(pa.Table.from_pylist(rows))
    else:
        schema = {
            "type": "record",
            "name": "R",
            "fields": [
                {"name": "id", "type": "string"},
                {"name": "payload", "type": ["null", "string"]},
                {"name": "deleted", "type": ["null", "boolean"]},
            ],
        }
        buf = io.BytesIO()
        fastavro.writer(buf, fastavro.parse_schema(schema), rows)
        data = buf.getvalue()
    result, braze, deps = run_key(f"incoming/catalogs/shop/items.{fmt}", data, [1000])
    assert result.status == "completed"
    assert [(e.method, item) for e, p in braze.sent for item in p["items"]] == [
        ("DELETE", {"id": "A"}),
        ("PUT", {"id": "B", "name": "bee"}),
    ]
    assert [(r["index"], r["reason"]) for r in deps.outputs.lines("rejects/")] == [
        (2, "PAYLOAD: is empty; it must be a JSON object")
    ]


def test_an_avro_catalog_file_of_item_fields_keeps_a_field_called_like_nothing_special() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "id", "type": "string"}, {"name": "name", "type": ["null", "string"]}],
    }
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), [{"id": "A", "name": None}])
    result, braze, _ = run_key("incoming/catalogs/shop/items.avro", buf.getvalue(), [1000])
    assert result.status == "completed"
    assert [(e.method, p) for e, p in braze.sent] == [("PUT", {"items": [{"id": "A"}]})]


# -- duplicate columns -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "key"),
    [
        (["external_id", "external_id", "tier"], "incoming/attributes/x.parquet"),
        (["external_id", "EXTERNAL_ID", "tier"], "incoming/attributes/x.parquet"),
        (["external_id", "external_id", "tier"], "incoming/user-deletes/x.parquet"),
        (["id", "id", "tier"], "incoming/catalogs/shop/x.parquet"),
    ],
)
def test_a_parquet_column_twice_stops_the_run_before_anything_is_sent(names: list[str], key: str) -> None:
    table = pa.Table.from_arrays([pa.array(["u1"]), pa.array(["u2"]), pa.array(["gold"])], names=names)
    result, braze, _ = run_key(key, pq_bytes(table), [1000], allow_user_deletes=True)
    assert result.status == "stopped"
    assert f"column {names[1]!r} appears twice" in result.report["error"]["message"]
    assert braze.sent == [] and braze.deleted == []


@pytest.mark.parametrize("second", ["external_id", "External_Id"])
def test_an_avro_field_twice_stops_the_run_before_anything_is_sent(second: str) -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "external_id", "type": "string"}, {"name": second, "type": "string"}],
    }
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), [{"external_id": "u1", second: "u2"}])
    result, braze, _ = run_key("incoming/attributes/x.avro", buf.getvalue(), [1000])
    assert result.status == "stopped"
    assert f"column {second!r} appears twice" in result.report["error"]["message"]
    assert braze.sent == []


@pytest.mark.parametrize("logical", ["timestamp-nanos", "local-timestamp-nanos"])
def test_avro_nanosecond_timestamps_are_iso_times_cut_to_microseconds_not_bare_integers(logical: str) -> None:
    nanos = {"type": "long", "logicalType": logical}
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "external_id", "type": "string"},
            {"name": "last_seen", "type": nanos},
            {"name": "p", "type": {"type": "record", "name": "P", "fields": [{"name": "at", "type": ["null", nanos]}]}},
        ],
    }
    buf = io.BytesIO()
    fastavro.writer(
        buf, fastavro.parse_schema(schema),
        [{"external_id": "u1", "last_seen": 1_700_000_000_123_456_789, "p": {"at": 1_700_000_000_123_456_789}}],
    )  # fmt: skip
    result, braze, _ = run_key("incoming/attributes/x.avro", buf.getvalue(), [1000])
    assert result.status == "completed", result.report
    ((_, body),) = braze.sent
    (sent,) = body["attributes"]
    assert sent["last_seen"] == sent["p"]["at"] == "2023-11-14T22:13:20.123456Z"


def test_a_later_row_group_of_larger_dictionary_text_is_measured_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first row group of short strings says nothing of a later one of long ones: each is measured."""
    small = pa.table({"external_id": [f"s{i}" for i in range(100)], "bio": ["x"] * 100})
    big = pa.table({"external_id": [f"u{i}" for i in range(3000)], "bio": ["y" * 20_000] * 3000})
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, small.schema, store_schema=False) as writer:
        writer.write_table(small)
        writer.write_table(big)
    read: list[int] = []
    real = columnar._slices

    def slices(batch: Any, dictionaries: bool) -> Any:
        read.append(batch.num_rows)  # the batch as pyarrow decoded it, before any slicing
        return real(batch, dictionaries)

    monkeypatch.setattr(columnar, "_slices", slices)
    monkeypatch.setattr(columnar, "BATCH_BYTES", 1 << 20)
    elements = read_all(buf.getvalue(), memory_mb=1769)
    assert len(elements) == 3100 and sum(read) == 3100
    assert max(read[1:]) * 20_000 <= 1 << 20  # the second row group's batches stay within the budget


def test_delta_encoded_text_that_decodes_far_past_its_size_is_measured_first(monkeypatch: pytest.MonkeyPatch) -> None:
    table = pa.table({"external_id": [f"u{i}" for i in range(3000)], "bio": ["y" * 20_000] * 3000})
    buf = io.BytesIO()
    pq.write_table(table, buf, use_dictionary=False, column_encoding={"bio": "DELTA_BYTE_ARRAY"}, store_schema=False)
    assert len(buf.getvalue()) < 200_000  # 60 MB of text in a small file
    read: list[int] = []
    real = columnar._slices

    def slices(batch: Any, dictionaries: bool) -> Any:
        read.append(batch.num_rows)
        return real(batch, dictionaries)

    monkeypatch.setattr(columnar, "_slices", slices)
    monkeypatch.setattr(columnar, "BATCH_BYTES", 1 << 20)
    elements = read_all(buf.getvalue(), memory_mb=1769)
    assert len(elements) == 3000 and sum(read) == 3000
    assert max(read) * 20_000 <= 1 << 20
