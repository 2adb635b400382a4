from __future__ import annotations

import json
from collections.abc import Iterator

import orjson
import pytest
from braze_importer import reader
from braze_importer.reader import Format, JsonSyntaxError, Position, iter_elements

TRICKY = [
    {"external_id": "a", "name": "x", "note": 'braces } { brackets ] [ quote " backslash \\ comma ,'},
    {"external_id": "ü-ñ-東京-🎉", "name": "emoji 🎉 and 東京", "properties": {"s": "é" * 7}},
    {"external_id": "c", "deep": {"a": [{"b": {"c": [{"d": {"e": {"f": {"g": [1, 2, {"h": "]}"}]}}}}]}}]}},
    {"external_id": "d", "escaped": '\\"]},{\\'},
    [1, 2, 3],
    "a string",
    42,
    None,
]


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def values(data: bytes, fmt: Format, size: int, start: Position = reader.START) -> list[object]:
    return [e.value for e in iter_elements(chunked(data, size), fmt, start)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 1 << 20])
@pytest.mark.parametrize("pretty", [False, True])
def test_array_round_trips_across_every_read_boundary(size: int, pretty: bool) -> None:
    data = json.dumps(TRICKY, indent=2 if pretty else None, ensure_ascii=False).encode()
    assert values(data, Format.ARRAY, size) == TRICKY


@pytest.mark.parametrize("size", [1, 3, 7, 4096])
def test_json_lines_round_trip_and_offsets_point_at_each_line(size: int) -> None:
    lines = [orjson.dumps(o) for o in TRICKY]
    data = b"\n".join(lines) + b"\n"
    elements = list(iter_elements(chunked(data, size), Format.LINES))
    assert [e.value for e in elements] == TRICKY
    for element, line in zip(elements, lines, strict=True):
        assert data[element.offset : element.offset + len(line)] == line


def test_offsets_let_an_array_resume_at_every_element_even_mid_line() -> None:
    data = orjson.dumps(TRICKY)  # minified: one line
    elements = list(iter_elements([data], Format.ARRAY))
    for element in elements:
        resumed = values(data[element.offset :], Format.ARRAY, 5, Position(element.offset, element.index))
        assert resumed == TRICKY[element.index :]
        assert data[element.anchor.offset :].startswith(orjson.dumps(TRICKY[element.anchor.index])[:1])


def test_next_position_reaches_the_following_element() -> None:
    data = b'[ {"a": 1} ,\n {"b": 2} ]'
    first, second = iter_elements([data], Format.ARRAY)
    assert values(data[first.next.offset :], Format.ARRAY, 4, first.next) == [{"b": 2}]
    assert second.index == 1


def big_tricky(n: int) -> list[object]:
    """Large enough for block parsing, with '},' inside strings and nested arrays of objects."""
    out: list[object] = []
    for i in range(n):
        out.append({"external_id": f"u{i}", "note": "x},{y}, ]},", "items": [{"a": i}, {"b": [{"c": "},"}]}]})
        if i % 97 == 0:
            out.append([i, {"z": "}"}])  # not an object
    return out


@pytest.mark.parametrize("pretty", [False, True])
@pytest.mark.parametrize("size", [4096, 300_000, 1 << 20])
def test_block_parsing_agrees_with_exact_framing(pretty: bool, size: int) -> None:
    objs = big_tricky(6000)
    data = orjson.dumps(objs, option=orjson.OPT_INDENT_2 if pretty else 0)
    fast = list(iter_elements(chunked(data, size), Format.ARRAY))
    exact = list(reader._iter_array(chunked(data, size), reader.START, blocks=False))
    assert [e.value for e in fast] == objs
    assert [e.offset for e in fast] == [e.offset for e in exact]


@pytest.mark.parametrize("pretty", [False, True])
def test_realistic_arrays_are_parsed_in_blocks(pretty: bool) -> None:
    from sandbox import sample_data

    objs = list(sample_data.objects(5000))
    data = orjson.dumps(objs, option=orjson.OPT_INDENT_2 if pretty else 0)
    elements = list(iter_elements(chunked(data, 1 << 20), Format.ARRAY))
    assert [e.value for e in elements] == objs
    assert sum(e.block is not None for e in elements) > 0.9 * len(objs)


