"""Copy a staged CI360 file into S3: the header row, then the data, streamed part by part.

Memory holds a few parts at a time whatever the file's size; nothing touches the disk. A copy
that cannot finish before the invocation's time limit stops at a part boundary and hands over a
checkpoint (the multipart upload, the parts done with their ETags, the byte offset in the staged
file); the next invocation continues from there. A failed copy aborts its multipart upload, so no
orphaned parts are left behind.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import logging
import math
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

CRC32 = "CRC32"  # S3 checks every part against it, and the object keeps a checksum of the parts
MIN_PART = 8 << 20  # S3 needs at least 5 MiB for every part but the last
MAX_PARTS = 10_000
UNKNOWN_SIZE_PART = 64 << 20
METADATA_LIMIT = 1 << 20
IDENTITY = ("", "identity")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Staged:
    """An open download of the staged file, from ``offset``: the bytes exactly as stored (never
    decoded), the file's total size when known, and what pins and describes it."""

    size: int | None
    etag: str | None
    content_type: str | None
    content_encoding: str | None
    chunks: Iterator[bytes]


class Download(Protocol):
    def small(self, url: str, limit: int) -> bytes: ...
    def stream(self, url: str, *, offset: int = 0, etag: str | None = None) -> Staged: ...


Part = tuple[int, str, str | None]  # (number, ETag, the checksum S3 verified the part against)


class MultipartUpload(Protocol):
    upload_id: str
    checksum: str | None  # the algorithm every part is checked with (None: an upload without checksums)

    def part(self, data: bytes | bytearray | memoryview, number: int) -> tuple[str, str | None]:
        """Upload part ``number`` (from 1) and return its ETag and checksum; parts may arrive out
        of order. ``data`` is only valid until the call returns (its buffer is reused)."""
        ...

    def complete(self, parts: list[Part]) -> str | None:
        """Finish the upload from its parts in order; returns the object's version id."""
        ...

    def abort(self) -> None: ...


class Target(Protocol):
    def start(self, key: str, *, content_type: str, content_encoding: str | None) -> MultipartUpload: ...
    def resume(self, key: str, upload_id: str, *, checksum: str | None) -> MultipartUpload: ...


class PermanentFailure(Exception):
    """Retrying will not help (an expired URL, a refused host, unreadable metadata)."""


@dataclass(slots=True)
class Checkpoint:
    """Where a copy stopped: enough to continue it in another invocation."""

    upload_id: str
    part_size: int
    offset: int  # the next byte of the staged file to copy
    written: int  # bytes already in the parts (the header row included)
    parts: list[Part] = field(default_factory=list)
    source_etag: str | None = None
    header: list[str] | None = None
    hops: int = 0
    checksum: str | None = None  # the upload's checksum algorithm (None: a checkpoint from before checksums)

    def dumps(self) -> str:
        """Compact enough for a DynamoDB item at S3's 10,000 parts: parts are always 1..n in order,
        so only their ETags and checksums are kept, packed 16 bytes each when they are MD5 hex (as
        S3's are) and 4 bytes each when every part has a CRC32 (as the copier's uploads do); any
        other checksums are listed as they are."""
        etags = [e for _, e, _ in self.parts]
        assert [n for n, _, _ in self.parts] == list(range(1, len(etags) + 1))
        packed = all(_MD5_ETAG.fullmatch(e) for e in etags)
        sums = [c for _, _, c in self.parts]
        return orjson.dumps(
            {
                "upload_id": self.upload_id, "part_size": self.part_size, "offset": self.offset,
                "written": self.written, "source_etag": self.source_etag, "header": self.header, "hops": self.hops,
                "etags": base64.b64encode(b"".join(bytes.fromhex(e[1:-1]) for e in etags)).decode() if packed
                else etags,
                "checksum": self.checksum,
                "checksums": base64.b64encode(b"".join(base64.b64decode(c) for c in sums)).decode()  # type: ignore[arg-type]
                if self.checksum == CRC32 and all(sums) else sums if any(sums) else None,
            }
        ).decode()  # fmt: skip

    @classmethod
    def loads(cls, text: str) -> Checkpoint:
        raw: dict[str, Any] = orjson.loads(text)
        # Fields a later release added are left out, so a rollback still continues its jobs.
        raw = {k: v for k, v in raw.items() if k in _CHECKPOINT_FIELDS or k in ("etags", "checksums")}
        etags = raw.pop("etags")
        if isinstance(etags, str):
            packed = base64.b64decode(etags)
            etags = [f'"{packed[i : i + 16].hex()}"' for i in range(0, len(packed), 16)]
        stored_sums = raw.pop("checksums", None)
        sums: list[str | None]
        if isinstance(stored_sums, list):  # listed: not every part had a 4-byte CRC32
            sums = [None if c is None else str(c) for c in stored_sums]
        else:
            packed_sums = base64.b64decode(stored_sums) if isinstance(stored_sums, str) else b""
            sums = [base64.b64encode(packed_sums[i : i + 4]).decode() for i in range(0, len(packed_sums), 4)]
        sums = sums or [None] * len(etags)
        return cls(**raw, parts=[(n, str(e), c) for n, (e, c) in enumerate(zip(etags, sums, strict=True), start=1)])


