"""The small interfaces the importer's domain depends on; adapters implement them."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
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


class BrazeTrack(Protocol):
    async def track(self, body: bytes) -> BrazeAnswer: ...


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


class ObjectSource(Protocol):
    def chunks(self, ref: ObjectRef, offset: int, gzip: bool) -> Iterator[bytes]:
        """Decompressed bytes of the object from ``offset`` on (offset in decompressed bytes)."""
        ...

    def is_gzip(self, ref: ObjectRef) -> bool: ...


class OutputStore(Protocol):
    def put(self, key: str, body: bytes, content_type: str) -> None: ...


class Continuer(Protocol):
    def invoke_async(self, payload: dict[str, Any]) -> None: ...