def test_every_anchor_resumes_to_its_element() -> None:
    objs = big_tricky(3000)
    data = orjson.dumps(objs)
    elements = list(iter_elements(chunked(data, 200_000), Format.ARRAY))
    for element in elements[::37] + elements[-3:]:
        anchor = element.anchor
        resumed = values(data[anchor.offset :], Format.ARRAY, 65536, anchor)
        assert resumed == objs[anchor.index :]
        after = element.next
        assert values(data[after.offset :], Format.ARRAY, 65536, after) == objs[after.index :]


def test_empty_array_and_whitespace() -> None:
    assert values(b"  [ \n ]  \n", Format.ARRAY, 2) == []


def test_blank_lines_are_not_elements_and_bad_lines_are_rejects_not_the_end() -> None:
    data = b'{"a":1}\n\n   \n{oops\n{"b":2}'
    elements = list(iter_elements([data], Format.LINES))
    assert [e.index for e in elements] == [0, 1, 2]
    assert elements[1].error and "not valid JSON" in elements[1].error
    assert elements[1].offset == data.index(b"{oops")
    assert elements[2].value == {"b": 2}


@pytest.mark.parametrize(
    ("data", "offset", "message"),
    [
        (b'[{"a":1}, {"b":', 15, "end of file"),  # truncated: reported where the file ends
        (b'{"a": 1}', 0, "top level must be an array"),
        (b"", 0, "empty"),
        (b"[1,,2]", 3, "expected a value"),
        (b'[{"a":1}] trailing', 10, "after the closing bracket"),
    ],
)
def test_invalid_files_stop_with_the_position(data: bytes, offset: int, message: str) -> None:
    with pytest.raises(JsonSyntaxError) as raised:
        list(iter_elements(chunked(data, 3), Format.ARRAY))
    assert message in raised.value.message
    assert raised.value.offset == offset


def test_huge_nested_properties_are_one_element() -> None:
    big = {"external_id": "x", "properties": {f"k{i}": {"nested": ["v" * 50, {"n": i}]} for i in range(20_000)}}
    data = orjson.dumps([big, {"external_id": "y"}])
    assert values(data, Format.ARRAY, 65536) == [big, {"external_id": "y"}]


def test_an_element_too_large_to_send_is_skipped_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "MAX_ELEMENT_BYTES", 100)
    data = orjson.dumps([{"a": 1}, {"b": "x" * 500, "c": ["]", "}"]}, {"d": 2}])
    elements = list(iter_elements(chunked(data, 16), Format.ARRAY))
    assert [e.value for e in elements] == [{"a": 1}, None, {"d": 2}]
    assert elements[1].error and "larger than" in elements[1].error


def test_deeper_than_the_fast_path_still_frames_correctly() -> None:
    deep: object = {"leaf": "]}"}
    for _ in range(40):
        deep = {"n": [deep]}
    assert values(orjson.dumps([deep, 1]), Format.ARRAY, 7) == [deep, 1]


# -- elements that frame but do not decode, big integers, whitespace ------------------------------

UNDECODABLE = [b"1e400", b'{"s": "\xff\xfe"}', b'{"s": "\\ud800"}', b"[" * 1100 + b"]" * 1100, b'{"a": tru}']


@pytest.mark.parametrize("bad", UNDECODABLE)
@pytest.mark.parametrize("size", [3, 4096, 1 << 20])
def test_an_element_that_frames_but_does_not_decode_is_one_reject_and_the_array_goes_on(bad: bytes, size: int) -> None:
    good = [orjson.dumps({"external_id": f"u{i}"}) for i in range(1000)]
    data = b"[" + b",".join([*good[:10], bad, *good[10:]]) + b"]"
    elements = list(iter_elements(chunked(data, size), Format.ARRAY))
    assert len(elements) == 1001
    assert elements[10].error is not None and "not valid JSON" in elements[10].error
    assert elements[10].offset == data.index(bad)
    assert [e.value for e in elements if e.error is None] == [orjson.loads(g) for g in good]


