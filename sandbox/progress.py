"""A progress line for long runs: rewritten on a terminal every second, nothing elsewhere."""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Self, TextIO

CLEAR = "\r\x1b[K"  # back to the line's start, then erase it


class ProgressLine:
    """While open, the runs' progress (``poll``: each run's key and the objects it has read) is shown every
    ``every`` seconds, measured against ``extents`` (what each key's file holds), with the rate and the
    time left, as one line of ``stream`` rewritten in place; only when ``stream`` is a terminal (a log or
    a pipe gets nothing). Lines written through ``say`` go above it."""

    def __init__(
        self, poll: Callable[[], list[tuple[str, int]]], extents: Mapping[str, Extent], stream: TextIO,
        every: float = 1.0, *, wanted: bool = True,
    ):  # fmt: skip
        self._poll = poll
        self._extents = extents
        self._stream = stream
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self.shown = wanted and stream.isatty()

    def __enter__(self) -> Self:
        if self.shown:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.shown:
            self._stop.set()
            self._thread.join()
            self._stream.write(CLEAR)
            self._stream.flush()

    def say(self, line: str) -> None:
        self._stream.write((CLEAR if self.shown else "") + line + "\n")
        self._stream.flush()

    def now(self, seconds: float) -> str:
        """The line for the runs as they are, ``seconds`` after the start."""
        runs = self._poll()
        extents = self._extents.values()
        total = sum(extent.size for extent in extents)
        done = sum(self._extents[key].done(objects) for key, objects in runs if key in self._extents)
        counts = [extent.objects for extent in extents]
        expected = sum(c for c in counts if c is not None) if None not in counts else None
        return line(
            sum(objects for _, objects in runs), min(done, total), total, seconds, expected=expected,
            exact=all(extent.exact for extent in extents),
        )  # fmt: skip

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self._every):
            with contextlib.suppress(Exception):  # a poll that fails (the services stopping) shows nothing
                self._stream.write(CLEAR + self.now(time.monotonic() - started))
                self._stream.flush()


def line(
    objects: int, done: float, total: int, seconds: float, *, expected: int | None = None, exact: bool = True
) -> str:
    """``12,345 of about 40,000 objects read (31 %), 3.1 of 10.0 MB, 4,115 objects/s, 0:06 left``: the bytes
    are the share of the files' bytes that the objects read stand for; ``expected`` is how many objects the
    files hold (counted, or ``exact=False``: estimated from their first megabyte). The time left is the
    objects left at the rate so far (the work is per object: a gzipped file holds many in few bytes)."""
    rate = objects / seconds if seconds > 0 else 0.0
    scale, unit = next((s, u) for s, u in ((1e9, "GB"), (1e6, "MB"), (1e3, "KB"), (1, "bytes")) if total >= s or s == 1)
    read, left = f"{objects:,} objects read", "time left not known yet"
    if expected:
        share = 100 * min(1, objects / expected)
        read = f"{objects:,} of {'' if exact else 'about '}{expected:,} objects read ({share:.0f} %)"
        if rate > 0:
            left = f"{_clock(max(0, expected - objects) / rate)} left"
    return f"{read}, {done / scale:,.1f} of {total / scale:,.1f} {unit}, {rate:,.0f} objects/s, {left}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(max(0.0, seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


SAMPLE = 1 << 20  # bytes of a file (decompressed) read to estimate how many objects it holds


