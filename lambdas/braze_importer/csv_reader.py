"""Streaming RFC 4180 reader that knows where every row starts.

The same contract as the JSON reader: each data row is an :class:`Element` with its index (data
rows from 0; the header has none), its byte offset in the decompressed file and the position to
restart from after it, so checkpoints, Range resumes, gzip seek points and reject offsets work
unchanged. A row ends at a line feed outside quotes: the number of ``"`` since the row began is
even there (a doubled quote inside a quoted field keeps the count even), so a quoted line break is
inside a row, never a boundary. Rows end with LF or CRLF; the last may have no line break.

A run that continues from the middle of the file reads the header again from byte 0 (``reopen``),
and counts the lines before its start only if a row is rejected (for the reject's line number).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from .csv_types import (
    CatalogCdiSchema,
    CatalogSchema,
    CdiSchema,
    DeleteSchema,
    HeaderError,
    Schema,
    catalog_schema,
    is_cdi_header,
    typed,
)
from .objects import Kind
from .ports import Group, UnreadableInput
from .reader import (
    BOM,
    CHUNK_SIZE,
    MAX_ELEMENT_BYTES,
    Element,
    JsonSyntaxError,
    Position,
    _Buffer,
    _LineBlock,
    _skip_bom,
)

# A quoted field may be as long as an unquoted one: as long as a row may be.
csv.field_size_limit(MAX_ELEMENT_BYTES)
BLOCK = -1  # marks a run of whole quote-free rows, one per line
BLOCK_MIN = 64 << 10  # below this many bytes in the window, rows go one by one
BLOCK_MAX = 256 << 10  # at most this many bytes a block: its rows and cells are alive at once
BLOCK_ROWS = 8  # fewer rows than this before a quote go one by one


AnySchema = Schema | CdiSchema | CatalogSchema | CatalogCdiSchema | DeleteSchema


class CsvError(UnreadableInput):
    """The file cannot be imported as CSV (its header, mostly); nothing of it is sent."""

    reason = "invalid_csv"

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(offset, message)
        self.args = (f"invalid CSV at byte {offset}: {message}",)


class _Rows:
    """Raw rows: (offset, end, bytes without the line break, line breaks inside, too long)."""

    def __init__(self, chunks: Iterable[bytes], offset: int) -> None:
        self.buf = _Buffer(chunks, offset)
        self.pos = 0
        self.blocks = True  # off while the header is read: it is one row, never part of a block
        self.header_lines = 0  # line feeds up to the end of the header, once it is read

    def __iter__(self) -> Iterator[tuple[int, int, bytes | None, int]]:
        buf = self.buf
        pos = self.pos
        retry_at = 0  # absolute offset before which no block is tried again
        while True:
            data = buf.data
            if (
                self.blocks
                and buf.base + pos >= retry_at
                and (len(data) - pos >= BLOCK_MIN or (buf.eof and pos < len(data)))
                and data[pos] not in b"\r\n"
            ):
                # Many rows at once: the rows up to the first blank line or line that is not a whole,
                # well-quoted row (a quoted line break, a stray quote), where every line feed ends a
                # row; they are decoded and parsed together.
                end = data.rfind(b"\n", pos, pos + BLOCK_MAX)
                stop = data.find(b'"', pos, end) if end > pos else -1
                if stop >= 0:
                    whole = _WHOLE_LINES.match(data, pos, end + 1)
                    stop = whole.end() if whole is not None else pos
                    end = stop - 1 if stop < end + 1 else end
                for blank in (data.find(b"\n\n", pos, end + 1), data.find(b"\n\r\n", pos, end + 1)):
                    if blank >= 0 and end > pos:
                        end = min(end, blank)
                        stop = blank
                if end > pos and data.count(b"\n", pos, end) >= BLOCK_ROWS - 1:
                    yield buf.base + pos, buf.base + end + 1, data[pos:end], BLOCK
                    pos = end + 1
                    if pos > CHUNK_SIZE:
                        buf.drop_before(pos)
                        pos = 0
                    continue
                # Too few rows before a quote: go row by row at least up to it.
                retry_at = buf.base + (stop if stop >= 0 else max(end, pos) + 1)
            nl = data.find(b"\n", pos)
            if nl >= 0 and data.find(b'"', pos, nl) < 0:  # the common row: no quotes at all
                yield buf.base + pos, buf.base + nl + 1, data[pos:nl] if nl - pos <= MAX_ELEMENT_BYTES else None, 0
                pos = nl + 1
                if pos > CHUNK_SIZE:
                    buf.drop_before(pos)
                    pos = 0
                continue
            # A quoted row, or the window ends inside a row: find the line feed where quotes balance.
            quotes = 0
            quoted: bool | None = None  # None: counting quotes (all on one line balance); else exact
            scan = pos
            inner = 0
            while True:
                data = buf.data
                nl = data.find(b"\n", scan)
                if nl < 0:
                    if len(data) - pos > MAX_ELEMENT_BYTES:
                        yield from self._skip_long(pos, quotes, quoted, scan, inner)
                        pos = self.pos
                        break
                    if not buf.fill():
                        if pos < len(buf.data):
                            yield buf.base + pos, buf.base + len(buf.data), buf.data[pos:], inner
                        self.pos = len(buf.data)
                        return
                    continue
                if quoted is None:
                    quotes += data.count(b'"', scan, nl)
                    if quotes % 2:
                        # Odd: a quoted field goes on past this line, or a quote stands inside an
                        # unquoted field (5'11") and is no quoting at all. Follow the quoting exactly.
                        quoted = _quoting(data, pos, nl, False, _COMMA)[0]
                else:
                    quoted = _quoting(data, scan, nl, quoted, _NEWLINE)[0]
                if not quoted:
                    raw = data[pos:nl] if nl - pos <= MAX_ELEMENT_BYTES else None
                    yield buf.base + pos, buf.base + nl + 1, raw, inner
                    pos = nl + 1
                    break
                inner += 1
                scan = nl + 1
            if pos > CHUNK_SIZE:
                buf.drop_before(pos)
                pos = 0

    def _skip_long(
        self, pos: int, quotes: int, quoted: bool | None, scan: int, inner: int
    ) -> Iterator[tuple[int, int, None, int]]:
        """A row longer than any request: delimit it exactly (by the rule the rows above follow:
        an even line ends it, an odd one is followed quote by quote), keep none of it."""
        buf = self.buf
        offset = buf.base + pos
        exact = quoted if quoted is not None else False
        before = _COMMA if quoted is None else _NEWLINE  # the byte before ``scan``: a field starts after it
        buf.drop_before(scan)
        scan = 0
        while True:
            data = buf.data
            nl = data.find(b"\n", scan)
            # Without a line feed, a quote at the very end waits for the next byte (it may be doubled).
            end = nl if nl >= 0 else len(data) - (1 if data.endswith(b'"') else 0)
            if quoted is None:
                quotes += data.count(b'"', scan, end)
            exact = _quoting(data, scan, end, exact, before)[0]
            if end > scan:
                before = data[end - 1]
            if nl < 0:
                buf.drop_before(end)
                scan = 0
                if not buf.fill():
                    yield offset, buf.base + len(buf.data), None, inner
                    self.pos = len(buf.data)
                    return
                continue
            if not exact or (quoted is None and quotes % 2 == 0):
                yield offset, buf.base + nl + 1, None, inner
                self.pos = nl + 1
                return
            quoted = True
            before = _NEWLINE
            inner += 1
            scan = nl + 1


def _quoting(data: bytes, start: int, end: int, quoted: bool, before: int) -> tuple[bool, bool]:
    """RFC 4180 quoting over ``data[start:end]``, from inside a quoted field or not, ``before``
    being the byte before ``start`` (a comma, or ``_COMMA`` at a row's start): (inside a quoted
    field at ``end``, a quote seen inside an unquoted field). A quote opens a field only at the
    field's start; inside, a doubled quote is one quote."""
    stray = False
    q = data.find(b'"', start, end)
    while q >= 0:
        if quoted:
            if q + 1 < end and data[q + 1] == _QUOTE:
                q = data.find(b'"', q + 2, end)
                continue
            quoted = False
        elif (data[q - 1] if q > start else before) == _COMMA:
            quoted = True
        else:
            stray = True
        q = data.find(b'"', q + 1, end)
    return quoted, stray