@pytest.mark.parametrize("bad", UNDECODABLE)
def test_the_same_elements_in_json_lines_are_one_reject_each(bad: bytes) -> None:
    data = b'{"external_id": "a"}\n' + bad + b'\n{"external_id": "b"}\n'
    elements = list(iter_elements([data], Format.LINES))
    assert [e.error is not None for e in elements] == [False, True, False]


@pytest.mark.parametrize("fmt", [Format.ARRAY, Format.LINES])
@pytest.mark.parametrize("size", [5, 1 << 20])
def test_integers_beyond_64_bits_keep_every_digit(fmt: Format, size: int) -> None:
    text = b'{"external_id": "u", "big": 123456789012345678901234567890, "neg": -98765432109876543210987,'
    text += b' "u64": 18446744073709551615, "f": 1.5, "s": "12345678901234567890123"}'
    data = b"[" + text + b"]" if fmt is Format.ARRAY else text + b"\n"
    (element,) = iter_elements(chunked(data, size), fmt)
    sent = orjson.dumps(element.value)
    assert b'"big":123456789012345678901234567890' in sent
    assert b'"neg":-98765432109876543210987' in sent
    assert b'"u64":18446744073709551615' in sent
    assert json.loads(sent) == json.loads(text)


@pytest.mark.parametrize(
    "number",
    [b"18446744073709551616", b"-9223372036854775809", b"100000000000000000000000", b"-18446744073709551616"],
)
@pytest.mark.parametrize("fmt", [Format.ARRAY, Format.LINES])
def test_an_integer_just_beyond_64_bits_keeps_its_digits_among_long_digit_strings(fmt: Format, number: bytes) -> None:
    rows = [b'{"external_id": "u%d", "phone": "1234567890123456789", "f": 2.5e19, "g": -1e19}' % i for i in range(5000)]
    rows[2500] = b'{"external_id": "big", "phone": "1234567890123456789", "n": [%s]}' % number
    data = b"[" + b",".join(rows) + b"]" if fmt is Format.ARRAY else b"\n".join(rows) + b"\n"
    for size in (7, 1 << 20):
        elements = list(iter_elements(chunked(data, size), fmt))
        assert b'"n":[' + number + b"]" in orjson.dumps(elements[2500].value)
        assert [json.loads(orjson.dumps(e.value)) for e in elements] == [json.loads(row) for row in rows]