_MD5_ETAG = re.compile(r'"[0-9a-f]{32}"')
_CHECKPOINT_FIELDS = frozenset(Checkpoint.__dataclass_fields__) - {"parts"}
# The job record holding the checkpoint is a DynamoDB item (400 KB with its other fields).
CHECKPOINT_LIMIT = 350_000


@dataclass(frozen=True, slots=True)
class Copied:
    size: int
    version_id: str | None
    header: list[str] | None
    parts: int


@dataclass(frozen=True, slots=True)
class HandedOver:
    checkpoint: Checkpoint
    stored: str  # the checkpoint as the job record keeps it (``checkpoint.dumps()``)


def header_columns(metadata: bytes) -> list[str] | None:
    """Column names from CI360's metadata: a JSON array of {"columnName", "dataType"}, or a CSV header."""
    try:
        text = metadata.decode("utf-8-sig").strip()
    except UnicodeDecodeError as exc:
        raise PermanentFailure(f"the metadata file is not UTF-8 text (byte {exc.start})") from None
    if not text:
        return None
    columns: Any = None
    if text.startswith("["):
        try:
            columns = orjson.loads(text)
        except orjson.JSONDecodeError:
            columns = None  # a CSV header whose first name is bracketed, such as "[id],[name]"
    if columns is not None:
        if not isinstance(columns, list) or not all(isinstance(c, dict) and c.get("columnName") for c in columns):
            raise PermanentFailure('the metadata JSON must be an array of {"columnName", "dataType"}')
        return [str(c["columnName"]) for c in columns]
    # Read as CSV: only CR and LF end a row (not U+2028, U+0085 or the \x1c-\x1e separators
    # that str.splitlines() also breaks on), and a quoted name may hold a comma.
    try:
        first = next(csv.reader(io.StringIO(text, newline="")), None)
    except csv.Error as exc:
        raise PermanentFailure(f"the metadata file is not a CSV header ({exc})") from None
    return first or None


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


def _header_bytes(columns: list[str] | None, encoding: str | None) -> bytes:
    if not columns:
        return b""
    line = header_line(columns)
    if (encoding or "").lower() in IDENTITY:
        return line
    if encoding and encoding.lower() == "gzip":
        return gzip.compress(line, mtime=0)  # a gzip member of its own: concatenated members are one stream
    raise PermanentFailure(f"a header row cannot be added to a file stored with Content-Encoding {encoding}")


