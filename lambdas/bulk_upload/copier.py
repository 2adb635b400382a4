"""Copy a staged CI360 file into S3: the header row, then the data, streamed part by part.

Memory holds one part at a time whatever the file's size; nothing touches the disk. A failed copy
aborts its multipart upload, so no orphaned parts are left behind.
"""

from __future__ import annotations

import csv
import io
import math
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import orjson

MIN_PART = 8 << 20  # S3 needs at least 5 MiB for every part but the last
MAX_PARTS = 10_000
UNKNOWN_SIZE_PART = 64 << 20


class Download(Protocol):
    def small(self, url: str, limit: int) -> bytes: ...
    def stream(self, url: str) -> tuple[int | None, Iterator[bytes]]: ...


class MultipartUpload(Protocol):
    def part(self, data: bytes | bytearray, number: int) -> None:
        """Upload part ``number`` (from 1); parts may arrive out of order. ``data`` is only valid
        until the call returns (its buffer is reused)."""
        ...

    def complete(self) -> str | None:
        """Finish the upload; returns the object's version id."""
        ...

    def abort(self) -> None: ...


class Target(Protocol):
    def start(self, key: str) -> MultipartUpload: ...


class PermanentFailure(Exception):
    """Retrying will not help (an expired URL, a refused host, unreadable metadata)."""


@dataclass(frozen=True, slots=True)
class Copied:
    size: int
    version_id: str | None
    header: list[str] | None
    parts: int


def header_columns(metadata: bytes) -> list[str] | None:
    """Column names from CI360's metadata: a JSON array of {"columnName", "dataType"}, or one CSV line."""
    text = metadata.decode("utf-8-sig").strip()
    if not text:
        return None
    if text.startswith("["):
        try:
            columns = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise PermanentFailure("the metadata file is not valid JSON") from None
        if not isinstance(columns, list) or not all(isinstance(c, dict) and c.get("columnName") for c in columns):
            raise PermanentFailure('the metadata JSON must be an array of {"columnName", "dataType"}')
        return [str(c["columnName"]) for c in columns]
    first = text.splitlines()[0]
    return next(csv.reader([first]))


def header_line(columns: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(columns)
    return out.getvalue().encode()


def part_size(length: int | None) -> int:
    """Large enough for S3's 10,000-part limit, never below 8 MiB; in MiB steps."""
    if length is None:
        return UNKNOWN_SIZE_PART
    needed = math.ceil(length / (MAX_PARTS - 1))
    return max(MIN_PART, math.ceil(needed / (1 << 20)) * (1 << 20))


def copy(
    key: str, data_url: str, metadata_url: str | None, download: Download, target: Target, *, in_flight: int = 2
) -> Copied:
    """Stream ``data_url`` (after the header from ``metadata_url``) into ``key``: while parts upload,
    the next one downloads. Parts are filled in a few buffers allocated once and reused, so memory
    stays the same whatever the file's size."""
    columns = header_columns(download.small(metadata_url, 1 << 20)) if metadata_url else None
    head = header_line(columns) if columns else b""
    length, chunks = download.stream(data_url)
    size = part_size(None if length is None else length + len(head))
    upload = target.start(key)
    free: list[bytearray] = []
    pending: deque[tuple[Future[None], bytearray]] = deque()
    written = 0
    parts = 0
    try:
        with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="upload-part") as pool:

            def send(buffer: bytearray, filled: int) -> None:
                nonlocal written, parts
                parts += 1
                written += filled
                body = buffer if filled == len(buffer) else bytes(memoryview(buffer)[:filled])
                pending.append((pool.submit(upload.part, body, parts), buffer))

            def next_buffer() -> bytearray:
                while len(pending) >= in_flight:
                    future, done_with = pending.popleft()
                    future.result()
                    free.append(done_with)
                return free.pop() if free else bytearray(size)

            buffer, filled = next_buffer(), 0
            if head:
                buffer[: len(head)] = head
                filled = len(head)
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    take = min(len(view), size - filled)
                    buffer[filled : filled + take] = view[:take]
                    filled += take
                    view = view[take:]
                    if filled == size:
                        send(buffer, filled)
                        buffer, filled = next_buffer(), 0
            if filled or parts == 0:
                send(buffer, filled)
            while pending:
                pending.popleft()[0].result()
        version = upload.complete()
    except BaseException:
        for future, _ in pending:
            future.cancel()
        upload.abort()
        raise
    return Copied(size=written, version_id=version, header=columns, parts=parts)
