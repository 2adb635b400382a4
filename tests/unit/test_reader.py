from __future__ import annotations

import json

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
        (b'[{"a": tru}]', 1, "not valid JSON"),
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
