"""Parquet and Avro files as elements, with exact resume positions and bounded memory.

Parquet is read row group by row group through ranged GETs of the pinned object version (the
footer first, then each row group's column chunks): an element's position is (row group, global
row index), so a resume reads the footer and the row group it names and skips to the row. A row
group is held whole while it is read (its compressed column chunks, decoded a batch of rows at a
time); one whose uncompressed size would not fit the function's memory stops the run with a reason
before anything of it is read. Batches are sized by what they decode to (a dictionary's values
counted as often as rows use them), not by the file's encoded size: a batch decoding past
BATCH_BYTES is converted in slices, and a single row larger than the function can hold stops the
run. Batch sizes never change positions. A column named twice (letter case aside) stops the file
before anything is read, as a CSV header naming one twice does.

Avro is read block by block: an element's position is (byte offset of its block, global index of
the block's first row), the last row of a block pointing at the next block. A resume reads the
header (schema, sync marker) from byte 0 and streams from the block's offset; a block whose sync
marker or data is wrong stops the run at that block, everything before it settled.

Values become JSON as Braze takes them: timestamps ISO 8601 UTC strings (a timestamp without a
time zone is taken as UTC, as Braze reads a time without an offset), dates ``YYYY-MM-DD``,
decimals numbers (an int when integral), structs/records and maps objects, lists arrays. A value
JSON cannot hold (bytes, NaN or an infinity, a duration), or pyarrow cannot give as Python (a
string that is not UTF-8), makes its row a reject naming the column. Nanosecond times are cut to
microseconds, at the top level or inside structs, lists and maps.
A null top-level column is left out of the object, as an empty CSV cell is (no attribute is
unset, no data point spent); nulls inside nested values stay. ``PAYLOAD`` stays even when null,
for the row to be rejected as a CDI row with an empty payload.

pyarrow is imported only when a Parquet file is read; fastavro only when an Avro file is.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any, ClassVar

import orjson

from .ports import ObjectRef, ObjectSource, UnreadableInput
from .reader import Element, Position

PARQUET_MAGIC = b"PAR1"
AVRO_MAGIC = b"Obj\x01"
GZIP_MAGIC = b"\x1f\x8b"

BATCH_ROWS = 4096  # rows decoded and turned into Python objects at once, at most
# What a batch may hold decoded (Arrow buffers, dictionaries expanded) before it becomes Python
# objects: a batch larger is converted in slices, and fewer rows are read at once after it.
BATCH_BYTES = 32 << 20
READ_AHEAD = 1 << 20  # small reads (the footer, Avro's header) are served from one GET this long
# A row group is read whole: its uncompressed size must fit in what the function has left after
# the runtime, pyarrow and the requests in flight (RESERVED), with room for its compressed column
# chunks and the pages being decompressed beside the decoded batch (SAFETY).
RESERVED_BYTES = 256 << 20
SAFETY = 2
MAX_AVRO_BLOCK_BYTES = 256 << 20  # fastavro holds a block whole; a larger declared size is corrupt


def memory_limit(memory_mb: int | None = None) -> int | None:
    """The largest row group (uncompressed bytes) the function can read; None outside Lambda."""
    if memory_mb is None:
        memory_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 0)
    if memory_mb <= 0:
        return None
    total = memory_mb << 20
    return (total - RESERVED_BYTES) // SAFETY if total > 2 * RESERVED_BYTES else total // 4


class TypedRow(Element):
    """A row of a Parquet or Avro file, with what its reader knows of every row of its batch.

    ``made_times``: the top-level fields whose string values the reader wrote itself from a
    timestamp column (ISO 8601 UTC, a year from 1 to 9999), valid by construction: the object
    checks do not match their form again. ``may_be_cdi``: False when the file has no PAYLOAD
    column, so no row can be a Cloud Data Ingestion row. ``columns``: the file's top-level column
    names (None when its rows are not records), for what is decided once per file.

    Both are the same for every row of a batch: they are attributes of a subclass made once per
    set of facts (:func:`typed_rows`), so a row costs no more to make than any element."""

    __slots__ = ()
    made_times: ClassVar[frozenset[str]] = frozenset()
    may_be_cdi: ClassVar[bool] = True
    columns: ClassVar[tuple[str, ...] | None] = None


@functools.cache
def typed_rows(made_times: frozenset[str], may_be_cdi: bool, columns: tuple[str, ...] | None = None) -> type[TypedRow]:
    """The class of rows that share these facts."""
    facts = {"__slots__": (), "made_times": made_times, "may_be_cdi": may_be_cdi, "columns": columns}
    return type("TypedRow", (TypedRow,), facts)


def refuse_repeated_columns(names: Iterable[str]) -> None:
    """Stop a file that names a column twice (letter case aside), as a CSV header is refused: one
    of the two would be lost without a word, an identifier possibly."""
    seen: set[str] = set()
    for name in names:
        folded = name.casefold()
        if folded in seen:
            raise UnreadableInput(
                0,
                f"column {name!r} appears twice in the file's schema (letter case aside): one of the two would "
                "be lost; write the file with each column named once. Nothing of the file was sent",
            )
        seen.add(folded)


class _NoJson(Exception):
    """A value JSON cannot hold; the message names its type, never the value."""


def _json_value(value: Any) -> Any:
    """A decoded value (pyarrow's or fastavro's Python objects) as plain JSON types."""
    convert = _CONVERT.get(type(value))
    if convert is not None:
        return convert(value)
    if value is None or type(value) in _AS_IS:
        return value
    for kind, convert in _CONVERT_SUBCLASS:
        if isinstance(value, kind):
            return convert(value)
    raise _NoJson(f"a {type(value).__name__} value has no JSON form")


def _float(value: float) -> float:
    if not math.isfinite(value):
        raise _NoJson("NaN or an infinity has no JSON form")
    return value


def _dict(value: dict[Any, Any]) -> dict[str, Any]:
    return {k if type(k) is str else str(k): _json_value(v) for k, v in value.items()}


def _list(value: list[Any] | tuple[Any, ...]) -> list[Any]:
    return [_json_value(v) for v in value]


_ISO_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def _iso_utc(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z and microseconds (``2026-03-01T12:00:00.000000Z``); a time
    without a zone is taken as UTC, as Braze takes it. Written by orjson (in C: several times
    faster than isoformat), which leaves out a zero fraction: it is put back, for one form."""
    zone = value.tzinfo
    if zone is not None and zone is not dt.UTC and zone.utcoffset(value):
        value = value.astimezone(dt.UTC)
    text = orjson.dumps(value, option=_ISO_OPTIONS)
    if len(text) == 22:  # "YYYY-MM-DDTHH:MM:SSZ" with its quotes
        return text[1:20].decode() + ".000000Z"
    return text[1:-1].decode()


