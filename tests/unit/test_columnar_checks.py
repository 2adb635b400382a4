"""What a Parquet or Avro reader vouches for (times it wrote itself, no PAYLOAD column) and what it
does not: every check an object gets stays, only the re-matching of the reader's own times goes."""

from __future__ import annotations

import datetime as dt
import io
import random
import zoneinfo
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from braze_importer import columnar
from braze_importer.objects import Invalid, Kind, check
from braze_importer.ports import ObjectRef
from braze_importer.reader import START
from braze_importer.rows import shaped

from tests.fakes import FakeBraze, FakeS3, make_deps
from tests.unit.test_columnar import avro_bytes, parquet_bytes, run_key

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
NOT_ISO = "time: is not an ISO 8601 datetime (yyyy-MM-ddTHH:mm:ss with an optional offset)"


def read(key: str, data: bytes) -> list[Any]:
    s3 = FakeS3()
    s3.objects[("b", key)] = data
    source = make_deps(FakeBraze(), s3).source
    read = columnar.iter_parquet if key.endswith(".parquet") else columnar.iter_avro
    return list(read(source, ObjectRef("b", key, "v", None), START))


def reasons(deps: Any) -> list[tuple[int, str]]:
    return [(r["index"], r["reason"]) for r in deps.outputs.lines("rejects/")]


