"""CSV in the importer: the typing table, type casts, the header, rejects with their positions,
and whole runs (continuation, gzip resume from a seek point, duplicate notifications)."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest
from braze_importer.csv_reader import CsvError, iter_rows
from braze_importer.csv_types import Schema, infer, parse_cast_spec
from braze_importer.engine import SendPolicy
from braze_importer.objects import Invalid
from braze_importer.ports import ObjectRef
from braze_importer.reader import BOM, START
from braze_importer.service import format_for, handle_start

from tests.fakes import FakeBraze, FakeS3, gz, make_deps, run_chain

BUCKET = "imports"


# -- typing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("null", None),
        ("NULL", None),
        ("Null", None),
        ("0", 0),
        ("42", 42),
        ("-42", -42),
        ("007", "007"),
        ("-007", "-007"),
        ("3.5", 3.5),
        ("-0.25", -0.25),
        ("0.5", 0.5),
        ("00.5", "00.5"),
        ("1.", "1."),
        (".5", ".5"),
        ("1e5", "1e5"),
        ("true", True),
        ("TRUE", True),
        ("False", False),
        ("['a', 'b']", ["a", "b"]),
        ("[1, 2]", [1, 2]),
        ("['x', 1.5, True]", ["x", 1.5, True]),
        ("[]", []),
        ("[a, b]", "[a, b]"),
        ("[[1], 2]", "[[1], 2]"),
        ("[1, 2", "[1, 2"),
        ("truth", "truth"),
        ("12345678901234567890123", "12345678901234567890123"),
        ("18446744073709551615", 18446744073709551615),
        ("9" * 400 + ".5", "9" * 400 + ".5"),
        (" 42", " 42"),
        ("hello, world", "hello, world"),
    ],
)
def test_inference_follows_brazes_csv_rules(cell: str, value: Any) -> None:
    assert infer(cell) == value
    assert type(infer(cell)) is type(value)


def test_empty_cells_are_left_out_and_a_row_with_only_its_identifier_is_skipped() -> None:
    schema = Schema.from_header(["a", "external_id", "b"])
    assert schema.row(["", "00123", "x"]) == {"external_id": "00123", "b": "x"}
    assert schema.row(["", "123", ""]) is None


@pytest.mark.parametrize(
    ("cast", "cell", "value"),
    [
        ("string", "007", "007"),
        ("string", "true", "true"),
        ("string", "null", "null"),
        ("string", "3.70", "3.70"),
        ("integer", "3.7", 3),
        ("integer", "-3.7", -3),
        ("integer", "007", 7),
        ("integer", "12", 12),
        ("integer", "null", None),
        ("float", "3", 3.0),
        ("float", "007", 7.0),
        ("float", "2.5", 2.5),
        ("boolean", "0", False),
        ("boolean", "1", True),
        ("boolean", "TRUE", True),
        ("boolean", "null", None),
    ],
)
def test_a_type_cast_overrides_inference(cast: str, cell: str, value: Any) -> None:
    schema = Schema.from_header(["external_id", "col"], {"col": cast})
    obj = schema.row(["u1", cell])
    assert obj is not None
    assert obj["col"] == value and type(obj["col"]) is type(value)


@pytest.mark.parametrize(("cast", "cell"), [("integer", "abc"), ("boolean", "2"), ("boolean", "yes"), ("float", "x")])
def test_a_cast_that_does_not_apply_is_a_reject_naming_the_column_not_the_value(cast: str, cell: str) -> None:
    schema = Schema.from_header(["external_id", "col"], {"col": cast})
    with pytest.raises(Invalid) as exc:
        schema.row(["u1", cell])
    assert exc.value.reason == f"col: cannot be cast to {cast}" and cell not in exc.value.reason


def test_cast_specs_parse_and_bad_ones_say_what_is_wrong() -> None:
    assert parse_cast_spec("zip=string, one_or_zero=boolean,level=INTEGER") == {
        "zip": "string",
        "one_or_zero": "boolean",
        "level": "integer",
    }
    assert parse_cast_spec("") == {}
    for bad, words in [("zip", "column=type"), ("zip=date", "must be one of"), ("a=string,a=float", "twice")]:
        with pytest.raises(ValueError, match=words):
            parse_cast_spec(bad)


# -- the identifier ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "cells", "obj"),
    [
        (["external_id", "n"], ["00123", "1"], {"external_id": "00123", "n": 1}),
        (["n", "braze_id"], ["1", "123"], {"braze_id": "123", "n": 1}),
        (["email", "n"], ["a@b.c", "1"], {"email": "a@b.c", "n": 1}),
        (["phone", "n"], ["15551234", "1"], {"phone": "15551234", "n": 1}),
        (
            ["user_alias_label", "n", "user_alias_name"],
            ["crm", "1", "007"],
            {"user_alias": {"alias_name": "007", "alias_label": "crm"}, "n": 1},
        ),
        # With an external_id, email and phone are attributes, still strings as written.
        (
            ["external_id", "email", "phone"],
            ["1", "a@b.c", "0612"],
            {"external_id": "1", "email": "a@b.c", "phone": "0612"},
        ),
    ],
)
def test_the_identifier_is_read_from_the_header_and_sent_as_written(
    header: list[str], cells: list[str], obj: dict[str, Any]
) -> None:
    assert Schema.from_header(header).row(cells) == obj


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (b"name,age\n", "no identifier column"),
        (b"external_id,braze_id\n", "keep one identifier"),
        (b"user_alias_name,age\n", "both user_alias_name and user_alias_label"),
        (b"external_id,age,age\n", "appears twice"),
        (b"external_id,,age\n", "has no name"),
        (b"", "empty"),
        (b"\r\n\n", "empty"),
        (b"\xff\xfeexternal_id\n", "UTF-16"),
    ],
)
def test_a_header_that_cannot_be_imported_stops_reading_at_once(header: bytes, words: str) -> None:
    with pytest.raises(CsvError, match=words):
        list(iter_rows([header + b"u1,2,3\n" if header.strip() else header], START))


# -- framing and rejects -------------------------------------------------------------------------


def test_rows_with_bad_bytes_fields_or_identifier_are_rejects_with_line_and_offset() -> None:
    data = (
        BOM + b"external_id,name\r\n"
        b'u1,"two\r\nlines"\r\n'  # line 2-3
        b"u2,\xff\xfe\r\n"  # line 4: not UTF-8
        b"u3,a,b\r\n"  # line 5: three fields
        b",x\r\n"  # line 6: no identifier
        b'u4,"unclosed\r\n'  # line 7 to the end: the quote never closes
    )
    read = list(iter_rows([data[i : i + 5] for i in range(0, len(data), 5)], START))
    assert [(e.index, e.offset, e.line, e.error) for e in read if e.error] == [
        (1, data.index(b"u2"), 4, "row is not valid UTF-8"),
        (2, data.index(b"u3"), 5, "row has 3 fields, the header has 2"),
        (3, data.index(b",x"), 6, "no identifier: external_id is empty"),
        (4, data.index(b"u4"), 7, read[4].error),
    ]
    assert "malformed quoting" in str(read[4].error)
    assert read[0].value == {"external_id": "u1", "name": "two\r\nlines"}


def test_a_row_longer_than_any_request_is_one_reject_and_reading_goes_on() -> None:
    big = b"x" * (5 << 20)
    data = b'external_id,a\nu1,"' + big + b'\n"\nu2,ok\nu3,' + big + b"\nu4,ok"
    read = list(iter_rows([data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)], START))
    assert [(e.index, e.error is not None) for e in read] == [(0, True), (1, False), (2, True), (3, False)]
    assert read[1].value == {"external_id": "u2", "a": "ok"} and read[1].offset == data.index(b"u2")
    assert read[3].value == {"external_id": "u4", "a": "ok"}
    assert (read[0].line, read[2].line) == (2, 5)


def test_csv_keys_are_imported() -> None:
    assert format_for("incoming/a.csv").value == "csv"  # type: ignore[union-attr]
    assert format_for("incoming/a.csv.gz").value == "csv"  # type: ignore[union-attr]


# -- whole runs ----------------------------------------------------------------------------------


def audience(n: int) -> tuple[bytes, list[dict[str, Any]]]:
    lines = [b"tier,external_id,score,note"]
    want = []
    for i in range(n):
        if i % 13 == 4:
            lines.append(b"gold,,1,x")  # a reject: no identifier
            continue
        if i % 11 == 3:
            lines.append(f",{i:05d},,".encode())  # skipped: nothing but the identifier
            continue
        lines.append(f'gold,{i:05d},{i},"said ""hi"",\nthen left"'.encode())
        want.append({"external_id": f"{i:05d}", "tier": "gold", "score": i, "note": 'said "hi",\nthen left'})
    return b"\r\n".join(lines) + b"\r\n", want


@pytest.mark.parametrize("key", ["incoming/a.csv", "incoming/a.csv.gz"])
@pytest.mark.parametrize("read_chunk", [7, 4096])
def test_a_csv_run_continued_many_times_sends_each_row_once_as_attributes(key: str, read_chunk: int) -> None:
    data, want = audience(700)
    s3 = FakeS3(chunk=read_chunk)
    s3.objects[(BUCKET, key)] = gz(data) if key.endswith(".gz") else data
    braze = FakeBraze()
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=1))
    statuses = run_chain(deps, ObjectRef(BUCKET, key, "v1", "etag"), 2)
    assert statuses[-1] == "completed" and len(statuses) > 2
    assert braze.stored == want
    assert all(set(r) == {"attributes"} for r in braze.requests)
    run = next(iter(deps.store.items.values()))
    assert run.counters["rejected"] == len([i for i in range(700) if i % 13 == 4])
    assert run.counters["skipped"] == len([i for i in range(700) if i % 11 == 3 and i % 13 != 4])
    rejects = deps.outputs.lines("rejects/")
    assert all(r["source"] == "csv" and r["reason"] == "no identifier: external_id is empty" for r in rejects)
    assert [r["line"] for r in rejects] == [data[: r["offset"]].count(b"\n") + 1 for r in rejects]
    assert all(data[r["offset"] :].startswith(b"gold,,1,x") for r in rejects)
    report = orjson.loads(deps.outputs.files[next(k for k in deps.outputs.files if k.startswith("reports/"))])
    assert report["source"]["format"] == "csv" and report["status"] == "completed"


def test_a_gzip_csv_run_resumes_from_a_seek_point_and_reads_its_header_from_the_start() -> None:
    from braze_importer.aws import S3Source

    from tests.fakes import MemorySeekPoints

    data, want = audience(20000)
    s3 = FakeS3(chunk=50_000)
    s3.objects[(BUCKET, "incoming/big.csv.gz")] = gzip.compress(data)
    braze = FakeBraze()
    seeks = MemorySeekPoints()
    deps = make_deps(
        braze, s3, SendPolicy(max_in_flight=1), source=S3Source(s3, seek_spacing=100_000), seek_points=seeks
    )
    statuses = run_chain(deps, ObjectRef(BUCKET, "incoming/big.csv.gz", "v1", None), 40)
    assert statuses[-1] == "completed" and len(statuses) > 3
    assert braze.stored == want
    assert seeks.saves >= 2
    assert any(r and not r.startswith("bytes=0-") for r in s3.ranges)  # continued from a seek point


def test_duplicate_notifications_of_a_csv_send_nothing_twice() -> None:
    data, want = audience(200)
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/a.csv")] = data
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    ref = ObjectRef(BUCKET, "incoming/a.csv", "v1", "etag")
    assert handle_start(ref, "a", deps, lambda: True).status == "completed"
    sent = len(braze.requests)
    assert handle_start(ref, "b", deps, lambda: True).status == "duplicate"
    assert len(braze.requests) == sent and braze.stored == want


def test_a_header_without_an_identifier_fails_the_run_with_a_clear_report_and_sends_nothing() -> None:
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/a.csv")] = b"name,age\nann,3\n"
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    result = handle_start(ObjectRef(BUCKET, "incoming/a.csv", "v1", "e"), "a", deps, lambda: True)
    assert result.status == "stopped" and braze.requests == []
    assert result.report is not None
    assert result.report["source"]["format"] == "csv"
    assert "no identifier column" in result.report["error"]["message"]
    assert "resume" not in result.report


def test_the_type_cast_setting_reaches_the_rows() -> None:
    s3 = FakeS3()
    s3.objects[(BUCKET, "incoming/a.csv")] = b"external_id,zip,flag\nu1,02134,1\n"
    braze = FakeBraze()
    deps = make_deps(braze, s3, csv_type_cast={"zip": "string", "flag": "boolean"})
    handle_start(ObjectRef(BUCKET, "incoming/a.csv", "v1", "e"), "a", deps, lambda: True)
    assert braze.stored == [{"external_id": "u1", "zip": "02134", "flag": True}]


@pytest.mark.parametrize(
    "spec", ["zip=string", "zip=string, level=INTEGER,one_or_zero=boolean", "a b=float", "zip", "zip=date", "=string"]
)
def test_the_stack_setting_and_the_function_accept_the_same_type_casts(spec: str) -> None:
    from stacks.config import ConfigError, ImportConfig

    try:
        parse_cast_spec(spec)
        accepted = True
    except ValueError:
        accepted = False
    if accepted:
        assert ImportConfig(csv_type_cast=spec).csv_type_cast == spec
    else:
        with pytest.raises(ConfigError, match="csvTypeCast"):
            ImportConfig(csv_type_cast=spec)


def test_a_bad_type_cast_setting_fails_the_function_on_cold_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from braze_importer.settings import Settings

    env = {
        "BRAZE_REST_ENDPOINT": "https://rest.iad-01.braze.com",
        "BRAZE_API_KEY_SECRET": "s",
        "RUNS_TABLE": "t",
        "IMPORT_BUCKET": "b",
        "AWS_LAMBDA_FUNCTION_NAME": "f",
    }
    assert Settings.model_validate({**env, "CSV_TYPE_CAST": "zip=string"}).csv_casts() == {"zip": "string"}
    with pytest.raises(ValueError, match="must be one of"):
        Settings.model_validate({**env, "CSV_TYPE_CAST": "zip=date"})