def _date_or_time(value: dt.date | dt.time) -> str:
    return value.isoformat()


def _decimal(value: Decimal) -> int | float:
    if not value.is_finite():
        raise _NoJson("a decimal NaN or infinity has no JSON form")
    return int(value) if value == value.to_integral_value() else float(value)


def _binary(value: Any) -> Any:
    raise _NoJson("binary data (bytes) has no JSON form; write it as a string column")


_AS_IS = frozenset({str, int, bool})
_CONVERT: dict[type, Callable[[Any], Any]] = {
    float: _float,
    dict: _dict,
    list: _list,
    tuple: _list,
    dt.datetime: _iso_utc,
    dt.date: _date_or_time,
    dt.time: _date_or_time,
    Decimal: _decimal,
    bytes: _binary,
    bytearray: _binary,
    memoryview: _binary,
    uuid.UUID: str,
}
_CONVERT_SUBCLASS: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (dt.datetime, _iso_utc),  # before date: a datetime is a date
    (dt.date, _date_or_time),
    (dt.time, _date_or_time),
    (str, str),
    (bool, bool),
    (int, int),
    (float, _float),
    (bytes, _binary),
)


def _reason(column: str, exc: Exception) -> str:
    return f"column {column}: {exc}"


def _unconvertible(exc: Exception) -> _NoJson:
    """Why pyarrow could not give a value as Python, without the value."""
    if isinstance(exc, UnicodeDecodeError):
        return _NoJson("a string that is not valid UTF-8; write the column's text as UTF-8")
    return _NoJson(f"a value that cannot be read as Python ({type(exc).__name__})")


# -- reading by range ---------------------------------------------------------------------------


class _RangedFile:
    """A read-only file over ranged GETs of the pinned object version, for pyarrow: a read at
    least READ_AHEAD long is one GET of exactly that range; a shorter one is served from a window
    of READ_AHEAD bytes fetched at once. The source's own error (gone, denied) is kept, for the
    reader to raise it rather than pyarrow's wrapping of it."""

    def __init__(self, source: ObjectSource, ref: ObjectRef, size: int) -> None:
        self._source = source
        self._ref = ref
        self.size = size
        self._pos = 0
        self._window = b""
        self._window_at = 0
        self.error: UnreadableInput | None = None
        self.closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        start = self._pos
        if n is None or n < 0:
            n = self.size - start
        n = max(0, min(n, self.size - start))
        if n == 0:
            return b""
        at = start - self._window_at
        if at >= 0 and at + n <= len(self._window):
            data = self._window[at : at + n]
        elif n >= READ_AHEAD:
            data = self._get(start, n)
        else:
            self._window = self._get(start, max(n, READ_AHEAD))
            self._window_at = start
            data = self._window[:n]
        if len(data) < n:
            self.error = UnreadableInput(start + len(data), "the object is shorter than its size said")
            raise self.error
        self._pos = start + n
        return data

    def _get(self, start: int, length: int) -> bytes:
        try:
            data, _ = self._source.read_range(self._ref, start, min(length, self.size - start))
        except UnreadableInput as exc:
            self.error = exc
            raise
        return data

    def close(self) -> None:
        self.closed = True


