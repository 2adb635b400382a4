"""CSV input a hostile or careless producer writes: each case is one reject (or one clear stop),
never a crashed run, a lost rest of the file, or a value changed on its way to Braze."""

from __future__ import annotations

import orjson
import pytest
from braze_importer.csv_reader import CsvError, iter_rows
from braze_importer.csv_types import HeaderError, Schema, infer
from braze_importer.reader import START


def rows(data: bytes, chunk: int = 1 << 20) -> list[tuple[int, object, str | None, int | None]]:
    return [
        (e.index, e.value, e.error, e.line)
        for e in iter_rows([data[i : i + chunk] for i in range(0, len(data), chunk)], START)
    ]


@pytest.mark.parametrize("cell", ["[99999999999999999999999]", "[1, -99999999999999999999999]", "[1e400]", "[-1e400]"])
def test_a_list_whose_numbers_braze_cannot_take_stays_the_string_as_written(cell: str) -> None:
    value = infer(cell)
    assert value == cell
    orjson.dumps(value)  # and it can be sent


def test_a_stray_quote_in_an_unquoted_field_rejects_its_own_line_only() -> None:
    body = b"".join(b"%d,180,c%d\n" % (i, i) for i in range(2, 3000))
    data = b"external_id,height,city\n1,5'11\",x\n" + body
    read = rows(data, chunk=4096)
    assert read[0][1] is None and "malformed quoting" in str(read[0][2]) and read[0][3] == 2
    assert len(read) == 2999 and all(r[2] is None for r in read[1:])
    assert read[-1][1] == {"external_id": "2999", "height": 180, "city": "c2999"}


def test_stray_quotes_two_lines_apart_are_two_rejects_of_one_line_each() -> None:
    data = b"external_id,height\nu1,5'11\"\nu2,6'0\"\nu3,180\n"
    read = rows(data)
    assert [(r[0], r[1], r[3]) for r in read] == [
        (0, None, 2),
        (1, None, 3),
        (2, {"external_id": "u3", "height": 180}, None),
    ]


def test_a_quoted_field_still_spans_lines_and_a_stray_quote_after_it_is_a_reject() -> None:
    data = b'external_id,note\nu1,"a\nb ""c"""\nu2,x"y\nu3,"z"\n'
    read = rows(data, chunk=3)
    assert read[0][1] == {"external_id": "u1", "note": 'a\nb "c"'}
    assert read[1][1] is None and read[1][3] == 4
    assert read[2][1] == {"external_id": "u3", "note": "z"}


def test_a_file_whose_line_breaks_are_cr_only_stops_with_a_clear_reason() -> None:
    with pytest.raises(CsvError, match="carriage return"):
        rows(b"external_id,a\r1,2\r2,3\r")


def test_a_user_alias_column_beside_the_identifier_is_refused_as_in_json() -> None:
    with pytest.raises(HeaderError, match="both external_id and user_alias"):
        Schema.from_header(["external_id", "user_alias", "a"])


def test_a_quoted_field_as_long_as_an_unquoted_one_is_accepted() -> None:
    long = b"x" * 140_000
    read = rows(b'external_id,a\n1,"' + long + b',y"\n2,' + long + b"\n")
    assert [r[2] for r in read] == [None, None]
    assert read[0][1] == {"external_id": "1", "a": long.decode() + ",y"}


@pytest.mark.parametrize(
    ("cell", "want"),
    [("9007199254740993.5", 9007199254740993), ("0000000000000000007", 7), ("-3.7", -3), ("-0.5", 0)],
)
def test_an_integer_cast_truncates_the_written_digits(cell: str, want: int) -> None:
    schema = Schema.from_header(["external_id", "n"], {"n": "integer"})
    assert schema.row(["u", cell]) == {"external_id": "u", "n": want}


def test_line_numbers_count_every_blank_line_before_the_header() -> None:
    data = b"\n" * 1_100_000 + b"external_id,a\nu1,1\nu2\n"
    read = rows(data, chunk=1 << 16)
    assert read[1][3] == 1_100_003


def test_a_stray_quote_in_a_row_longer_than_any_request_loses_nothing_after_it() -> None:
    big = b"a" * (5 << 20)
    data = b"external_id,note\nu1,5'11\" " + big + b"\nu2,hello\nu3,world\n"
    for chunk in (1 << 16, 1 << 20, 64 << 20):
        read = rows(data, chunk=chunk)
        assert [(r[0], r[1], r[3]) for r in read] == [
            (0, None, 2),
            (1, {"external_id": "u2", "note": "hello"}, None),
            (2, {"external_id": "u3", "note": "world"}, None),
        ], chunk
