"""Streaming reader for JSON arrays and JSON Lines that knows where every element starts.

Resuming a run needs the exact position of the next object not yet acknowledged by Braze, and
reporting a syntax error needs its position. Streaming JSON parsers do not report byte offsets, so
this module frames the stream itself: it finds the byte range of each top-level element (one
C-level regex match per element for everything up to six levels of nesting, an incremental scanner
for deeper or very large elements) and decodes each element on its own. A run can then restart at
any element boundary with an S3 range request, at the cost of reading nothing twice.

Positions are offsets into the *decompressed* bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson

from .ports import UnreadableInput

CHUNK_SIZE = 1 << 20
# An element longer than this cannot be sent to Braze (a request is at most 4 MB), so it is
# skipped as a reject without being buffered whole.
MAX_ELEMENT_BYTES = 4 << 20

_STR = rb'"(?:[^"\\]++|\\.)*+"'


def _container(depth: int) -> bytes:
    if depth == 0:
        inner = rb"(?:[^\[\]{}\"]++|" + _STR + rb")*+"
    else:
        inner = rb"(?:[^\[\]{}\"]++|" + _STR + rb"|" + _container(depth - 1) + rb")*+"
    return rb"(?:\{" + inner + rb"\}|\[" + inner + rb"\])"


# One element (container, string or scalar), then the separator that ends it.
_ELEMENT = re.compile(rb"[ \t\r\n]*+(" + _container(5) + rb"|" + _STR + rb"|[^\s,\[\]{}\"]++)[ \t\r\n]*+(,|\])")
_WS = re.compile(rb"[ \t\r\n]*+")
_WS_BYTES = b" \t\r\n"


_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19  # 19 digits or more may not fit in 64 bits, where orjson falls back to a float
_INT_RANGE = (-(1 << 63), 1 << 64)


def decode(raw: bytes) -> Any:
    """Decode one JSON text exactly. Raises orjson.JSONDecodeError.

    orjson turns an integer beyond 64 bits into a float, and the value Braze got would then not be
    the one in the file; such texts (rare: 19 digits or more in a row, found with a cheap scan, and
    a float that may be such an integer in the value) are decoded again with their big integers
    kept as their own digits, which orjson writes back verbatim. Long digit runs in strings (phone
    numbers, ids) keep the fast path.
    """
    value = orjson.loads(raw)
    if raw.translate(_DIGITS_TO_ZERO).find(_LONG_DIGITS) < 0 or not _may_hold_lost_integer(value):
        return value
    try:
        return json.loads(raw, parse_int=_exact_int)  # orjson has checked the text: this cannot fail on it
    except RecursionError:
        raise orjson.JSONDecodeError("too deeply nested to keep its integers exact", "", 0) from None


# orjson writes a float of magnitude 1e16 or more with an exponent, so one outside its integer
# range (at least 2**63 in magnitude) shows as e+18 or more. A string holding such text only costs
# the exact decode.
_LARGE_FLOAT = re.compile(rb"e\+(?:1[89]|[2-9]\d|\d{3})")


def _may_hold_lost_integer(value: Any) -> bool:
    """Whether a decoded value may hold a float that an integer beyond 64 bits would have become
    (a float literal that large is decoded again too, to the same float)."""
    try:
        return _LARGE_FLOAT.search(orjson.dumps(value)) is not None  # one C pass
    except TypeError:  # nested deeper than orjson writes
        return _walk_for_lost_integer(value)


def _walk_for_lost_integer(value: Any) -> bool:
    """A whole-number float outside orjson's integer range in ``value``."""
    low, high = float(_INT_RANGE[0]), float(_INT_RANGE[1])
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float and (item >= high or item <= low) and item.is_integer():
            return True
    return False


def _exact_int(text: str) -> Any:
    value = int(text)
    return value if _INT_RANGE[0] <= value < _INT_RANGE[1] else orjson.Fragment(text)


class Format(Enum):
    ARRAY = "array"
    LINES = "lines"
    CSV = "csv"  # read by csv_reader.iter_rows
    PARQUET = "parquet"  # read by columnar.iter_parquet
    AVRO = "avro"  # read by columnar.iter_avro
    DETECT = "detect"  # a key without a known suffix: told by its first bytes when the run first reads


