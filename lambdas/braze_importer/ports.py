"""The small interfaces the importer's domain depends on; adapters implement them."""

from __future__ import annotations

import asyncio
import random
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol


class UnreadableInput(Exception):
    """The file cannot be read on from ``offset`` (decompressed bytes): truncated or corrupt."""

    reason = "corrupt_file"

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"unreadable at byte {offset}: {message}")
        self.offset = offset
        self.message = message


class SourceGone(UnreadableInput):
    """The object version the run is pinned to no longer exists (deleted, or overwritten in a
    bucket without versioning): the file cannot be read on, now or later."""

    reason = "source_gone"


class SourceDenied(UnreadableInput):
    """S3 refused to read the pinned object version (403): it may have been deleted (S3 answers a
    reader without s3:ListBucket so), or the function lost access to it. A resume can finish it."""

    reason = "source_access_denied"


class Delivery(Enum):
    ANSWERED = "answered"  # Braze answered: the status says what happened
    NOT_SENT = "not_sent"  # the request never reached Braze (connection refused, connect timeout)
    AMBIGUOUS = "ambiguous"  # sent, but no answer: Braze may or may not have stored it


@dataclass(frozen=True, slots=True)
class BrazeAnswer:
    delivery: Delivery
    status: int = 0
    body: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None  # X-RateLimit-Limit
    remaining: int | None = None  # X-RateLimit-Remaining
    reset_at: float | None = None  # X-RateLimit-Reset, UNIX seconds
    retry_after: float | None = None  # Retry-After or X-Ratelimit-Retry-After, seconds from now
    detail: str = ""  # transport error class, for reports


class Group(Enum):
    """Braze endpoints that share one rate limit: runs divide a group's limit among themselves
    only, so catalog and delete traffic never eats /users/track's."""

    TRACK = "track"  # /users/track: the workspace's limit (3,000 per 3 s unless raised)
    CATALOG = "catalog"  # the asynchronous catalog item endpoints: 16,000 per minute together
    USER_DELETE = "user_delete"  # /users/delete: 20,000 per minute


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One Braze REST endpoint: a method and a path (below the REST endpoint's base URL)."""

    method: str
    path: str
    group: Group

    @property
    def label(self) -> str:
        """How reports name it: the path alone for a POST (``/users/track``), else ``PUT /catalogs/x/items``."""
        return self.path if self.method == "POST" else f"{self.method} {self.path}"


TRACK = Endpoint("POST", "/users/track", Group.TRACK)
USERS_DELETE = Endpoint("POST", "/users/delete", Group.USER_DELETE)


def catalog_items(catalog: str, method: str) -> Endpoint:
    """The asynchronous bulk endpoint of a catalog's items: PUT replaces (or creates), DELETE deletes."""
    return Endpoint(method, f"/catalogs/{catalog}/items", Group.CATALOG)


class BrazeApi(Protocol):
    async def send(self, endpoint: Endpoint, body: bytes) -> BrazeAnswer: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def time(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...
    def jitter(self) -> float:
        """A uniform random number in [0, 1)."""
        ...


class SystemClock:
    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def jitter(self) -> float:
        return self._random.random()


@dataclass(frozen=True, slots=True)
class ObjectRef:
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class SeekPoint:
    """Where inflating a gzip file can restart: ``out_offset`` bytes of output were produced when
    the compressed stream stood at byte ``in_offset`` (with ``bits`` of the byte before it still
    unread); ``window`` is the last 32 KB of output before that point."""

    out_offset: int
    in_offset: int
    bits: int
    window: bytes

    @property
    def read_from(self) -> int:
        """The compressed byte a resume reads from: the one holding the unread bits, if any."""
        return self.in_offset - (1 if self.bits else 0)

    def to_bytes(self) -> bytes:
        return struct.pack("<QQB", self.out_offset, self.in_offset, self.bits) + zlib.compress(self.window, 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> SeekPoint:
        out_offset, in_offset, bits = struct.unpack_from("<QQB", data)
        return cls(out_offset, in_offset, bits, zlib.decompress(data[17:]))


class ObjectSource(Protocol):
    def chunks(
        self,
        ref: ObjectRef,
        offset: int,
        gzip: bool,
        *,
        resume_from: SeekPoint | None = None,
        on_point: Callable[[SeekPoint], None] | None = None,
    ) -> Iterator[bytes]:
        """Decompressed bytes of the object from ``offset`` on (offset in decompressed bytes).

        For gzip, ``resume_from`` (a seek point at or before ``offset``) saves inflating from
        byte 0, and ``on_point`` is given seek points as the stream is read."""
        ...

    def read_range(self, ref: ObjectRef, start: int, length: int) -> tuple[bytes, int]:
        """``length`` raw bytes of the object version from byte ``start`` (fewer at its end, none
        past it) and the object's size, for formats read by random access (Parquet's footer and
        row groups, Avro's header); raises :class:`SourceGone` or :class:`SourceDenied` as
        :meth:`chunks` does."""
        ...

    def is_gzip(self, ref: ObjectRef) -> bool:
        """Whether the object is gzip, told by its first bytes; raises :class:`SourceGone` or
        :class:`SourceDenied` when they cannot be read."""
        ...


class SeekPointStore(Protocol):
    """The latest seek point of a gzip run, kept beside its checkpoint."""

    def load(self, run_id: str) -> SeekPoint | None: ...
    def save(self, run_id: str, point: SeekPoint) -> None: ...


class OutputStore(Protocol):
    def put(self, key: str, body: bytes, content_type: str) -> None: ...


class Continuer(Protocol):
    def invoke_async(self, payload: dict[str, Any]) -> None: ...
