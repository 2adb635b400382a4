"""A progress line for long runs: rewritten on a terminal every second, nothing elsewhere."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Self, TextIO

CLEAR = "\r\x1b[K"  # back to the line's start, then erase it


class ProgressLine:
    """While open, ``poll`` (objects read so far, bytes read so far) is shown every ``every`` seconds with
    the rate since the start, as one line of ``stream`` rewritten in place; only when ``stream`` is a
    terminal (a log or a pipe gets nothing). Lines written through ``say`` go above it."""

    def __init__(self, poll: Callable[[], tuple[int, int]], total_bytes: int, stream: TextIO, every: float = 1.0):
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


def line(objects: int, done: int, total: int, seconds: float) -> str:
    """``12,345 objects read, 3.2 of 10.0 MB settled (32 %), 4,100 objects/s``: bytes as the runs' checkpoints
    last recorded them (everything before is done), objects as read."""
    share = f" ({100 * done / total:.0f} %)" if total else ""
    rate = objects / seconds if seconds > 0 else 0.0
    return f"{objects:,} objects read, {done / 1e6:.1f} of {total / 1e6:.1f} MB settled{share}, {rate:,.0f} objects/s"
