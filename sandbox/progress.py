"""A progress line for long runs: rewritten on a terminal every second, nothing elsewhere."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TextIO

CLEAR = "\r\x1b[K"  # back to the line's start, then erase it


class ProgressLine:
    """While open, ``poll`` (objects read so far, bytes read so far) is shown every ``every`` seconds with
    the rate since the start, as one line of ``stream`` rewritten in place; only when ``stream`` is a
    terminal (a log or a pipe gets nothing). Lines written through ``say`` go above it."""

    def __init__(self, poll: Callable[[], tuple[int, float]], total_bytes: int, stream: TextIO, every: float = 1.0):
        self._poll = poll
        self._total = total_bytes
        self._stream = stream
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self.shown = stream.isatty()

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

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self._every):
            with contextlib.suppress(Exception):  # a poll that fails (the services stopping) shows nothing
                objects, done = self._poll()
                self._stream.write(CLEAR + line(objects, done, self._total, time.monotonic() - started))
                self._stream.flush()


def line(objects: int, done: float, total: int, seconds: float) -> str:
    """``12,345 objects read, 3.2 of 10.0 MB done (32 %), 4,115 objects/s, 1.1 MB/s, 0:06 left``: bytes of
    the files as the runs' checkpoints last recorded them (everything before is done), objects as read;
    the time left at the pace so far."""
    share = f" ({100 * done / total:.0f} %)" if total else ""
    rate = objects / seconds if seconds > 0 else 0.0
    pace = done / seconds if seconds > 0 else 0.0
    left = f"{_clock((total - done) / pace)} left" if pace > 0 else "time left not known yet"
    scale, unit = next((s, u) for s, u in ((1e9, "GB"), (1e6, "MB"), (1e3, "KB"), (1, "bytes")) if total >= s or s == 1)
    return (
        f"{objects:,} objects read, {done / scale:,.1f} of {total / scale:,.1f} {unit} done{share}, "
        f"{rate:,.0f} objects/s, {pace / scale:,.1f} {unit}/s, {left}"
    )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(max(0.0, seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


@dataclass(frozen=True, slots=True)
class Extent:
    """How far through one file a run is, from what its checkpoint records: the offset is in decompressed
    bytes for a gzipped file and counts row groups for Parquet, so each is measured in its own unit and
    shown as a share of the file's bytes on disk."""

    size: int  # bytes on disk
    end: int | None = None  # the checkpoint's offset at the end of the file, when it counts bytes
    rows: int | None = None  # a Parquet file's rows: its share is the objects read of them

    @classmethod
    def of(cls, path: Path) -> Extent:
        size = path.stat().st_size
        with path.open("rb") as file:
            magic = file.read(4)
            if magic[:2] == b"\x1f\x8b" and size >= 18:
                file.seek(-4, 2)  # gzip's trailer: the decompressed size, modulo 4 GiB, of a one-member file
                return cls(size, end=int.from_bytes(file.read(4), "little") or None)
        if magic == b"PAR1":
            import pyarrow.parquet as pq

            try:
                return cls(size, rows=pq.ParquetFile(path).metadata.num_rows)
            except Exception:  # a file the run will reject: no share to show
                return cls(size)
        return cls(size, end=size)

    def done(self, objects: int, offset: int) -> float:
        """The bytes on disk that ``objects`` read and a checkpoint at ``offset`` stand for."""
        if self.rows is not None:
            return self.size * min(1.0, objects / self.rows) if self.rows else float(self.size)
        if self.end is None or offset > self.end:  # a gzip trailer that wrapped or lies: no share to show
            return 0.0
        return self.size * offset / self.end