# -- Parquet ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "reason"),
    [
        (253402300800, NOT_ISO),  # 10000-01-01: five digits of year
        (-62135596800 - 86400, "time: is not a real date and time"),  # 0000-12-31: no year 0
    ],
)
def test_a_parquet_timestamp_outside_years_1_to_9999_is_still_rejected(seconds: int, reason: str) -> None:
    table = pa.table(
        {
            "external_id": ["u0", "u1", "u2"],
            "name": ["e", "e", "e"],
            "time": pa.array([int(T0.timestamp()), seconds, int(T0.timestamp())], pa.timestamp("s")),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    result, braze, deps = run_key("incoming/events/t.parquet", buf.getvalue(), [1000])
    assert result.status == "completed"
    assert reasons(deps) == [(1, reason)]
    assert [o["external_id"] for o in braze.stored] == ["u0", "u2"]
    assert braze.stored[0]["time"] == "2026-03-01T12:00:00.000Z"  # Parquet keeps seconds as ms


def test_parquet_rows_say_which_times_their_reader_wrote_and_whether_they_may_be_cdi_rows() -> None:
    rows = [{"external_id": "u1", "name": "e", "time": T0, "seen": "2026-03-01", "when": T0}]
    (row,) = read("k.parquet", parquet_bytes(rows, 10))
    assert isinstance(row, columnar.TypedRow)
    assert row.made_times == {"time", "when"}  # timestamp columns, not the string one
    assert row.may_be_cdi is False
    (cdi,) = read("k.parquet", parquet_bytes([{"external_id": "u1", "PAYLOAD": '{"a": 1}'}], 10))
    assert cdi.may_be_cdi is True and cdi.made_times == frozenset()


def test_a_string_column_named_time_is_checked_as_always() -> None:
    rows = [
        {"external_id": "u0", "name": "e", "time": "2026-03-01T12:00:00Z"},
        {"external_id": "u1", "name": "e", "time": "2026-W01-1"},
        {"external_id": "u2", "name": "e", "time": "yesterday"},
    ]
    result, braze, deps = run_key("incoming/events/s.parquet", parquet_bytes(rows, 10), [1000])
    assert result.status == "completed"
    assert reasons(deps) == [(1, NOT_ISO), (2, NOT_ISO)]
    assert braze.stored == rows[:1]


def test_a_null_parquet_timestamp_still_leaves_an_event_without_its_time() -> None:
    rows = [{"external_id": "u0", "name": "e", "time": T0}, {"external_id": "u1", "name": "e", "time": None}]
    _, braze, deps = run_key("incoming/events/n.parquet", parquet_bytes(rows, 10), [1000])
    assert reasons(deps) == [(1, "time: is required")]
    assert len(braze.stored) == 1


# -- Avro ---------------------------------------------------------------------------------------


def avro_schema(time_type: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "E",
        "fields": [
            {"name": "external_id", "type": "string"},
            {"name": "name", "type": "string"},
            {"name": "time", "type": time_type},
        ],
    }


MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
LOCAL = {"type": "long", "logicalType": "local-timestamp-micros"}


@pytest.mark.parametrize(
    ("time_type", "made"),
    [
        (MILLIS, {"time"}),
        (["null", MILLIS], {"time"}),
        (LOCAL, {"time"}),
        ("string", set()),
        (["string", MILLIS], set()),
    ],
)
def test_avro_rows_vouch_only_for_fields_that_are_timestamps_in_every_branch(time_type: Any, made: set[str]) -> None:
    value = T0 if made else "2026-03-01T12:00:00Z"
    if time_type is LOCAL:
        value = T0.replace(tzinfo=None)
    (row,) = read("k.avro", avro_bytes([{"external_id": "u", "name": "e", "time": value}], avro_schema(time_type)))
    assert isinstance(row, columnar.TypedRow)
    assert row.made_times == made and row.may_be_cdi is False
    assert row.value["time"] == ("2026-03-01T12:00:00.000000Z" if made else value)


def test_an_avro_string_in_a_union_with_a_timestamp_is_checked_as_always() -> None:
    rows = [
        {"external_id": "u0", "name": "e", "time": T0},
        {"external_id": "u1", "name": "e", "time": "not a time"},
        {"external_id": "u2", "name": "e", "time": "2026-03-01 12:00"},
    ]
    data = avro_bytes(rows, avro_schema(["string", MILLIS]))
    result, braze, deps = run_key("incoming/events/u.avro", data, [1000])
    assert result.status == "completed"
    assert reasons(deps) == [(1, NOT_ISO), (2, NOT_ISO)]
    assert braze.stored == [{"external_id": "u0", "name": "e", "time": "2026-03-01T12:00:00.000000Z"}]


def test_typed_rows_of_a_file_with_payload_are_still_merged_as_cdi_rows() -> None:
    schema = {
        "type": "record",
        "name": "C",
        "fields": [{"name": "external_id", "type": "string"}, {"name": "payload", "type": "string"}],
    }
    rows = [
        {"external_id": "u0", "payload": '{"name": "e", "time": "2026-03-01T12:00:00Z"}'},
        {"external_id": "u1", "payload": '{"name": "e", "time": "soon"}'},
    ]
    _, braze, deps = run_key("incoming/events/c.avro", avro_bytes(rows, schema), [1000])
    assert reasons(deps) == [(1, NOT_ISO)]
    assert braze.stored == [{"external_id": "u0", "name": "e", "time": "2026-03-01T12:00:00Z"}]


# -- the checks themselves ----------------------------------------------------------------------


def test_a_vouched_time_field_is_still_required_and_must_still_be_a_string() -> None:
    made = frozenset({"time"})
    with pytest.raises(Invalid, match="time: is required"):
        check({"external_id": "u", "name": "e"}, Kind.EVENT, made)
    with pytest.raises(Invalid, match="time: must be an ISO 8601 string"):
        check({"external_id": "u", "name": "e", "time": 5}, Kind.EVENT, made)
    with pytest.raises(Invalid, match="name: must be a non-empty string"):
        check({"external_id": "u", "name": "", "time": "x"}, Kind.EVENT, made)
    with pytest.raises(Invalid, match="currency"):
        check({"external_id": "u", "product_id": "p", "currency": "usd", "price": 1, "time": "x"}, Kind.PURCHASE, made)
    with pytest.raises(Invalid, match="dob"):
        check({"external_id": "u", "dob": "1990-13-01", "time": "x"}, Kind.ATTRIBUTES, made)
    # only the fields named are not matched again
    with pytest.raises(Invalid, match="date_of_first_session"):
        check({"external_id": "u", "date_of_first_session": "soon"}, Kind.ATTRIBUTES, made)
    check({"external_id": "u", "date_of_first_session": "x"}, Kind.ATTRIBUTES, {"date_of_first_session"})
    check({"external_id": "u", "name": "e", "time": "2026-03-01T12:00:00.000Z"}, Kind.EVENT, made)


def test_shaped_checks_plain_elements_in_full() -> None:
    rows = read("k.parquet", parquet_bytes([{"external_id": "u", "name": "e", "time": T0}], 10))
    plain = columnar.Element(0, START, START, 1, {"external_id": "u", "name": "e", "time": "soon"})
    got = list(shaped([*rows, plain], Kind.EVENT))
    assert got[0].error is None and got[0].kind == Kind.EVENT
    assert got[1].error == NOT_ISO and got[1].error_source == "validation"


def _isoformat_utc(value: dt.datetime) -> str:
    """The form written before orjson did it: isoformat with microseconds, in UTC, with a Z."""
    if value.tzinfo is None:
        return value.isoformat(timespec="microseconds") + "Z"
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def test_datetimes_are_written_exactly_as_isoformat_in_utc_writes_them() -> None:
    zones = [
        None,
        dt.UTC,
        dt.timezone(dt.timedelta(0)),
        dt.timezone(dt.timedelta(hours=5, minutes=30)),
        dt.timezone(dt.timedelta(hours=-8)),
        zoneinfo.ZoneInfo("Europe/Paris"),
        zoneinfo.ZoneInfo("UTC"),
    ]
    r = random.Random(16)
    for _ in range(20_000):
        value = dt.datetime(
            r.choice([2, 1970, 2026, 9998, r.randint(2, 9998)]),
            r.randint(1, 12),
            r.randint(1, 28),
            r.randint(0, 23),
            r.randint(0, 59),
            r.randint(0, 59),
            r.choice([0, 1, 999_999, r.randint(0, 999_999)]),
            tzinfo=r.choice(zones),
        )
        assert columnar._iso_utc(value) == _isoformat_utc(value), value