# -- Parquet ------------------------------------------------------------------------------------


def iter_parquet(
    source: ObjectSource, ref: ObjectRef, start: Position, memory_mb: int | None = None
) -> Iterator[Element]:
    """The rows of a Parquet file from ``start`` (row group, global row index) on."""
    import pyarrow as pa  # only now: a JSON import never pays for it
    import pyarrow.parquet as pq

    head, size = source.read_range(ref, 0, 4)
    if head != PARQUET_MAGIC:
        raise UnreadableInput(0, "not a Parquet file: it does not start with PAR1")
    file = _RangedFile(source, ref, size)
    try:
        parquet = pq.ParquetFile(pa.PythonFile(file, mode="r"), pre_buffer=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise file.error or UnreadableInput(
            0, f"the Parquet footer cannot be read ({exc}): the file is truncated or corrupt"
        ) from None
    meta = parquet.metadata
    limit = memory_limit(memory_mb)
    refuse_repeated_columns(parquet.schema_arrow.names)
    plan = _ParquetPlan(parquet.schema_arrow)
    per_row = 1  # the most a row has decoded to so far (bytes), for how many rows to read at once
    firsts = [0]
    for group in range(meta.num_row_groups):
        firsts.append(firsts[-1] + meta.row_group(group).num_rows)
    for group in range(start.offset, meta.num_row_groups):
        uncompressed = meta.row_group(group).total_byte_size
        if limit is not None and uncompressed > limit:
            raise UnreadableInput(
                group,
                f"row group {group} holds {uncompressed:,} bytes uncompressed, more than the {limit:,} this "
                f"function can read at once ({os.environ.get('AWS_LAMBDA_FUNCTION_MEMORY_SIZE', '?')} MB of "
                "memory); write the file with smaller row groups (e.g. 128 MB: pyarrow row_group_size, "
                "Spark parquet.block.size) or give the importer more memory",
            )
        index = firsts[group]
        end = firsts[group + 1]
        skip = start.index - index if group == start.offset else 0
        # Rows read at once: what fits the byte budget by the larger of the row group's average and
        # what rows have decoded to so far (a dictionary's values count as often as they are used).
        # A dictionary-encoded text column can decode to far more than the row group's size says:
        # a few of its rows are read first to measure them.
        per_row = max(per_row, meta.row_group(group).total_byte_size // max(1, end - firsts[group]))
        # Every such row group is measured: an earlier one's small rows say nothing of a later one's.
        if _dictionary_pages(meta.row_group(group), parquet.schema):
            per_row = max(per_row, _probe(parquet, group, plan.dictionaries, file, pa))
        batch_size = max(1, min(BATCH_ROWS, BATCH_BYTES // per_row))
        batches = parquet.iter_batches(batch_size=batch_size, row_groups=[group], use_pandas_metadata=False)
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise file.error or UnreadableInput(
                    group, f"row group {group} cannot be read ({exc}): the file is truncated or corrupt"
                ) from None
            if batch is None:
                break
            rows = batch.num_rows
            if skip >= rows:
                skip -= rows
                index += rows
                continue
            if skip:
                batch = batch.slice(skip)
                index += skip
                rows -= skip
                skip = 0
            for part, decoded in _slices(batch, plan.dictionaries):
                rows = part.num_rows
                per_row = max(per_row, decoded // rows)
                if rows == 1 and limit is not None and decoded > limit:
                    raise UnreadableInput(
                        group,
                        f"row {index} of row group {group} is too large: it decodes to about {decoded:,} bytes, more "
                        f"than the {limit:,} this function can read at once "
                        f"({os.environ.get('AWS_LAMBDA_FUNCTION_MEMORY_SIZE', '?')} MB of memory); split the row's "
                        "values or give the importer more memory",
                    )
                values, errors = plan.rows(part)
                row = typed_rows(plan.made_times, plan.may_be_cdi, plan.columns)
                size = max(1, decoded // rows)
                positions = [Position(group, i) for i in range(index, index + rows)]
                positions.append(Position(group if index + rows < end else group + 1, index + rows))
                for i, value in enumerate(values):
                    if errors and i in errors:
                        yield Element(
                            index + i, positions[i], positions[i + 1], size, None, errors[i], error_source="parquet"
                        )
                    else:
                        yield row(index + i, positions[i], positions[i + 1], size, value)
                index += rows
        if index != end:
            raise UnreadableInput(
                group, f"row group {group} holds {index - firsts[group]} rows, its footer says {end - firsts[group]}"
            )


PROBE_ROWS = 64  # rows read to measure what a row decodes to, before a row group's batch size is chosen


def _dictionary_pages(group: Any, schema: Any) -> bool:
    """Whether a row group's text (byte array) columns with dictionary pages may decode to more
    than the byte budget in a batch: a row holds one value of a column that is not repeated, at
    most its column chunk long; a repeated one's rows can hold any number."""
    bound = 0
    for c in range(group.num_columns):
        column = group.column(c)
        # a dictionary or a delta of prefixes lets many rows share the bytes of one long value
        if column.physical_type == "BYTE_ARRAY" and (
            column.has_dictionary_page or "DELTA_BYTE_ARRAY" in column.encodings
        ):
            if schema.column(c).max_repetition_level > 0:
                return True
            bound += column.total_uncompressed_size
    return bound * BATCH_ROWS > BATCH_BYTES


def _probe(parquet: Any, group: int, dictionaries: bool, file: _RangedFile, pa: Any) -> int:
    """The bytes the first rows of a row group decode to, per row."""
    try:
        batch = next(parquet.iter_batches(batch_size=PROBE_ROWS, row_groups=[group], use_pandas_metadata=False), None)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise file.error or UnreadableInput(
            group, f"row group {group} cannot be read ({exc}): the file is truncated or corrupt"
        ) from None
    if batch is None or batch.num_rows == 0:
        return 1
    decoded = sum(_decoded_size(column) for column in batch.columns) if dictionaries else int(batch.nbytes)
    return max(1, decoded // batch.num_rows)


class _ParquetPlan:
    """How each top-level column of a schema becomes JSON: vectorised casts where Arrow can
    (timestamps, dates, times), a Python walk for values that need one, rejects for the rest.

    pyarrow.compute (a tenth of a second or more to import) is imported only for a schema with
    timestamps, dates or times; everything else is done on the Python lists."""

    def __init__(self, schema: Any) -> None:
        import pyarrow as pa

        self.names: list[str] = list(schema.names)
        self.keep_null = {i for i, n in enumerate(self.names) if n.casefold() == "payload"}
        self.casts: dict[int, Callable[[Any], Any]] = {}
        self.walk: set[int] = set()
        self.refuse: dict[int, str] = {}  # non-null values make the row a reject
        self.floats: set[int] = set()
        # Timestamp columns (of a name no other column has); each batch says which of them it
        # wrote within the years ISO 8601's four digits hold (made_times).
        self.timestamps: set[int] = set()
        self._in_range: set[int] = set()
        self.made_times: frozenset[str] = frozenset()
        self.may_be_cdi = any(n.casefold() == "payload" for n in self.names)
        self.columns = tuple(self.names)
        self.dictionaries = any(_has_dictionary(field.type) for field in schema)  # decoded larger than read
        for i, field in enumerate(schema):
            kind = field.type
            if pa.types.is_dictionary(kind):
                kind = kind.value_type
                self.casts[i] = _decode_dictionary
            micro = _microseconds(kind)
            if micro is not None and not (_temporal(kind)):
                # Nanosecond times inside a struct, list or map: pyarrow gives no Python value for
                # them; cast to microseconds, as a top-level column is.
                self.casts[i] = _cast_to(self.casts.get(i, _same), micro)
                kind = micro
            self._plan(i, field.name, kind)

    def _plan(self, i: int, name: str, kind: Any) -> None:
        import pyarrow as pa

        types = pa.types
        first = self.casts.get(i, _same)
        if types.is_timestamp(kind):
            import pyarrow.compute as pc

            unit = "us" if kind.unit == "ns" else kind.unit
            wall = pa.timestamp(unit)  # viewed so, a zoned timestamp (stored in UTC) shows its UTC time

            low, high = _YEARS[unit]
            if self.names.count(name) == 1:
                self.timestamps.add(i)

            def iso(array: Any, first: Callable[[Any], Any] = first, unit: str = unit, i: int = i) -> Any:
                # Arrow formats a zone-less timestamp several times faster than a zoned one (or
                # strftime): YYYY-MM-DD HH:MM:SS[.fff], made ISO 8601 with a T and a Z.
                array = first(array)
                if array.type.unit != unit:
                    array = array.cast(pa.timestamp(unit, array.type.tz), safe=False)  # ns: to microseconds
                if i in self.timestamps:
                    bounds = pc.min_max(array.view(pa.int64())).as_py()
                    if bounds["min"] is None or (bounds["min"] >= low and bounds["max"] <= high):
                        self._in_range.add(i)
                text = array.view(wall).cast(pa.string())
                return pc.binary_join_element_wise(
                    pc.utf8_replace_slice(text, start=10, stop=11, replacement="T"), "Z", ""
                )

            self.casts[i] = iso
        elif types.is_date(kind) or types.is_time(kind):
            self.casts[i] = lambda a: first(a).cast(pa.string())
        elif types.is_floating(kind):
            self.floats.add(i)
        elif (
            types.is_binary(kind)
            or types.is_large_binary(kind)
            or types.is_fixed_size_binary(kind)
            or (hasattr(types, "is_binary_view") and types.is_binary_view(kind))
        ):
            self.refuse[i] = _reason(name, _NoJson("binary data (bytes) has no JSON form; write it as a string column"))
        elif types.is_duration(kind) or types.is_interval(kind):
            self.refuse[i] = _reason(name, _NoJson(f"type {kind} has no JSON form"))
        elif not _plain(kind):
            self.walk.add(i)

    def rows(self, batch: Any) -> tuple[list[dict[str, Any]], dict[int, str]]:
        """The batch's rows as objects, and the reason of each row that cannot be one."""
        names = self.names
        errors: dict[int, str] = {}
        kept: list[str] = []  # the columns that make the objects
        columns: list[list[Any]] = []
        nulls: set[int] = set()  # rows with a null column to leave out
        self._in_range.clear()
        for i, array in enumerate(batch.columns):
            if i in self.refuse:
                if array.null_count < len(array):
                    for r, value in enumerate(array.to_pylist()):
                        if value is not None:
                            errors.setdefault(r, self.refuse[i])
                continue
            cast = self.casts.get(i)
            try:
                values = _pylist(cast(array) if cast is not None else array)
            except Exception as exc:  # pyarrow's conversions raise many kinds; the rows say which
                if isinstance(exc, MemoryError):
                    raise
                values = self._row_by_row(names[i], array, cast, errors)
            if i in self.floats and array.null_count < len(array):
                # x - x is 0.0 for every finite float, NaN for NaN and the infinities
                for r in [r for r, v in enumerate(values) if v is not None and v - v != 0]:
                    errors.setdefault(r, _reason(names[i], _NoJson("NaN or an infinity has no JSON form")))
            if i in self.walk:
                values = self._walked(names[i], values, errors)
            if array.null_count and i not in self.keep_null:
                nulls.update([r for r, v in enumerate(values) if v is None])
            kept.append(names[i])
            columns.append(values)
        made = frozenset(names[i] for i in self._in_range)
        if made != self.made_times:
            self.made_times = made
        if not columns:
            return [{} for _ in range(batch.num_rows)], errors
        rows = [dict(zip(kept, cells, strict=True)) for cells in zip(*columns, strict=True)]
        for r in nulls:
            rows[r] = {k: v for k, v in rows[r].items() if v is not None or k.casefold() == "payload"}
        return rows, errors

    @staticmethod
    def _row_by_row(name: str, array: Any, cast: Callable[[Any], Any] | None, errors: dict[int, str]) -> list[Any]:
        """A column pyarrow could not convert whole, row by row: the rows it cannot convert are
        rejects naming the column (a string not UTF-8, a value out of Python's range...)."""
        out: list[Any] = []
        for r in range(len(array)):
            cell = array.slice(r, 1)
            try:
                out.append(_pylist(cast(cell) if cast is not None else cell)[0])
            except Exception as exc:  # as above, for this row only
                if isinstance(exc, MemoryError):
                    raise
                errors.setdefault(r, _reason(name, _unconvertible(exc)))
                out.append(None)
        return out

    @staticmethod
    def _walked(name: str, values: list[Any], errors: dict[int, str]) -> list[Any]:
        out: list[Any] = []
        for r, value in enumerate(values):
            try:
                out.append(_json_value(value))
            except _NoJson as exc:
                errors.setdefault(r, _reason(name, exc))
                out.append(None)
        return out


def _epoch_in(unit: str, moment: dt.datetime) -> int:
    delta = moment - dt.datetime(1970, 1, 1)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return {"s": micros // 1_000_000, "ms": micros // 1_000, "us": micros}[unit]


# A timestamp of each unit (ns is read as us) from year 1 to year 9999, the years whose ISO 8601
# form has four digits and no sign: what the reader writes within them is a valid time.
_YEARS = {
    unit: (_epoch_in(unit, dt.datetime(1, 1, 1)), _epoch_in(unit, dt.datetime(9999, 12, 31, 23, 59, 59, 999999)))
    for unit in ("s", "ms", "us")
}


def _pylist(array: Any) -> list[Any]:
    """An array's Python values, as ``to_pylist`` gives them; a struct's rows made from its
    fields' lists (pyarrow makes each one through a Python mapping, several times slower)."""
    import pyarrow as pa

    kind = array.type
    if not pa.types.is_struct(kind) or kind.num_fields == 0:
        return list(array.to_pylist(maps_as_pydicts="lossy"))
    names = [kind.field(i).name for i in range(kind.num_fields)]
    if array.null_count or len(set(names)) != len(names):
        return list(array.to_pylist(maps_as_pydicts="lossy"))
    fields = [_pylist(child) for child in array.flatten()]
    return [dict(zip(names, cells, strict=True)) for cells in zip(*fields, strict=True)]


def _temporal(kind: Any) -> bool:
    """A top-level timestamp or time, which the plan formats itself (nanoseconds included)."""
    import pyarrow as pa

    return bool(pa.types.is_timestamp(kind) or pa.types.is_time(kind))


def _microseconds(kind: Any) -> Any:
    """``kind`` with every nanosecond timestamp and time inside made microseconds; None if it
    has none."""
    import pyarrow as pa

    types = pa.types
    if types.is_timestamp(kind):
        return pa.timestamp("us", kind.tz) if kind.unit == "ns" else None
    if types.is_time64(kind):
        return pa.time64("us") if kind.unit == "ns" else None
    if types.is_struct(kind):
        fields = [kind.field(i) for i in range(kind.num_fields)]
        made = [_microseconds(f.type) for f in fields]
        if all(m is None for m in made):
            return None
        return pa.struct([f.with_type(m) if m is not None else f for f, m in zip(fields, made, strict=True)])
    if types.is_map(kind):
        key, item = _microseconds(kind.key_type), _microseconds(kind.item_type)
        if key is None and item is None:
            return None
        return pa.map_(key or kind.key_type, item or kind.item_type)
    if types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind):
        value = _microseconds(kind.value_type)
        if value is None:
            return None
        field = kind.value_field.with_type(value)
        if types.is_fixed_size_list(kind):
            return pa.list_(field, kind.list_size)
        return pa.large_list(field) if types.is_large_list(kind) else pa.list_(field)
    if types.is_dictionary(kind):
        value = _microseconds(kind.value_type)
        return None if value is None else value  # decoded by the cast
    return None


def _has_dictionary(kind: Any) -> bool:
    import pyarrow as pa

    types = pa.types
    if types.is_dictionary(kind):
        return True
    if types.is_struct(kind):
        return any(_has_dictionary(kind.field(i).type) for i in range(kind.num_fields))
    if types.is_map(kind):
        return _has_dictionary(kind.key_type) or _has_dictionary(kind.item_type)
    if types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind):
        return _has_dictionary(kind.value_type)
    return False


def _decoded_size(array: Any) -> int:
    """About how many bytes ``array`` holds with its dictionaries decoded: a dictionary's value
    counts once for every row that uses it."""
    import pyarrow as pa

    types = pa.types
    kind = array.type
    if types.is_dictionary(kind):
        import pyarrow.compute as pc

        values = array.dictionary
        indices = array.indices
        if len(values) == 0 or len(indices) == 0:
            return indices.nbytes
        if types.is_string(values.type) or types.is_large_string(values.type) or types.is_binary(values.type):
            lengths = pc.binary_length(values).take(indices)
            total = pc.sum(lengths).as_py() or 0
            return int(total) + 4 * len(indices) + indices.nbytes
        each = -(-_decoded_size(values) // len(values))
        return each * (len(indices) - indices.null_count) + indices.nbytes
    if types.is_struct(kind) or types.is_map(kind) or types.is_list(kind) or types.is_large_list(kind):
        if types.is_struct(kind):
            children = array.flatten()
        elif types.is_map(kind):
            children = [array.keys, array.items]  # of the whole map array: an overestimate when sliced
        else:
            children = [array.flatten()]
        return 8 * len(array) + sum(_decoded_size(child) for child in children)
    return int(array.nbytes)


def _slices(batch: Any, dictionaries: bool) -> Iterator[tuple[Any, int]]:
    """The batch in slices of rows decoding to at most BATCH_BYTES each (a row larger than that
    alone), each with its decoded size."""
    decoded = sum(_decoded_size(column) for column in batch.columns) if dictionaries else int(batch.nbytes)
    rows = batch.num_rows
    if decoded <= BATCH_BYTES or rows <= 1:
        yield batch, max(1, decoded)
        return
    half = rows // 2
    yield from _slices(batch.slice(0, half), dictionaries)
    yield from _slices(batch.slice(half), dictionaries)


def _cast_to(first: Callable[[Any], Any], kind: Any) -> Callable[[Any], Any]:
    def cast(array: Any) -> Any:
        return first(array).cast(kind, safe=False)  # ns to us: the nanoseconds are dropped

    return cast


def _same(array: Any) -> Any:
    return array


def _decode_dictionary(array: Any) -> Any:
    return array.dictionary_decode()


def _plain(kind: Any) -> bool:
    """Whether pyarrow's Python values of this type are JSON as they are."""
    import pyarrow as pa

    types = pa.types
    if types.is_string(kind) or types.is_large_string(kind) or types.is_integer(kind) or types.is_boolean(kind):
        return True
    if types.is_null(kind) or (hasattr(types, "is_string_view") and types.is_string_view(kind)):
        return True
    if types.is_struct(kind):
        return all(_plain(kind.field(i).type) for i in range(kind.num_fields))
    if types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind):
        return _plain(kind.value_type)
    return False  # maps (keys may not be strings), floats inside, timestamps, decimals...


# -- Avro ---------------------------------------------------------------------------------------


class _Stream:
    """A file for fastavro over chunks: ``tell()`` is the offset in the object, the header read
    from byte 0 first when a resume streams from a block's offset."""

    def __init__(self, parts: Iterable[bytes], header_length: int = 0, resume_at: int = 0) -> None:
        self._parts = iter(parts)
        self._buf = b""
        self._pos = 0
        self._consumed = 0
        self._header = header_length
        self._resume_at = resume_at

    def tell(self) -> int:
        if self._consumed < self._header:
            return self._consumed
        return self._consumed - self._header + self._resume_at

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 62
        if n > MAX_AVRO_BLOCK_BYTES:
            raise UnreadableInput(
                self.tell(),
                f"the Avro data declares {n:,} bytes at once, more than the {MAX_AVRO_BLOCK_BYTES:,} the importer "
                "holds: the file is corrupt, or was written with blocks that large (write smaller blocks)",
            )
        while len(self._buf) - self._pos < n:
            part = next(self._parts, None)
            if part is None:
                break
            self._buf = self._buf[self._pos :] + part
            self._pos = 0
        data = self._buf[self._pos : self._pos + n]
        self._pos += len(data)
        self._consumed += len(data)
        return data


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(data):
            raise IndexError
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def _avro_header_end(data: bytes) -> int | None:
    """Where an Avro header (magic, metadata map, sync marker) ends in ``data``; None if longer."""
    try:
        pos = 4
        while True:
            count, pos = _read_long(data, pos)
            if count == 0:
                break
            if count < 0:
                count = -count
                _, pos = _read_long(data, pos)
            for _ in range(count):
                for _ in range(2):
                    length, pos = _read_long(data, pos)
                    pos += length
        pos += 16
    except IndexError:
        return None
    return pos if pos <= len(data) else None


def _avro_header(source: ObjectSource, ref: ObjectRef) -> bytes:
    length = 1 << 16
    while True:
        data, _ = source.read_range(ref, 0, length)
        if data[:4] != AVRO_MAGIC:
            raise UnreadableInput(0, "not an Avro file: it does not start with Obj\\x01")
        end = _avro_header_end(data)
        if end is not None:
            return data[:end]
        if len(data) < length or length >= MAX_AVRO_BLOCK_BYTES:
            raise UnreadableInput(0, "the Avro header is truncated or corrupt")
        length *= 4


# Codecs fastavro reads with the standard library or cramjam (bundled); zstandard and lz4 would need
# more native packages in the bundle.
AVRO_CODECS = ("null", "deflate", "snappy", "bzip2", "xz")


def iter_avro(source: ObjectSource, ref: ObjectRef, start: Position) -> Iterator[Element]:
    """The records of an Avro object container file from ``start`` (block offset, index of the
    block's first record) on; ``start.offset`` 0 is the file's start."""
    import fastavro  # only now: a JSON import never pays for it

    _read_nanosecond_times(fastavro)

    if start.offset == 0:
        stream = _Stream(source.chunks(ref, 0, False))
    else:
        header = _avro_header(source, ref)
        parts = [header]
        stream = _Stream(_chain(parts, source.chunks(ref, start.offset, False)), len(header), start.offset)
    try:
        blocks = fastavro.block_reader(stream)  # type: ignore[arg-type]  # a file as far as fastavro reads one
    except Exception as exc:
        if not _bad_data(exc):
            raise
        raise UnreadableInput(0, f"the Avro header cannot be read ({type(exc).__name__}: {exc})") from None
    codec = blocks.metadata.get("avro.codec", "null")
    if codec not in AVRO_CODECS:
        raise UnreadableInput(
            0,
            f"Avro codec {codec!r} is not read by the importer; write the file with the null, deflate or snappy codec",
        )
    plan = _AvroPlan(blocks.writer_schema)
    refuse_repeated_columns(plan.columns or ())
    index = start.index
    offset = stream.tell()
    while True:
        try:
            block = next(blocks, None)
        except Exception as exc:
            if not _bad_data(exc):
                raise
            raise UnreadableInput(
                offset, f"the Avro block at byte {offset} cannot be read ({type(exc).__name__}: {exc})"
            ) from None
        if block is None:
            return
        offset = block.offset
        try:
            records = list(block)
        except Exception as exc:
            if not _bad_data(exc):
                raise
            raise UnreadableInput(
                offset, f"the Avro block at byte {offset} cannot be decoded ({type(exc).__name__}: {exc})"
            ) from None
        if len(records) != block.num_records:
            raise UnreadableInput(offset, f"the Avro block at byte {offset} holds fewer records than it says")
        anchor = Position(offset, index)
        after = Position(offset + block.size, index + len(records))
        size = max(1, block.size // max(1, len(records)))
        last = len(records) - 1
        row = typed_rows(plan.made_times, plan.may_be_cdi, plan.columns)
        for i, record in enumerate(records):
            value, error = plan.row(record)
            if error is None:
                yield row(index + i, anchor, after if i == last else anchor, size, value)
            else:
                yield Element(index + i, anchor, after if i == last else anchor, size, None, error, error_source="avro")
        index += len(records)
        offset = after.offset


_NOT_THE_FILE = (UnreadableInput, ConnectionError, TimeoutError, MemoryError, AttributeError, NameError, AssertionError)


def _bad_data(exc: Exception) -> bool:
    """Whether fastavro's exception says the file's bytes are wrong (it raises ValueError, EOFError,
    KeyError, its SchemaParseException, a codec's own error...), not the source (S3, the network:
    those go up as they are) or a fault of this code."""
    return not isinstance(exc, _NOT_THE_FILE) and not type(exc).__module__.startswith(("botocore", "urllib3"))


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


_AVRO_PLAIN = frozenset({"null", "boolean", "int", "long", "string"})


class _AvroPlan:
    """Which top-level fields need their values walked into JSON (a logical type, bytes, fixed,
    floats, or a named type anywhere inside), by the writer's schema; the others are JSON as
    fastavro gives them."""

    def __init__(self, schema: Any) -> None:
        fields = schema.get("fields", []) if isinstance(schema, dict) else []
        self.walk = {field["name"] for field in fields if not _avro_plain(field["type"])}
        self.record = isinstance(schema, dict) and schema.get("type") == "record"
        names = [field["name"] for field in fields]
        # fastavro gives a datetime for these, which the reader writes as ISO 8601 UTC itself
        self.made_times = frozenset(
            field["name"]
            for field in fields
            if self.record and names.count(field["name"]) == 1 and _avro_timestamp(field["type"])
        )
        self.may_be_cdi = not self.record or any(n.casefold() == "payload" for n in names)
        self.columns = tuple(names) if self.record else None

    def row(self, record: Any) -> tuple[Any, str | None]:
        if not self.record or type(record) is not dict:
            try:
                return _json_value(record), None
            except _NoJson as exc:
                return None, f"the record: {exc}"
        for name in self.walk:
            value = record.get(name)
            if type(value) is dt.datetime:  # a timestamp's, the most common by far
                record[name] = _iso_utc(value)
            elif value is not None:
                try:
                    record[name] = _json_value(value)
                except _NoJson as exc:
                    return None, _reason(name, exc)
        if None in record.values():
            record = {k: v for k, v in record.items() if v is not None or k.casefold() == "payload"}
        return record, None


_AVRO_TIMESTAMPS = frozenset(
    {
        "timestamp-millis", "timestamp-micros", "timestamp-nanos",
        "local-timestamp-millis", "local-timestamp-micros", "local-timestamp-nanos",
    }
)  # fmt: skip
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _nanoseconds(value: int, *schemas: Any) -> dt.datetime:
    """A ``timestamp-nanos`` (or local) long as a datetime, cut to microseconds, as Parquet's
    nanosecond times are (fastavro gives these as bare integers, which Braze would store as numbers)."""
    return _EPOCH + dt.timedelta(microseconds=value // 1000)


def _read_nanosecond_times(fastavro: Any) -> None:
    """Teach fastavro the nanosecond timestamps (Avro 1.12), the others it reads as datetimes."""
    readers = fastavro.read.LOGICAL_READERS
    for name in ("long-timestamp-nanos", "long-local-timestamp-nanos"):
        readers.setdefault(name, _nanoseconds)


def _avro_timestamp(schema: Any) -> bool:
    """Whether every non-null value of this schema is a timestamp fastavro gives as a datetime (a
    long with a timestamp logical type, alone or with null in a union)."""
    if isinstance(schema, list):
        kinds = [s for s in schema if s != "null"]
        return len(kinds) == 1 and _avro_timestamp(kinds[0])
    return isinstance(schema, dict) and schema.get("type") == "long" and schema.get("logicalType") in _AVRO_TIMESTAMPS


def _avro_plain(schema: Any) -> bool:
    """Whether fastavro's values of this schema are JSON as they are (no named types inside)."""
    if isinstance(schema, str):
        return schema in _AVRO_PLAIN
    if isinstance(schema, list):
        return all(_avro_plain(s) for s in schema)
    if isinstance(schema, dict):
        if "logicalType" in schema:
            return False
        kind = schema.get("type")
        if kind == "array":
            return _avro_plain(schema.get("items"))
        if kind == "map":
            return _avro_plain(schema.get("values"))
        if kind == "enum":
            return True
        if kind == "record":
            return all(_avro_plain(f.get("type")) for f in schema.get("fields", []))
        return isinstance(kind, str) and kind in _AVRO_PLAIN
    return False
