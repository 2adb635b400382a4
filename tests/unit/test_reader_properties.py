"""The reader against hostile framing, by property: whatever the objects, whitespace, string
contents, read sizes, block sizes and the point a run continues from, every element is read exactly
once, with its index and its byte offset in the file, in JSON arrays and JSON Lines, plain and gzip.

Examples are derandomized (the same on every run, so CI cannot flake) and bounded so the suite
stays fast; ``READER_PROPERTY_EXAMPLES=5000`` explores further with fresh random examples.
"""

from __future__ import annotations

import json
import os
import random
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import orjson
import pytest
from braze_importer import gzip_index, reader
from braze_importer.aws import S3Source
from braze_importer.ports import ObjectRef, SeekPoint
from braze_importer.reader import BOM, Element, Format, JsonSyntaxError, Position, iter_elements
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import FakeS3

_EXPLORE = int(os.environ.get("READER_PROPERTY_EXAMPLES", "0"))
PROPERTY = settings(
    max_examples=_EXPLORE or 60,
    derandomize=not _EXPLORE,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# String contents that look like framing: separators, brackets, quotes, escapes, control
# characters (escaped when written), multi-byte UTF-8 (2, 3 and 4 bytes), a byte-order mark.
_HOSTILE = [*'},{[]":\\/ab \t\r\n\x00\x1f\x7f', "\u00e9", "\u6771", "\U0001f389", "\u2028", "\ufeff"]
texts = st.text(alphabet=st.sampled_from(_HOSTILE), max_size=12) | st.text(max_size=6)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 64) - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=14
)
objects = st.dictionaries(texts, values, max_size=5)
elements = st.lists(objects | objects | values, max_size=25)


@dataclass
class File:
    data: bytes
    values: list[Any]
    offsets: list[int]  # where each element starts: its first byte (arrays), its line (JSON Lines)
    bad: set[int] = field(default_factory=set)  # indexes of lines that are not one JSON value
    stops_at: int | None = None  # a first line that opens an array: taken for a misnamed array


def _whitespace(rnd: random.Random, *, newlines: bool) -> Callable[[], bytes]:
    choices = [b"", b"", b"", b" ", b"\t", b"\r", b"  \t "]
    if newlines:
        choices += [b"\n", b"\r\n", b" \n\t\r\n  "]
    return lambda: rnd.choice(choices)


def _dump(value: Any, ws: Callable[[], bytes], rnd: random.Random) -> bytes:
    if isinstance(value, dict):
        members = [ws() + _string(k, rnd) + ws() + b":" + ws() + _dump(v, ws, rnd) + ws() for k, v in value.items()]
        return b"{" + (b",".join(members) or ws()) + b"}"
    if isinstance(value, list):
        return b"[" + (b",".join(ws() + _dump(v, ws, rnd) + ws() for v in value) or ws()) + b"]"
    if isinstance(value, str):
        return _string(value, rnd)
    return orjson.dumps(value)


def _string(text: str, rnd: random.Random) -> bytes:
    # Raw UTF-8, or everything beyond ASCII as \u escapes (surrogate pairs for emoji).
    return orjson.dumps(text) if rnd.random() < 0.5 else json.dumps(text, ensure_ascii=True).encode()


def array_file(items: list[Any], seed: int, bom: bool) -> File:
    rnd = random.Random(seed)
    ws = _whitespace(rnd, newlines=True)
    out = bytearray(BOM if bom else b"")
    out += ws() + b"[" + ws()
    offsets = []
    for i, item in enumerate(items):
        if i:
            out += b"," + ws()
        offsets.append(len(out))
        out += _dump(item, ws, rnd) + ws()
    out += b"]" + ws()
    return File(bytes(out), items, offsets)


def lines_file(items: list[Any], seed: int, bom: bool, final_newline: bool, hostile: bool = False) -> File:
    """JSON Lines; ``hostile`` also writes lines that are no single value: two values on one line,
    and a value split over two lines (each half then a bad line), which only join into valid JSON."""
    rnd = random.Random(seed)
    inline = _whitespace(rnd, newlines=False)
    out = bytearray(BOM if bom else b"")
    lines: list[tuple[bytes, Any, bool]] = []  # text, value, whether it is a bad line
    for item in items:
        text = _dump(item, inline, rnd)
        if hostile and rnd.random() < 0.2:
            lines.append((text + rnd.choice([b",", b" ", b", "]) + _dump(rnd.choice(items), inline, rnd), None, True))
        elif hostile and text[:1] in (b"[", b"{") and len(text) > 2 and rnd.random() < 0.25:
            # Split at a comma, dropped: joined again with a comma, the halves are the value again.
            commas = [i for i in range(1, len(text) - 1) if text[i] == 0x2C]
            cut = rnd.choice(commas) if commas else rnd.randint(1, len(text) - 2)
            lines += [(text[:cut], None, True), (text[cut + 1 :], None, True)]
        else:
            lines.append((text, item, False))
    offsets, values, bad = [], [], set()
    for i, (text, value, is_bad) in enumerate(lines):
        while rnd.random() < 0.15:
            out += rnd.choice([b"", b" ", b"\r", b" \t\r"]) + b"\n"  # blank lines, CRLF ones too
        offsets.append(len(out))
        values.append(value)
        if is_bad:
            bad.add(i)
        out += rnd.choice([b"", b" ", b"\t "]) + text + rnd.choice([b"", b"\r", b" \r", b"\t"])
        if i < len(lines) - 1 or final_newline:
            out += b"\n"
    stops = bool(lines) and lines[0][0].startswith(b"[")  # a first element that opens an array, valid or not
    return File(bytes(out), values, offsets, bad, offsets[0] if stops else None)


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    i, k = 0, 0
    while i < len(data):
        yield data[i : i + sizes[k % len(sizes)]]
        i += sizes[k % len(sizes)]
        k += 1


