"""The CSV reader against hostile framing, by property: whatever the cells (commas, doubled quotes,
CR and LF inside quoted fields, multi-byte UTF-8), line endings, read sizes and the point a run
continues from, every row is read exactly once, with its index, its byte offset in the file and,
for a bad row, its line number.

Derandomized like the JSON reader's property test; ``READER_PROPERTY_EXAMPLES=5000`` explores further.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any
from unittest import mock

from braze_importer import csv_reader
from braze_importer.csv_reader import iter_rows
from braze_importer.csv_types import Schema
from braze_importer.reader import BOM, START, Element
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_EXPLORE = int(os.environ.get("READER_PROPERTY_EXAMPLES", "0"))
PROPERTY = settings(
    max_examples=_EXPLORE or 80,
    derandomize=not _EXPLORE,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_HOSTILE = [*",\"\r\n ab0-1.[]'", "\u00e9", "\u6771", "\U0001f389", "\ufeff", "null", "TRUE", "007", "3.5"]
cells = st.lists(st.sampled_from(_HOSTILE), max_size=6).map("".join)
rows = st.lists(st.tuples(cells, cells, cells), max_size=30)
HEADER = ["external_id", "a", "b", "c"]


@dataclass
class File:
    data: bytes
    offsets: list[int]
    values: list[Any]  # the object, None for a skipped row
    bad: dict[int, int] = field(default_factory=dict)  # index -> line number of a bad row


def _field(text: str, rnd: random.Random) -> bytes:
    if any(c in text for c in ',"\r\n') or rnd.random() < 0.3:
        return b'"' + text.replace('"', '""').encode() + b'"'
    return text.encode()


def csv_file(items: list[tuple[str, str, str]], seed: int, bom: bool, crlf: bool, final_newline: bool) -> File:
    rnd = random.Random(seed)
    eol = b"\r\n" if crlf else b"\n"
    schema = Schema.from_header(HEADER)
    out = bytearray(BOM if bom else b"")
    out += b",".join(_field(h, rnd) for h in HEADER) + eol
    offsets: list[int] = []
    values: list[Any] = []
    bad: dict[int, int] = {}
    for i, (a, b, c) in enumerate(items):
        while rnd.random() < 0.1:
            out += eol  # blank lines are no rows
        offsets.append(len(out))
        cells = [f"u{i}{a[:2]}", a, b, c]
        if rnd.random() < 0.1:
            cells.pop()  # a row with the wrong number of fields: a reject with its line
            bad[i] = out.count(b"\n") + 1
            values.append(None)
        else:
            values.append(schema.row(cells))
        out += b",".join(_field(cell, rnd) for cell in cells)
        if i < len(items) - 1 or final_newline:
            out += eol
    return File(bytes(out), offsets, values, bad)


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    i, k = 0, 0
    while i < len(data):
        yield data[i : i + sizes[k % len(sizes)]]
        i += sizes[k % len(sizes)]
        k += 1


def check(read: list[Element], file: File, start: int = 0) -> None:
    assert [e.index for e in read] == list(range(start, len(file.values)))
    assert [e.offset for e in read] == file.offsets[start:]
    assert [e.line for e in read if e.error is not None] == [file.bad[i] for i in sorted(file.bad) if i >= start]
    good = [(e.value, e.skipped) for e in read if e.error is None]
    want = [(v, v is None) for i, v in enumerate(file.values) if i >= start and i not in file.bad]
    assert good == want
    for e, after in pairwise(read):
        # Where to restart for the row after this one: that row, blank lines before it, or (rows
        # read as one block) the block's start, whose rows a checkpoint's skip set covers.
        assert e.next.index <= after.index and e.next.offset <= after.offset
        if e.next.index == after.index:
            assert file.data[e.next.offset : after.offset].strip(b"\r\n") == b""
        else:
            assert e.next == e.anchor and e.block is not None


read_sizes = st.lists(st.integers(1, 300), min_size=1, max_size=4) | st.sampled_from([[1], [4096]])


@PROPERTY
@given(
    items=rows,
    seed=st.integers(0, 2**32),
    bom=st.booleans(),
    crlf=st.booleans(),
    final_newline=st.booleans(),
    sizes=read_sizes,
    drop_after=st.sampled_from([1, 100, 1 << 20]),
    block_min=st.sampled_from([1, 40, 64 << 10]),
    pick=st.lists(st.integers(0, 1000), max_size=3),
)
def test_every_row_is_read_once_with_its_index_offset_and_line_from_any_continuation(
    items: list[tuple[str, str, str]],
    seed: int,
    bom: bool,
    crlf: bool,
    final_newline: bool,
    sizes: list[int],
    drop_after: int,
    block_min: int,
    pick: list[int],
) -> None:
    file = csv_file(items, seed, bom, crlf, final_newline)
    # Small block thresholds, so rows are also read many at once (quote-free windows) on small examples.
    with (
        mock.patch.object(csv_reader, "CHUNK_SIZE", drop_after),
        mock.patch.object(csv_reader, "BLOCK_MIN", block_min),
        mock.patch.object(csv_reader, "BLOCK_ROWS", 1 if block_min == 1 else 8),
    ):
        read = list(iter_rows(pieces(file.data, sizes), START))
        check(read, file)
        for k in pick:
            if not read:
                break
            element = read[k % len(read)]
            for point in (element.anchor, element.next):
                again = list(
                    iter_rows(pieces(file.data[point.offset :], sizes), point, reopen=lambda: pieces(file.data, sizes))
                )
                check(again, file, point.index)