class JsonSyntaxError(UnreadableInput):
    """The file stops being valid JSON at ``offset`` (decompressed bytes)."""

    reason = "invalid_json"

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(offset, message)
        self.args = (f"invalid JSON at byte {offset}: {message}",)


@dataclass(frozen=True, slots=True)
class Position:
    """Where the next element starts: its byte offset and its index among the file's elements."""

    offset: int
    index: int


class _LazyOffsets:
    """A run of elements decoded together; each subclass finds their exact offsets only if someone asks."""

    __slots__ = ("_offsets", "base", "data")

    def __init__(self, base: int, data: bytes) -> None:
        self.base = base
        self.data = data
        self._offsets: list[int] | None = None


class _Block(_LazyOffsets):
    """Array elements parsed together."""

    __slots__ = ()

    def offset_of(self, i: int) -> int:
        if self._offsets is None:
            chunks = [self.data + b"]"]
            self._offsets = [e.offset for e in _iter_array(chunks, Position(self.base, 0), blocks=False)]
        return self._offsets[i]


@dataclass(slots=True)
class Element:
    """One top-level element: its decoded value, or why it has none.

    ``anchor`` is a position a reader can restart from to reach this element (its own start,
    or the start of the block it was parsed in); ``next`` is where to restart for the element
    after it. The checkpoint's skip set covers elements between an anchor and the one wanted.
    """

    index: int
    anchor: Position
    next: Position
    size: int = 0  # bytes of the element's text (a block's average for block-parsed elements)
    value: Any = None
    error: str | None = None  # set when the element could not be kept or decoded
    block: _Block | _LineBlock | None = None
    block_index: int = 0
    # CSV rows: always attributes objects; a reject names the row's line; a row holding only
    # its identifier is no object but counted as skipped.
    kind: str | None = None
    line: int | None = None
    skipped: bool = False
    error_source: str | None = None  # what found ``error``, when not the reader (a folder's rules)

    @property
    def offset(self) -> int:
        """The exact byte offset where the element starts."""
        if self.block is None:
            return self.anchor.offset
        return self.block.offset_of(self.block_index)


START = Position(offset=0, index=0)


class _Buffer:
    """A sliding window over a chunked byte stream, addressed by absolute offsets."""

    def __init__(self, chunks: Iterable[bytes], base: int) -> None:
        self._chunks = iter(chunks)
        self.data = b""
        self.base = base  # absolute offset of data[0]
        self.eof = False

    def fill(self) -> bool:
        """Append the next chunk; False at end of stream."""
        for chunk in self._chunks:
            if chunk:
                self.data += chunk
                return True
        self.eof = True
        return False

    def drop_before(self, pos: int) -> None:
        """Forget bytes before relative position ``pos``."""
        if pos > 0:
            self.data = self.data[pos:]
            self.base += pos


BOM = b"\xef\xbb\xbf"
# UTF-16 and UTF-32 in either byte order (FF FE also starts UTF-32-LE's FF FE 00 00).
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_ARRAY_AS_LINES = "this is a JSON array, not one object per line: name the file .json"


def _skip_bom(buf: _Buffer) -> None:
    """At the start of a file: step over a UTF-8 byte-order mark (what Windows tools, Excel and
    PowerShell write), so offsets stay those of the file itself; refuse UTF-16 and UTF-32, whose
    every line would otherwise be a reject. Without a byte-order mark they are told by a NUL
    byte among the first four: JSON text in UTF-16 or UTF-32 has one there, UTF-8 JSON never does."""
    while len(buf.data) < 4 and buf.fill():
        pass
    if buf.data.startswith(_WIDE_BOMS) or b"\x00" in buf.data[:4]:
        raise JsonSyntaxError(buf.base, "the file is UTF-16 or UTF-32 encoded; save it as UTF-8")
    if buf.data.startswith(BOM):
        buf.drop_before(len(BOM))


def _refuse_array(buf: _Buffer) -> None:
    """At the start of a JSON Lines file: stop if its first element opens a JSON array (pretty
    printed, or all on one line as ``json.dump`` writes it), whose every line, or only line, would
    otherwise be a reject. The blank lines before it are dropped: they hold no element."""
    while True:
        blank = _WS.match(buf.data)
        first = blank.end() if blank else 0
        line = buf.data.rfind(b"\n", 0, first) + 1  # where the line of the first non-blank byte starts
        if first < len(buf.data):
            if buf.data[first] == 0x5B:  # [
                raise JsonSyntaxError(buf.base + line, _ARRAY_AS_LINES)
            return
        buf.drop_before(line)
        if len(buf.data) > MAX_ELEMENT_BYTES or not buf.fill():
            return  # a line of nothing but blanks: the reader crosses it