_QUOTE, _COMMA, _NEWLINE = ord('"'), ord(","), ord("\n")
# A row whose every field is quoted whole (its quotes doubled inside) or holds no quote at all.
_FIELD = rb'(?:"(?:[^"]++|"")*+"|[^",]*+)'
_WELL_QUOTED = re.compile(_FIELD + rb"(?:," + _FIELD + rb")*+")
# The same with spaces or tabs after a quoted field's closing quote, and what removes them.
_SPACED_FIELD = rb'(?:"(?:[^"]++|"")*+"[ \t]*+|[^",]*+)'
_SPACED = re.compile(_SPACED_FIELD + rb"(?:," + _SPACED_FIELD + rb")*+")
_SPACE_AFTER_QUOTE = re.compile(rb'("(?:[^"]++|"")*+")[ \t]++(?=,|\Z)')
# Lines that are such rows each, with no line break inside a field: a block parses them together.
_LINE_FIELD = rb'(?:"(?:[^"\n]++|"")*+"|[^",\n]*+)'
_WHOLE_LINES = re.compile(rb"(?:" + _LINE_FIELD + rb"(?:," + _LINE_FIELD + rb")*+\r?\n)*+")


def _split(text: str) -> list[str]:
    if '"' not in text:
        return text.split(",")
    parsed = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    if len(parsed) != 1:
        # The quotes balance over these lines, yet the csv module ends a row inside them: a quote
        # in the middle of an unquoted field (5'11" unquoted). Never half a row: all of it is one reject.
        raise csv.Error("a quote inside an unquoted field")
    return parsed[0]