@pytest.mark.parametrize("fmt", [Format.ARRAY, Format.LINES])
def test_long_digit_runs_that_are_no_integer_beyond_64_bits_keep_the_fast_decoder(
    fmt: Format, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 19-digit phone number in a string, a 19-digit integer within 64 bits, and floats whose text
    # has 19 digits: orjson decodes each exactly, so nothing needs decoding a second time.
    rows = [
        b'{"external_id": "u%d", "phone": "+12345678901234567890", "id": 1234567890123456789,'
        b' "neg": -9223372036854775808, "f": 0.12345678901234567890, "e": 1234567890123456789e-3}' % i
        for i in range(5000)
    ]
    data = b"[" + b",".join(rows) + b"]" if fmt is Format.ARRAY else b"\n".join(rows) + b"\n"

    def slow(*args: object, **kwargs: object) -> object:
        raise AssertionError("decoded a second time to keep integers exact")

    monkeypatch.setattr(reader.json, "loads", slow)
    for size in (7, 1 << 20):
        elements = list(iter_elements(chunked(data, size), fmt))
        assert [e.value for e in elements] == [orjson.loads(row) for row in rows]
        assert [e.error for e in elements] == [None] * len(rows)


def test_an_integer_beyond_64_bits_keeps_its_digits_deeper_than_orjson_writes() -> None:
    deep = (
        b'{"external_id": "d", "a": ' + b"[" * 300 + b'18446744073709551616, "1234567890123456789"' + b"]" * 300 + b"}"
    )
    (element,) = iter_elements([deep + b"\n"], Format.LINES)
    value = element.value["a"]
    for _ in range(299):
        (value,) = value
    assert isinstance(value[0], orjson.Fragment) and value[1] == "1234567890123456789"
    shallow = deep.replace(b"18446744073709551616", b"1")
    (element,) = iter_elements([shallow + b"\n"], Format.LINES)
    assert element.value == json.loads(shallow)


def test_whitespace_before_the_array_is_read_in_constant_memory() -> None:
    import tracemalloc

    def stream() -> Iterator[bytes]:
        for _ in range(48):
            yield b" " * (1 << 20)
        yield b'[{"external_id": "a"}]'

    tracemalloc.start()
    try:
        elements = list(iter_elements(stream(), Format.ARRAY))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [e.value for e in elements] == [{"external_id": "a"}]
    assert elements[0].offset == (48 << 20) + 1
    assert peak < 8 << 20


@pytest.mark.parametrize("fmt", [Format.ARRAY, Format.LINES])
def test_whitespace_after_a_small_object_does_not_count_towards_its_size(fmt: Format) -> None:
    obj = b'{"external_id": "a", "n": 12}'
    pad = b" \t" * (3 << 20)  # 6 MB
    data = b"[" + obj + pad + b", " + obj + b"]" if fmt is Format.ARRAY else pad + obj + pad + b"\n" + obj + b"\n"
    elements = list(iter_elements(chunked(data, 1 << 20), fmt))
    assert [e.error for e in elements] == [None, None]
    assert [e.value for e in elements] == [orjson.loads(obj)] * 2


def test_whitespace_between_scalars_still_separates_them() -> None:
    data = b"[12" + b" " * (5 << 20) + b"34]"
    elements = list(iter_elements(chunked(data, 1 << 20), Format.ARRAY))
    assert elements[0].error is not None  # "12 34" is not one number


def test_a_whitespace_only_line_is_blank_however_long() -> None:
    data = b'{"external_id": "a"}\n' + b" " * (6 << 20) + b'\n{"external_id": "b"}\n'
    elements = list(iter_elements(chunked(data, 1 << 20), Format.LINES))
    assert [e.value for e in elements] == [{"external_id": "a"}, {"external_id": "b"}]


@pytest.mark.parametrize("size", [4096, 70_000, 1 << 20])
def test_json_lines_decoded_in_blocks_keep_exact_offsets_rejects_and_blank_lines(size: int) -> None:
    lines = [orjson.dumps({"external_id": f"u{i}", "n": i}) for i in range(20_000)]
    lines[5000] = b'{"broken": '
    lines[12000] = b""
    lines[15000] = b"   \r"
    lines[17000] = b'{"a": 1} {"b": 2}'
    data = b"\n".join(lines) + b"\n"
    elements = list(iter_elements(chunked(data, size), Format.LINES))
    kept = [line for line in lines if line.strip()]
    assert len(elements) == len(kept)
    for element, line in zip(elements, kept, strict=True):
        assert data[element.offset : element.offset + len(line)] == line
        assert (element.error is not None) == (line in (b'{"broken": ', b'{"a": 1} {"b": 2}'))


def test_runs_of_blank_lines_are_crossed_with_exact_offsets_of_what_follows() -> None:
    blank = b"\n" * 300_000 + b"  \r\n\t\n" * 1000
    data = b'{"external_id":"a"}\n' + blank + b'   {"external_id":"b"}\n' + blank + b"\n"
    pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    elements = list(iter_elements(iter(pieces), Format.LINES))
    assert [e.value for e in elements] == [{"external_id": "a"}, {"external_id": "b"}]
    second = elements[1]
    line_start = 20 + len(blank)
    assert (second.index, second.offset) == (1, line_start)
    resumed = list(iter_elements(iter([data[line_start:]]), Format.LINES, Position(line_start, 1)))
    assert [(e.index, e.value) for e in resumed] == [(1, {"external_id": "b"})]


# -- byte-order marks ----------------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("pretty", [False, True])
@pytest.mark.parametrize("size", [1, 2, 5, 4096, 1 << 20])
def test_a_json_array_that_starts_with_a_bom_is_read_with_offsets_into_the_original_file(
    pretty: bool, size: int
) -> None:
    # What Windows tools, Excel and PowerShell write: a UTF-8 byte-order mark before the array.
    objs = [{"external_id": f"u{i}", "name": "e", "time": "2026-01-01T00:00:00Z"} for i in range(300)]
    data = BOM + orjson.dumps(objs, option=orjson.OPT_INDENT_2 if pretty else 0)
    elements = list(iter_elements(chunked(data, size), Format.ARRAY))
    assert [e.value for e in elements] == objs
    exact = list(reader._iter_array(chunked(data, size), reader.START, blocks=False))
    assert [e.offset for e in elements] == [e.offset for e in exact]
    for element in elements:
        assert data[element.offset :].startswith(b"{")
        assert data[element.offset :].split(b'"', 4)[3] == f"u{element.index}".encode()
    middle = elements[150]
    resumed = values(data[middle.offset :], Format.ARRAY, size, Position(middle.offset, middle.index))
    assert resumed == objs[150:]


@pytest.mark.parametrize("size", [1, 2, 4096])
def test_json_lines_that_start_with_a_bom_lose_no_line(size: int) -> None:
    lines = [orjson.dumps({"external_id": f"u{i}"}) for i in range(300)]
    data = BOM + b"\r\n".join(lines) + b"\r\n"
    elements = list(iter_elements(chunked(data, size), Format.LINES))
    assert [e.error for e in elements] == [None] * 300
    assert elements[0].offset == 3
    for element, line in zip(elements, lines, strict=True):
        assert data[element.offset : element.offset + len(line)] == line


def test_a_bom_alone_is_an_empty_file() -> None:
    assert list(iter_elements([BOM], Format.LINES)) == []
    with pytest.raises(JsonSyntaxError) as raised:
        list(iter_elements([BOM], Format.ARRAY))
    assert "empty" in raised.value.message and raised.value.offset == 3


def test_a_bom_inside_an_array_is_no_whitespace() -> None:
    (element,) = iter_elements([b"[" + BOM + b'{"a": 1}]'], Format.ARRAY)
    assert element.error is not None and element.offset == 1


def test_json_lines_files_joined_with_cat_keep_a_line_that_starts_with_a_bom() -> None:
    data = BOM + b'{"external_id": "a"}\n' + BOM + b'{"external_id": "b"}\n'
    elements = list(iter_elements([data], Format.LINES))
    assert [(e.value, e.error) for e in elements] == [({"external_id": "a"}, None), ({"external_id": "b"}, None)]


@pytest.mark.parametrize("fmt", [Format.ARRAY, Format.LINES])
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-32-be"])
def test_a_utf16_or_utf32_file_stops_at_once_with_a_clear_reason(fmt: Format, encoding: str) -> None:
    text = '[{"external_id": "a"}]' if fmt is Format.ARRAY else '{"external_id": "a"}\n'
    data = text.encode(encoding)
    if not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        data = ("\ufeff" + text).encode(encoding)
    with pytest.raises(JsonSyntaxError) as raised:
        list(iter_elements(chunked(data, 1), fmt))
    assert "UTF-8" in raised.value.message and raised.value.offset == 0


@pytest.mark.parametrize("fmt", [Format.ARRAY, Format.LINES])
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
@pytest.mark.parametrize("lead", ["", "\n", " \r\n"])
def test_a_utf16_or_utf32_file_without_a_bom_stops_at_once_with_the_same_reason(
    fmt: Format, encoding: str, lead: str
) -> None:
    # Valid UTF-8 JSON holds no NUL byte; UTF-16 and UTF-32 text of JSON has one in its first 4 bytes.
    text = lead + ('[{"external_id": "a"}]' if fmt is Format.ARRAY else '{"external_id": "a"}\n' * 3)
    with pytest.raises(JsonSyntaxError) as raised:
        list(iter_elements(chunked(text.encode(encoding), 1), fmt))
    assert "UTF-16 or UTF-32" in raised.value.message and raised.value.offset == 0


def test_a_nul_byte_after_the_first_four_bytes_is_one_reject_not_the_file() -> None:
    data = b'{"external_id": "a"}\n{"a": 1}\x00\n{"external_id": "b"}\n'
    elements = list(iter_elements([data], Format.LINES))
    assert [e.error is not None for e in elements] == [False, True, False]


@pytest.mark.parametrize("size", [4096, 1 << 20])
def test_lines_that_only_join_into_valid_json_are_rejects_not_objects(size: int) -> None:
    # A line holding two objects and two lines that are the halves of one object: as many values
    # as lines when joined with commas, but not one of them is a line's object.
    good = b'{"external_id": "g"}\n'
    bad = b'{"external_id":"a"},{"external_id":"b"}\n{"external_id":"c","x":[{"d":1}\n{"e":1}]}\n'
    data = good * 5000 + bad + good * 5000
    elements = list(iter_elements(chunked(data, size), Format.LINES))
    assert len(elements) == 10_003
    assert [e.index for e in elements if e.error is not None] == [5000, 5001, 5002]
    assert all(e.value == {"external_id": "g"} for e in elements if e.error is None)
    assert [e.offset for e in elements[5000:5003]] == [len(good) * 5000 + i for i in (0, 40, 72)]


@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 20])
@pytest.mark.parametrize("count", [3, 9000])
def test_crlf_lines_blank_lines_and_a_last_line_without_newline(size: int, count: int) -> None:
    objs = [{"external_id": f"u{i}", "s": "a\r\n b"} for i in range(count)]
    rows = [orjson.dumps(o) for o in objs]
    pieces = []
    for i, row in enumerate(rows):
        pieces.append(row)
        pieces.append(b"\r\n" + (b"\r\n \t\r\n" if i % 1000 == 1 else b""))
    data = b"".join(pieces[:-1])  # the last line has no newline
    elements = list(iter_elements(chunked(data, size), Format.LINES))
    assert [e.value for e in elements] == objs and [e.index for e in elements] == list(range(count))
    for element, row in zip(elements, rows, strict=True):
        assert data[element.offset : element.offset + len(row)] == row
    assert elements[-1].next == Position(len(data), count)
    for element in elements[:: max(1, count // 7)]:
        after = element.next  # resuming after each element reads exactly the rest
        assert values(data[after.offset :], Format.LINES, size, after) == objs[after.index :]


@pytest.mark.parametrize("bom", [b"", BOM])
@pytest.mark.parametrize("size", [1, 4096, 1 << 20])
def test_a_json_array_named_as_json_lines_stops_at_once_instead_of_a_reject_per_line(bom: bytes, size: int) -> None:
    # What PowerShell's ConvertTo-Json writes, saved as .jsonl: every line would be a reject.
    data = bom + b"\n" + orjson.dumps([{"external_id": f"u{i}"} for i in range(5000)], option=orjson.OPT_INDENT_2)
    with pytest.raises(JsonSyntaxError) as raised:
        list(iter_elements(chunked(data, size), Format.LINES))
    assert "name the file .json" in raised.value.message and raised.value.offset == len(bom) + 1


@pytest.mark.parametrize("lead", [b"", BOM, b"\r\n \n", BOM + b" \t\n"])
@pytest.mark.parametrize("size", [1, 4096, 1 << 20])
@pytest.mark.parametrize("count", [1, 300, 5000, 250_000])  # 250k objects: one line over 4 MB
def test_a_json_array_on_one_line_named_as_json_lines_stops_at_once(lead: bytes, size: int, count: int) -> None:
    # What json.dump(list, f) writes, saved as .jsonl: one valid line that is no object.
    if count == 250_000 and size == 1:
        size = 4096  # the same path, without a million chunks
    array = orjson.dumps([{"external_id": f"u{i}"} for i in range(count)])
    assert (len(array) > reader.MAX_ELEMENT_BYTES) is (count == 250_000)
    for data in (lead + array, lead + array + b"\n", lead + array + b"\n" + b'{"external_id": "x"}\n' * 5000):
        with pytest.raises(JsonSyntaxError) as raised:
            list(iter_elements(chunked(data, size), Format.LINES))
        assert "name the file .json" in raised.value.message and raised.value.offset == len(lead)


def test_only_the_first_line_of_a_file_can_be_taken_for_an_array() -> None:
    data = b'{"external_id": "a"}\n[1, 2]\n[\n{"external_id": "b"}\n'
    elements = list(iter_elements([data], Format.LINES))
    assert [(e.value, e.error is not None) for e in elements] == [
        ({"external_id": "a"}, False),
        ([1, 2], False),
        (None, True),
        ({"external_id": "b"}, False),
    ]
    resumed = list(iter_elements([b"[\n{}\n"], Format.LINES, Position(10, 4)))  # a continuation: a reject
    assert [e.error is not None for e in resumed] == [True, False]