def copy(
    key: str,
    data_url: str,
    metadata_url: str | None,
    download: Download,
    target: Target,
    *,
    checkpoint: Checkpoint | None = None,
    hand_over: Callable[[], bool] = lambda: False,
    in_flight: int = 3,
    buffer_budget: int | None = None,
    checkpoint_limit: int = CHECKPOINT_LIMIT,
    check_columns: Callable[[list[str] | None], None] | None = None,
) -> Copied | HandedOver:
    """Stream ``data_url`` (after the header from ``metadata_url``) into ``key``: while parts
    upload, the next one downloads. Parts are filled in buffers allocated once and reused, so
    memory stays the same whatever the file's size (``buffer_budget`` bounds it: fewer parts fly
    when parts are large). ``hand_over`` is asked at each part boundary; when it says so, the copy
    stops there and returns a checkpoint to continue from. ``check_columns`` may refuse the
    metadata's columns (raising :class:`PermanentFailure`) before anything is copied."""
    if checkpoint is None:
        columns = header_columns(download.small(metadata_url, METADATA_LIMIT)) if metadata_url else None
        if check_columns is not None:
            check_columns(columns)
        staged = download.stream(data_url)
        head = _header_bytes(columns, staged.content_encoding)
        size = part_size(None if staged.size is None else staged.size + len(head))
        upload = target.start(
            key, content_type=staged.content_type or "text/csv", content_encoding=staged.content_encoding
        )
        state = Checkpoint(upload.upload_id, size, 0, 0, [], staged.etag, columns, checksum=upload.checksum)
        if buffer_budget is not None and 2 * size > buffer_budget:
            _abort(upload, MemoryError())
            _close(staged.chunks)
            raise PermanentFailure(
                f"the file needs {size >> 20} MiB parts (S3 allows 10,000): give the copier at least "
                f"{(2 * size) * 5 // 3 >> 20} MB of memory"
            )
    else:
        state, head = checkpoint, b""
        upload = target.resume(key, checkpoint.upload_id, checksum=checkpoint.checksum)
        try:
            staged = download.stream(data_url, offset=state.offset, etag=state.source_etag)
        except PermanentFailure as exc:
            _abort(upload, exc)
            raise

    def stop_here() -> bool:
        if not hand_over():
            return False
        if state.source_etag is None:
            raise PermanentFailure("the staged file is too large for one invocation and has no ETag to continue by")
        return True

    if buffer_budget is not None:
        in_flight = max(1, min(in_flight, buffer_budget // state.part_size - 1))
    try:
        stopped = _pump(staged.chunks, head, upload, state, stop_here, in_flight, staged.size)
        if stopped:
            state.hops += 1
            stored = state.dumps()
            if len(stored) > checkpoint_limit:
                too_large = f"its checkpoint of {len(state.parts)} parts is too large for the job record"
                raise PermanentFailure(f"the copy cannot hand over: {too_large}")
            return HandedOver(state, stored)
        version = upload.complete(sorted(state.parts))
    except BaseException as exc:
        # A continued copy keeps its upload through a transient failure: the retry goes on from
        # the checkpoint in the job record (parts past it are simply uploaded again).
        if checkpoint is None or isinstance(exc, PermanentFailure):
            _abort(upload, exc)
        raise
    return Copied(size=state.written, version_id=version, header=state.header, parts=len(state.parts))


def _abort(upload: MultipartUpload, cause: BaseException) -> None:
    """Abort the upload; if that fails too, the original failure stays the outcome."""
    try:
        upload.abort()
    except Exception as exc:
        logger.warning(
            "could not abort the multipart upload after %s: %s (S3's lifecycle rule removes it later)",
            type(cause).__name__,
            type(exc).__name__,
        )


def _pump(
    chunks: Iterator[bytes],
    head: bytes,
    upload: MultipartUpload,
    state: Checkpoint,
    hand_over: Callable[[], bool],
    in_flight: int,
    total: int | None = None,
) -> bool:
    """Copy ``chunks`` into parts; True when it stopped early to hand over. A part that ends the
    staged file (``total`` bytes) is never a hand-over point: the copy completes there instead."""
    size = state.part_size
    free: list[bytearray] = []
    pending: deque[tuple[Future[tuple[str, str | None]], bytearray, int, int, int]] = deque()
    number = len(state.parts)
    offset = state.offset  # staged bytes read into parts so far

    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="upload-part") as pool:

        def settle(block: bool) -> None:
            # Parts finish in order of submission here, so the checkpoint only ever names a
            # prefix of the file that is fully uploaded.
            while pending and (block or pending[0][0].done()):
                future, buffer, n, filled, through = pending.popleft()
                state.parts.append((n, *future.result()))
                state.written += filled
                state.offset = through
                free.append(buffer)

        def send(buffer: bytearray, filled: int) -> None:
            nonlocal number
            number += 1
            body = buffer if filled == len(buffer) else memoryview(buffer)[:filled]
            pending.append((pool.submit(upload.part, body, number), buffer, number, filled, offset))

        def next_buffer() -> bytearray:
            while len(pending) >= in_flight:
                future, *_ = pending[0]
                future.result()
                settle(block=False)
            settle(block=False)
            return free.pop() if free else bytearray(size)

        try:
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
                    offset += take
                    view = view[take:]
                    if filled == size:
                        send(buffer, filled)
                        buffer, filled = next_buffer(), 0
                        if (total is None or offset < total) and hand_over():
                            settle(block=True)
                            _close(chunks)
                            return True
            if filled or number == 0:
                send(buffer, filled)
            settle(block=True)
        except BaseException:
            for future, *_ in pending:
                future.cancel()
            raise
    return False


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