def _cells(raw: bytes) -> tuple[list[str] | None, str | None]:
    """The row's cells, or why it has none."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if b'"' in raw and _WELL_QUOTED.fullmatch(raw) is None:
        if _SPACED.fullmatch(raw) is None:
            return None, _MALFORMED
        # Spaces or tabs after a closing quote, before the comma or the line end (Braze's own
        # catalog sample ends its lines so): outside every field, they hold no data.
        raw = _SPACE_AFTER_QUOTE.sub(rb"\1", raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "row is not valid UTF-8"
    try:
        return _split(text), None
    except csv.Error:
        return None, _MALFORMED


_MALFORMED = (
    "malformed quoting: a field with a quote must be quoted whole, its quotes doubled, "
    "and closed before a comma or the line end"
)


def read_header(
    chunks: Iterable[bytes],
    casts: Mapping[str, str] | None = None,
    *,
    id_column: str | None = None,
    ignore: Collection[str] = (),
    cdi: bool = False,
    kind: str = Kind.ATTRIBUTES,
    group: Group = Group.TRACK,
) -> tuple[AnySchema, _Rows]:
    """The schema from the file's first row, and the rows after it (see :meth:`Schema.from_header`).

    With ``cdi``, a header with a PAYLOAD column makes a Cloud Data Ingestion file (see
    :class:`CdiSchema`); without, PAYLOAD is an attribute like any other column. ``group`` says
    which endpoints the rows go to: a catalog's (see :func:`catalog_schema`) or /users/delete
    (see :class:`DeleteSchema`) make rows of their own kinds."""
    rows = _Rows(chunks, 0)
    rows.blocks = False
    try:
        _skip_bom(rows.buf)
    except JsonSyntaxError as exc:
        raise CsvError(exc.offset, exc.message) from None
    lines = 0
    for offset, end, raw, inner in iter(rows):
        lines += 1 + inner
        if raw is None:
            raise CsvError(offset, f"the header row is longer than {MAX_ELEMENT_BYTES} bytes")
        if not raw.strip(b"\r \t"):
            continue  # blank lines before the header
        cells, error = _cells(raw)
        if cells is None:
            raise CsvError(offset, f"the header row: {error}")
        if any("\r" in c for c in cells):
            raise CsvError(
                offset, "the header holds a carriage return: the file's line breaks may be CR only; save it with "
                "LF or CRLF line breaks",
            )  # fmt: skip
        rows.header_lines = lines
        try:
            names = [c.strip() for c in cells]
            schema: AnySchema
            if group is Group.CATALOG:
                schema = catalog_schema(names, casts)
            elif group is Group.USER_DELETE:
                schema = DeleteSchema.from_header(names)
            elif cdi and is_cdi_header(names):
                schema = CdiSchema.from_header(names)
            elif cdi and kind != Kind.ATTRIBUTES:
                raise HeaderError(
                    f"a CSV file in the {kind} folder must be a Cloud Data Ingestion file: identifier column(s) and "
                    "PAYLOAD, the object as JSON (attribute columns are typed as attributes, which an event's or a "
                    "purchase's fields are not)"
                )
            else:
                schema = Schema.from_header(names, casts, id_column=id_column, ignore=ignore)
        except HeaderError as exc:
            raise CsvError(offset, str(exc)) from None
        rows.pos = end - rows.buf.base  # the next pass over ``rows`` starts after the header
        rows.blocks = True
        return schema, rows
    raise CsvError(rows.buf.base + len(rows.buf.data), "the file is empty: a header row is required")


def iter_rows(
    chunks: Iterable[bytes],
    start: Position,
    casts: Mapping[str, str] | None = None,
    reopen: Callable[[], Iterable[bytes]] | None = None,
    *,
    id_column: str | None = None,
    ignore: Collection[str] = (),
    cdi: bool = False,
    kind: str = Kind.ATTRIBUTES,
    convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    group: Group = Group.TRACK,
) -> Iterator[Element]:
    """Yield every data row from ``start`` on, in order, with its index and offset.

    ``chunks`` is the decompressed stream from ``start.offset``; a start other than byte 0 must be
    a row boundary after the header (as a previous run's :class:`Position` is), and ``reopen``
    gives the stream from byte 0 again, for the header. Raises :class:`CsvError` when the header
    cannot be imported; a bad row is yielded with ``error`` set and reading goes on.

    Rows are ``kind`` objects; ``convert`` (a folder's rules) makes each row's object the one to
    send, raising :class:`Invalid` for a reject (with its line, as the reader's own rejects).
    In a catalog's or the user deletes' ``group``, each row's kind is its own (an upsert or a
    delete; the identifier's /users/delete array).
    """
    if start.offset == 0:
        schema, rows = read_header(chunks, casts, id_column=id_column, ignore=ignore, cdi=cdi, kind=kind, group=group)
        line_base: int | None = 0  # the lines before each row are counted as rows are read
        lines = rows.header_lines
    else:
        if reopen is None:
            raise ValueError("a CSV run continued mid-file needs the file from byte 0 for its header")
        schema, _ = read_header(reopen(), casts, id_column=id_column, ignore=ignore, cdi=cdi, kind=kind, group=group)
        rows = _Rows(chunks, start.offset)
        line_base = None  # counted from byte 0 if a reject needs it
        lines = 0
    width = len(schema.columns)
    kinded = schema.kinded  # rows are (kind, value)
    row_of: Callable[[list[str]], Any] = schema.row
    if convert is not None:
        schema_row = schema.row

        def row_of(cells: list[str]) -> Any:
            value: Any = schema_row(cells)
            return None if value is None else convert(value)

    index = start.index
    error: str | None
    for offset, end, raw, inner in rows:
        if inner == BLOCK:
            assert raw is not None
            texts = _block_cells(raw)  # None: some line is not UTF-8; those rows go one by one, as rejects
            block = _LineBlock(offset, raw)
            anchor, after = Position(offset, index), Position(end, index + raw.count(b"\n") + 1)
            last = len(texts) - 1 if texts is not None else raw.count(b"\n")
            size = max(1, len(raw) // (last + 1))
            for i, line_raw in enumerate(texts if texts is not None else raw.split(b"\n")):
                value: Any = None
                cells: list[str] | None
                if type(line_raw) is list:
                    cells, error = line_raw, None
                else:
                    cells, error = _cells(line_raw)  # type: ignore[arg-type]
                if cells is not None:
                    value, error = typed(cells, width, row_of)
                next_ = after if i == last else anchor
                if error is None:
                    row_kind = kind
                    if kinded:
                        row_kind, value = value
                    yield Element(index, anchor, next_, size, value, None, block, i, row_kind, None, value is None)
                else:
                    if line_base is None:
                        line_base = _lines_before(reopen, start.offset) if reopen is not None else 0
                    line = line_base + lines + i + 1
                    yield Element(index, anchor, next_, 0, None, error, block, i, kind, line)
                index += 1
            lines += last + 1
            continue
        line = lines
        lines += 1 + inner
        if raw is None:
            error = f"row longer than {MAX_ELEMENT_BYTES} bytes"
        elif not raw or raw == b"\r":
            continue  # blank lines are no rows
        else:
            cells, error = _cells(raw)
            if cells is not None:
                value, error = typed(cells, width, row_of)
                if error is None:
                    row_kind = kind
                    if kinded:
                        row_kind, value = value
                    here, after = Position(offset, index), Position(end, index + 1)
                    yield Element(index, here, after, len(raw), value, kind=row_kind, skipped=value is None)
                    index += 1
                    continue
        if line_base is None:
            line_base = _lines_before(reopen, start.offset) if reopen is not None else 0
        here, after = Position(offset, index), Position(end, index + 1)
        yield Element(index, here, after, 0, error=error or "unreadable row", kind=kind, line=line_base + line + 1)
        index += 1


def _block_cells(raw: bytes) -> list[list[str]] | list[bytes] | None:
    """The cells of a block's lines (each line one whole row): split at commas, or parsed by the
    ``csv`` module at once when quotes are in it; the raw lines, one by one, when the module does
    not see one row per line (a carriage return alone inside a field); None when not UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if '"' not in text:
        return [(line[:-1] if line.endswith("\r") else line).split(",") for line in text.split("\n")]
    try:
        parsed = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error:
        parsed = []
    return parsed if len(parsed) == text.count("\n") + 1 else raw.split(b"\n")


def _lines_before(reopen: Callable[[], Iterable[bytes]], offset: int) -> int:
    """Line feeds in the file before ``offset``: read once, and only when a row is rejected."""
    count = 0
    seen = 0
    for chunk in reopen():
        take = min(len(chunk), offset - seen)
        count += chunk.count(b"\n", 0, take)
        seen += take
        if seen >= offset:
            break
    return count


__all__ = ["BOM", "CsvError", "iter_rows", "read_header"]