read_sizes = st.lists(st.integers(1, 300), min_size=1, max_size=4) | st.sampled_from([[1], [4096], [1 << 20]])


@contextmanager
def window(block_min: int, drop_after: int) -> Iterator[None]:
    """Small block thresholds, so the block decoders run on small examples too."""
    with mock.patch.object(reader, "_BLOCK_MIN", block_min), mock.patch.object(reader, "CHUNK_SIZE", drop_after):
        yield


def check(read: list[Element], file: File, start: int = 0) -> None:
    assert [e.index for e in read if e.error is not None] == sorted(i for i in file.bad if i >= start)
    assert [e.index for e in read] == list(range(start, len(file.values)))
    assert [e.value for e in read] == file.values[start:]
    assert [e.offset for e in read] == file.offsets[start:]


def continuation_points(read: list[Element], pick: list[int]) -> list[Position]:
    """Positions a run may continue from: an element's anchor, its exact start, and the next one."""
    points = []
    for k in pick:
        if read:
            element = read[k % len(read)]
            points += [element.anchor, Position(element.offset, element.index), element.next]
    return points


settings_strategies = {
    "items": elements,
    "seed": st.integers(0, 2**32),
    "bom": st.booleans(),
    "sizes": read_sizes,
    "block_min": st.sampled_from([1, 40, 300, 64 << 10]),
    "drop_after": st.sampled_from([1, 100, 1 << 20]),
    "pick": st.lists(st.integers(0, 1000), max_size=3),
}


def readable_file(
    items: list[Any], seed: int, bom: bool, final_newline: bool, fmt: Format, hostile: bool, sizes: list[int]
) -> File | None:
    """The file in ``fmt``; None, once the reader is seen to stop where it should, for a JSON Lines
    file taken for a misnamed array."""
    file = array_file(items, seed, bom) if fmt is Format.ARRAY else lines_file(items, seed, bom, final_newline, hostile)
    if file.stops_at is None:
        return file
    with pytest.raises(JsonSyntaxError) as raised:
        list(iter_elements(pieces(file.data, sizes), fmt))
    assert raised.value.offset == file.stops_at
    return None


@PROPERTY
@given(
    **settings_strategies,
    final_newline=st.booleans(),
    fmt=st.sampled_from([Format.ARRAY, Format.LINES]),
    hostile=st.booleans(),
)
def test_plain_files_read_every_element_once_with_its_index_and_offset_from_any_continuation(
    items: list[Any],
    seed: int,
    bom: bool,
    sizes: list[int],
    block_min: int,
    drop_after: int,
    pick: list[int],
    final_newline: bool,
    fmt: Format,
    hostile: bool,
) -> None:
    file = readable_file(items, seed, bom, final_newline, fmt, hostile, sizes)
    if file is None:
        return
    with window(block_min, drop_after):
        read = list(iter_elements(pieces(file.data, sizes), fmt))
        check(read, file)
        for point in continuation_points(read, pick):
            # A continuation reads the file from the point's byte on, as a range request does.
            again = list(iter_elements(pieces(file.data[point.offset :], sizes), fmt, point))
            check(again, file, point.index)


def gzip_members(data: bytes, rnd: random.Random) -> bytes:
    """``cat``-ed gzip members split at random bytes, with flushes that end deflate blocks inside them."""
    cuts = sorted(rnd.sample(range(len(data) + 1), k=min(len(data) + 1, rnd.randint(0, 2))))
    out = bytearray()
    for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
        z = zlib.compressobj(rnd.choice([0, 1, 6, 9]), zlib.DEFLATED, 31)
        i = a
        while i < b:
            step = rnd.randint(1, 400)
            out += z.compress(data[i : min(b, i + step)])
            out += z.flush(rnd.choice([zlib.Z_SYNC_FLUSH, zlib.Z_FULL_FLUSH, zlib.Z_NO_FLUSH]))
            i += step
        out += z.flush()
    return bytes(out)


@pytest.mark.skipif(not gzip_index.available(), reason="libz cannot be loaded")
@PROPERTY
@given(
    **settings_strategies,
    final_newline=st.booleans(),
    fmt=st.sampled_from([Format.ARRAY, Format.LINES]),
    spacing=st.sampled_from([1, 50, 500]),
    hostile=st.booleans(),
)
def test_gzip_files_read_every_element_once_and_resume_from_seek_points_across_members(
    items: list[Any],
    seed: int,
    bom: bool,
    sizes: list[int],
    block_min: int,
    drop_after: int,
    pick: list[int],
    final_newline: bool,
    fmt: Format,
    spacing: int,
    hostile: bool,
) -> None:
    file = readable_file(items, seed, bom, final_newline, fmt, hostile, sizes)
    if file is None:
        return
    s3 = FakeS3(chunk=sizes[0])
    s3.objects[("b", "k")] = gzip_members(file.data, random.Random(seed))
    ref = ObjectRef("b", "k", "v1", None)
    source = S3Source(s3, seek_spacing=spacing)
    points: list[SeekPoint] = []
    with window(block_min, drop_after):
        read = list(iter_elements(source.chunks(ref, 0, True, on_point=points.append), fmt))
        check(read, file)
        for position in continuation_points(read, pick):
            # As a continuation does: the latest seek point at or before the checkpoint, if any.
            usable = [p for p in points if p.out_offset <= position.offset]
            point = SeekPoint.from_bytes(usable[-1].to_bytes()) if usable else None
            chunks = source.chunks(ref, position.offset, True, resume_from=point)
            check(list(iter_elements(chunks, fmt, position)), file, position.index)