@dataclass(frozen=True, slots=True)
class Extent:
    """How many objects a file holds: a Parquet file's rows; else counted in its first megabyte (its
    whole, for a small file) and scaled to its size, the decompressed size for gzip. The runs' checkpoints
    move in coarse steps (a gzip stream resumes only at its seek points), so progress is measured in
    objects read of these, shown as the share of the file's bytes on disk they stand for."""

    size: int  # bytes on disk
    objects: int | None = None  # None: not known (a file the run will reject, a gzip trailer that lies)
    exact: bool = False

    @classmethod
    def of(cls, path: Path) -> Extent:
        size = path.stat().st_size
        try:
            objects, exact = _count(path, size)
        except Exception:  # a file the run will reject: no share to show
            return cls(size)
        return cls(size, objects, exact)

    def __add__(self, other: Extent) -> Extent:
        """Two files as one (two runs of one key: whichever reads which, their sum is right)."""
        objects = None if self.objects is None or other.objects is None else self.objects + other.objects
        return Extent(self.size + other.size, objects, self.exact and other.exact)

    def done(self, objects: int) -> float:
        """The bytes on disk that ``objects`` read stand for."""
        if self.objects is None:
            return 0.0
        return self.size * min(1.0, objects / self.objects) if self.objects else float(self.size)


def _count(path: Path, size: int) -> tuple[int | None, bool]:
    """The objects ``path`` holds, and whether that is a count (else an estimate)."""
    with path.open("rb") as file:
        magic = file.read(4)
        file.seek(0)
        if magic == b"PAR1":
            import pyarrow.parquet as pq

            return pq.ParquetFile(file).metadata.num_rows, True
        if magic == b"Obj\x01":
            return _avro_objects(file, size)
        if magic[:2] == b"\x1f\x8b":
            sample, used, whole = _gunzip_start(file)
            # Scaled by the compressed bytes the sample took: no trailer is trusted (a multi-member file's
            # is its last member's, and it wraps at 4 GiB).
            inside = len(sample) if whole else round(len(sample) * size / max(used, 1))
            return _text_objects(sample, inside, path), whole
        sample = file.read(SAMPLE)
        return _text_objects(sample, size, path), len(sample) == size


def _gunzip_start(file: BinaryIO) -> tuple[bytes, int, bool]:
    """The first ``SAMPLE`` decompressed bytes of a gzip file (member after member), the compressed bytes
    they took, and whether that was the whole file."""
    out = bytearray()
    used = 0
    inflater = zlib.decompressobj(wbits=31)
    pending = b""
    while len(out) < SAMPLE:
        if not pending and not (pending := file.read(1 << 16)):
            return bytes(out), used, True
        if inflater.eof:  # a member ended: the next begins here, unless only padding is left
            if not pending.strip(b"\0"):
                used, pending = used + len(pending), b""
                continue
            inflater = zlib.decompressobj(wbits=31)
        out += inflater.decompress(pending, SAMPLE - len(out))
        rest = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
        used, pending = used + len(pending) - len(rest), rest
    return bytes(out), used, False


def _text_objects(sample: bytes, total: int, path: Path) -> int:
    """The objects of a text file of ``total`` bytes whose first bytes are ``sample``: a JSON array's
    elements, a CSV file's rows after its header, else non-blank lines; counted in whole ones, scaled."""
    whole = len(sample) >= total
    text = sample.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"["):
        from braze_importer.reader import Format, iter_elements

        count, end = 0, 0
        with contextlib.suppress(Exception):  # the sample ends inside an element
            for element in iter_elements([sample], Format.ARRAY):
                count, end = count + 1, element.next.offset
        return count if whole else round(count * total / max(end, 1))
    end = len(sample) if whole else sample.rfind(b"\n") + 1
    lines = sum(1 for row in sample[:end].splitlines() if row.strip())
    if ".csv" in path.suffixes:
        lines = max(0, lines - 1)  # the header
    return lines if whole else round(lines * total / max(end, 1))


def _avro_objects(file: BinaryIO, size: int) -> tuple[int, bool]:
    """The records of the Avro file's blocks in its first megabyte (or all), scaled to its size."""
    from fastavro import block_reader

    count, end = 0, 0
    for block in block_reader(file):
        count, end = count + block.num_records, file.tell()
        if end >= SAMPLE:
            return round(count * size / end), end >= size
    return count, True