def iter_elements(chunks: Iterable[bytes], fmt: Format, start: Position = START) -> Iterator[Element]:
    """Yield every top-level element from ``start`` on, in order, with its index and offset.

    ``chunks`` is the decompressed stream beginning at ``start.offset``. For an array, an offset
    other than 0 must be the start of an element (as a previous run's :class:`Position` is).
    At offset 0 a UTF-8 byte-order mark is skipped (offsets still count it).
    Raises :class:`JsonSyntaxError` where an array stops being valid JSON; in JSON Lines a bad
    line is yielded as an element with ``error`` set and reading goes on.
    """
    if fmt is Format.LINES:
        return _iter_lines(chunks, start)
    return _iter_array(chunks, start)


_BLANK_BYTES = frozenset(b" \t\r\n")
_BLANK_RUN = re.compile(rb"[ \t\r\n]+")


def _iter_lines(chunks: Iterable[bytes], start: Position) -> Iterator[Element]:
    buf = _Buffer(chunks, start.offset)
    if start.offset == 0:
        _skip_bom(buf)
        _refuse_array(buf)
    index = start.index
    pos = 0
    plain_until = -1  # absolute offset up to which lines are decoded one by one
    failures = 0
    while True:
        if failures < _BLOCK_TRIES and buf.base + pos > plain_until and (len(buf.data) - pos >= _BLOCK_MIN or buf.eof):
            end = buf.data.rfind(b"\n", pos)
            if end > pos:
                values = _parse_line_block(buf.data, pos, end)
                if values is None:
                    failures += 1  # a bad or blank line in this window: decode it line by line
                    plain_until = buf.base + end
                else:
                    failures = 0
                    block = _LineBlock(buf.base + pos, buf.data[pos:end])
                    anchor = Position(buf.base + pos, index)
                    after = Position(buf.base + end + 1, index + len(values))
                    size = max(1, (end - pos) // len(values))
                    last = len(values) - 1
                    for i, value in enumerate(values):
                        yield Element(index + i, anchor, after if i == last else anchor, size, value, None, block, i)
                    index += len(values)
                    pos = end + 1
                    continue
        if pos < len(buf.data) and buf.data[pos] in _BLANK_BYTES:
            # Blank lines are no elements: cross a run of them in one step (a file can hold gigabytes).
            run = _BLANK_RUN.match(buf.data, pos)
            last = buf.data.rfind(b"\n", pos, run.end()) if run else -1
            if last >= 0:
                pos = last + 1
                continue
        nl = buf.data.find(b"\n", pos)
        if nl < 0:
            if buf.eof:
                if pos < len(buf.data):
                    end = buf.base + len(buf.data)
                    element = _line_element(buf.data[pos:], index, buf.base + pos, end)
                    if element is not None:
                        yield element
                return
            if len(buf.data) - pos > MAX_ELEMENT_BYTES:
                offset = buf.base + pos
                text, pos = _read_long_line(buf, pos)
                end = buf.base + pos if pos >= 0 else buf.base + len(buf.data)
                if text is None:
                    error = f"line longer than {MAX_ELEMENT_BYTES} bytes"
                    yield Element(index, Position(offset, index), Position(end, index + 1), error=error)
                    index += 1
                elif (element := _line_element(text, index, offset, end)) is not None:
                    yield element  # long only because of whitespace around a small object
                    index += 1
                if pos < 0:
                    return
                continue
            buf.drop_before(pos)
            pos = 0
            buf.fill()
            continue
        element = _line_element(buf.data[pos:nl], index, buf.base + pos, buf.base + nl + 1)
        if element is not None:
            yield element
            index += 1
        pos = nl + 1


def _parse_line_block(data: bytes, pos: int, end: int) -> list[Any] | None:
    """Decode the lines in ``data[pos:end]`` in one tight loop, or None if any line is blank,
    invalid or holds more than one value (those are then read line by line, as rejects).

    Each line is decoded on its own. Joining the lines with commas and decoding them as one array
    is not exact: a line holding two objects and two lines that are halves of one object
    (``{"a": [{}`` then ``{}]}``) make as many values as lines, each at the wrong line.
    """
    text = data[pos:end]
    lines = text.split(b"\n")
    loads = orjson.loads
    try:
        values = [loads(line) for line in lines]
        if text.translate(_DIGITS_TO_ZERO).find(_LONG_DIGITS) >= 0 and _may_hold_lost_integer(values):
            values = [decode(line) for line in lines]  # only where an integer beyond 64 bits may be
    except orjson.JSONDecodeError:
        return None
    return values


class _LineBlock(_LazyOffsets):
    """Lines decoded together."""

    __slots__ = ()

    def offset_of(self, i: int) -> int:
        if self._offsets is None:
            offsets = [self.base]
            find = self.data.find
            nl = find(b"\n")
            while nl >= 0:
                offsets.append(self.base + nl + 1)
                nl = find(b"\n", nl + 1)
            self._offsets = offsets
        return self._offsets[i]


def _read_long_line(buf: _Buffer, pos: int) -> tuple[bytes | None, int]:
    """Read a line that fills the window: its text without surrounding whitespace (None if that
    is still too large to send), and the relative position after it, or -1 at EOF."""
    kept: _Kept | None = _Kept(collapse=False)
    while True:
        nl = buf.data.find(b"\n", pos)
        end = nl if nl >= 0 else len(buf.data)
        if kept is not None and not kept.add(buf.data[pos:end]):
            kept = None
        if nl >= 0:
            break
        buf.drop_before(len(buf.data))
        pos = 0
        if not buf.fill():
            return (kept.text() if kept is not None else None), -1
    return (kept.text() if kept is not None else None), nl + 1


def _line_element(line: bytes, index: int, offset: int, end: int) -> Element | None:
    """The element a line holds (None for a blank line)."""
    stripped = line.strip(_WS_BYTES)
    if stripped.startswith(BOM):  # files joined with cat: each may begin with a byte-order mark
        stripped = stripped[len(BOM) :].strip(_WS_BYTES)
    if not stripped:
        return None  # blank lines are not elements
    here, after = Position(offset, index), Position(end, index + 1)
    try:
        return Element(index, here, after, len(stripped), decode(stripped))
    except orjson.JSONDecodeError as exc:
        return Element(index, here, after, len(stripped), error=f"line is not valid JSON ({_short(exc)})")


def _short(exc: orjson.JSONDecodeError) -> str:
    # orjson's message names the problem and a position; it never quotes the document.
    return str(exc.msg) if hasattr(exc, "msg") else "decode error"


def _iter_array(chunks: Iterable[bytes], start: Position, *, blocks: bool = True) -> Iterator[Element]:
    buf = _Buffer(chunks, start.offset)
    index = start.index
    pos = 0
    if start.offset == 0:
        _skip_bom(buf)
        pos = _expect_open_bracket(buf)
    match = _ELEMENT.match
    while True:
        parsed = _parse_block(buf, pos) if blocks else None
        if parsed is False:
            blocks = False  # this file defeats the block parser: frame it element by element
        elif isinstance(parsed, tuple):
            values, end, closed = parsed
            block = _Block(buf.base + pos, buf.data[pos:end])
            anchor = Position(buf.base + pos, index)
            # After the last element: past its comma, or at the closing bracket itself.
            after = Position(buf.base + end + (0 if closed else 1), index + len(values))
            size = max(1, (end - pos) // len(values))
            last = len(values) - 1
            for i, value in enumerate(values):
                yield Element(index + i, anchor, after if i == last else anchor, size, value, None, block, i)
            index += len(values)
            pos = _advance(buf, end + 1, closed)
            if pos < 0:
                return
            continue
        m = match(buf.data, pos)
        if m is not None:  # the match includes the separator, so the element is complete
            offset = buf.base + m.start(1)
            raw = m.group(1)
            next_offset = buf.base + m.end() - (1 if m.group(2) == b"]" else 0)
            here, after = Position(offset, index), Position(next_offset, index + 1)
            # Framing succeeded, so the array goes on: an element that does not decode (a number
            # out of range, invalid UTF-8, a lone surrogate, too deep) is one reject, not the end.
            try:
                yield Element(index, here, after, len(raw), decode(raw))
            except orjson.JSONDecodeError as exc:
                yield Element(index, here, after, len(raw), error=f"element is not valid JSON ({_short(exc)})")
            index += 1
            pos = _advance(buf, m.end(), m.group(2) == b"]")
            if pos < 0:
                return
            continue
        # No complete element in the window: skip whitespace, then either read more or fall
        # back to the incremental scanner (deep nesting, huge elements, syntax errors).
        ws = _WS.match(buf.data, pos)
        pos = ws.end() if ws else pos
        if pos < len(buf.data) and buf.data[pos] in b",]":
            if buf.data[pos] == 0x5D and index == start.index:
                _expect_end(buf, pos + 1)  # an empty array, or a run resumed after its last element
                return
            raise JsonSyntaxError(buf.base + pos, "expected a value")
        if not buf.eof and len(buf.data) - pos < MAX_ELEMENT_BYTES:
            buf.drop_before(pos)
            pos = 0
            if buf.fill():
                continue
        if pos >= len(buf.data) and buf.eof:
            raise JsonSyntaxError(buf.base + pos, "unexpected end of file inside the array")
        element, pos, closed = _scan_element(buf, pos, index)
        element.next = Position(buf.base + pos - (1 if closed else 0), index + 1)
        yield element
        index += 1
        if closed:
            _expect_end(buf, pos)
            return


_BLOCK_MIN = 64 << 10  # below this many bytes in the window the per-element path is as good
_BLOCK_TRIES = 3


def _parse_block(buf: _Buffer, pos: int) -> tuple[list[Any], int, bool] | bool | None:
    """Parse many whole elements from ``pos`` with one decoder call.

    A candidate end is a ``}`` followed by ``,`` and the ``{`` of the next object, or by ``]``
    at the end of the file. The candidate is right exactly when ``[`` + the bytes up to it +
    ``]`` is valid JSON: a ``}`` inside a string or a nested value leaves something unclosed.
    Returns the values, the position of the separator after the last one, and whether that
    separator was ``]``; None when the window is too short to bother; False when candidates
    kept failing (arrays of non-objects, adversarial strings), so the caller stops trying.
    """
    data = buf.data
    if len(data) - pos < _BLOCK_MIN and not buf.eof:
        return None
    limit = len(data)
    failed_parses = 0  # only parses cost; looking at a brace that is no candidate is cheap
    while failed_parses < _BLOCK_TRIES:
        brace = data.rfind(b"}", pos, limit)
        if brace < 0:
            return False
        limit = brace
        sep = _skip_ws(data, brace + 1)
        closing = sep < len(data) and data[sep] == 0x5D
        if not closing:
            after = _skip_ws(data, sep + 1)
            if not (sep < len(data) and data[sep] == 0x2C and after < len(data) and data[after] == 0x7B):
                continue
        try:
            values = decode(b"[" + data[pos : brace + 1] + b"]")
        except orjson.JSONDecodeError:
            failed_parses += 1
            continue
        return (values, sep, closing) if values else False
    return False


def _advance(buf: _Buffer, pos: int, closed: bool) -> int:
    """Where to go on after an element's separator; -1 once the array has closed."""
    if closed:
        _expect_end(buf, pos)
        return -1
    if pos > CHUNK_SIZE:
        buf.drop_before(pos)
        return 0
    return pos


def _skip_ws(data: bytes, i: int) -> int:
    while i < len(data) and data[i] in _WS_BYTES:
        i += 1
    return i


def _expect_open_bracket(buf: _Buffer) -> int:
    """Position just after the opening bracket."""
    while True:
        ws = _WS.match(buf.data)
        pos = ws.end() if ws else 0
        if pos < len(buf.data):
            break
        buf.drop_before(pos)  # leading whitespace is forgotten as it is read, never rescanned
        if not buf.fill():
            raise JsonSyntaxError(buf.base + len(buf.data), "the file is empty")
    if buf.data[pos] != 0x5B:
        raise JsonSyntaxError(
            buf.base + pos,
            "the top level must be an array of objects (use .jsonl or .ndjson for one object per line)",
        )
    return pos + 1


def _expect_end(buf: _Buffer, pos: int) -> None:
    """Only whitespace may follow the closing bracket."""
    while True:
        ws = _WS.match(buf.data, pos)
        pos = ws.end() if ws else pos
        if pos < len(buf.data):
            raise JsonSyntaxError(buf.base + pos, "unexpected data after the closing bracket")
        buf.drop_before(pos)
        pos = 0
        if not buf.fill():
            return


def _scan_element(buf: _Buffer, pos: int, index: int) -> tuple[Element, int, bool]:
    """Scan one element byte by byte from ``pos``; returns it, the position after its separator,
    and whether the separator was the closing bracket. Elements over MAX_ELEMENT_BYTES are not
    kept (they could never be sent) but still delimited exactly; whitespace after the element's
    text does not count towards that size."""
    start_abs = buf.base + pos
    depth = 0
    in_string = False
    escape = False
    kept: _Kept | None = _Kept(collapse=True)
    i = pos
    while True:
        data = buf.data
        n = len(data)
        while i < n:
            c = data[i]
            if in_string:
                if escape:
                    escape = False
                elif c == 0x5C:
                    escape = True
                elif c == 0x22:
                    in_string = False
            elif c == 0x22:
                in_string = True
            elif c in (0x7B, 0x5B):
                depth += 1
            elif c in (0x7D, 0x5D):
                if depth == 0:
                    if c == 0x7D:
                        raise JsonSyntaxError(buf.base + i, "unbalanced '}'")
                    return _finish(buf, pos, i, kept, start_abs, index, closed=True)
                depth -= 1
            elif c == 0x2C and depth == 0:
                return _finish(buf, pos, i, kept, start_abs, index, closed=False)
            i += 1
        # Window exhausted: keep or drop what was scanned, then read more.
        if kept is not None and not kept.add(data[pos:i], outside=depth == 0 and not in_string):
            kept = None
        buf.drop_before(i)
        pos = i = 0
        if not buf.fill():
            raise JsonSyntaxError(buf.base, "unexpected end of file inside the array")


class _Kept:
    """The text of an element read across windows, without the whitespace around it.

    Whitespace before the text is dropped. Whitespace at the end of a window that may be
    insignificant is only remembered: if more text follows it is put back (``collapse``: as one
    space, where the scanner knows it lies outside any string), and if the element ends there it
    is dropped. So a small object followed by megabytes of spaces stays small.
    """

    __slots__ = ("collapse", "parts", "pending", "pending_size", "size")

    def __init__(self, *, collapse: bool) -> None:
        self.collapse = collapse
        self.parts: list[bytes] = []
        self.size = 0
        self.pending: list[bytes] = []
        self.pending_size = 0

    def add(self, piece: bytes, *, outside: bool = True) -> bool:
        """Append a piece; False once the element is too large to send."""
        if not self.parts:
            piece = piece.lstrip(_WS_BYTES)
        content = piece.rstrip(_WS_BYTES) if outside else piece
        if content:
            if self.pending_size:
                gap = [b" "] if self.collapse else self.pending
                self.parts.extend(gap)
                self.size += sum(map(len, gap))
                self.pending, self.pending_size = [], 0
            self.parts.append(content)
            self.size += len(content)
        if len(content) < len(piece):
            tail = piece[len(content) :]
            if (
                not self.collapse and self.pending_size <= MAX_ELEMENT_BYTES
            ):  # beyond that, any text after it is too large anyway
                self.pending.append(tail)
            self.pending_size += len(tail)
        return self.size <= MAX_ELEMENT_BYTES

    def text(self) -> bytes:
        return b"".join(self.parts)


def _finish(
    buf: _Buffer, pos: int, sep: int, kept: _Kept | None, start_abs: int, index: int, *, closed: bool
) -> tuple[Element, int, bool]:
    here = Position(start_abs, index)
    if kept is None or not kept.add(buf.data[pos:sep], outside=True):
        too_large = f"object larger than {MAX_ELEMENT_BYTES} bytes"
        return Element(index, here, START, error=too_large), sep + 1, closed
    raw = kept.text()
    try:
        return Element(index, here, START, len(raw), decode(raw)), sep + 1, closed
    except orjson.JSONDecodeError as exc:
        return (
            Element(index, here, START, len(raw), error=f"element is not valid JSON ({_short(exc)})"),
            sep + 1,
            closed,
        )
