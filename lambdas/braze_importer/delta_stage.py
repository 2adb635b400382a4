"""The pump's delta stage: between reading and batching, each attributes object becomes its delta.

Look-ups never stall the send pipeline: attributes objects are gathered in windows of up to
``window`` users, each window's records are fetched in a worker thread (one BatchGetItem of up to 100
keys) while the following windows are read, and up to ``lookups_ahead`` windows are in flight. A window
is diffed once its records are in, in file order. Commits run in worker threads too, one job per
request Braze accepted, and never hold the pump up unless ``max_commit_jobs`` are already waiting.

A record read before another object of the same user was diffed in this invocation may be behind what
Braze holds by the time it is used. Such a user (one with a delta still uncommitted, or committed after
its window's records were fetched) is sent in full: every value goes, and the store's conditional
commit marks what the other object set ``UNKNOWN`` if it committed in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .delta_store import DeltaStore
from .deltas import Changes, Record, diff, sent_whole, unanswered, user_key

if TYPE_CHECKING:
    from .engine import Counters, Item

logger = logging.getLogger(__name__)

# Epochs of finished commits kept for staleness checks; older ones are pruned past this many.
_PRUNE_AT = 50_000


@dataclass(slots=True)
class DeltaOptions:
    """How a run diffs: the store, records' maximum age, whether the whole file is a full send, the
    workspace's maximum array length (None: unknown), and how far look-ups and commits may run ahead."""

    store: DeltaStore
    max_age_seconds: float
    full: bool = False
    max_array: int | None = 25
    window: int = 100
    lookups_ahead: int = 4
    threads: int = 8
    max_commit_jobs: int = 64


class _Window:
    __slots__ = ("epoch", "future", "items", "keys", "records")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.keys: list[str | None] = []  # per item: its user's record key
        self.future: asyncio.Future[dict[str, Record]] | None = None
        self.records: dict[str, Record] = {}  # read at once (a store in this process)
        self.epoch = 0  # commits that finished before the look-up was submitted have a lower epoch


class DeltaStage:
    """See the module's docstring. ``push`` takes attributes items in file order and gives back the
    items ready for batching (``obj`` is then the delta to send, or None: nothing changed)."""

    def __init__(
        self,
        options: DeltaOptions,
        counters: Counters,
        time: Callable[[], float],
        settled: Callable[[list[int]], None],
        *,
        counted: int = 0,
    ) -> None:
        self._options = options
        self._counters = counters
        self._time = time
        # Told the indices of accepted objects once their records are written: only then are they
        # settled, so a checkpoint never skips an object whose record change could still be lost.
        self._settled = settled
        self._counted = counted  # objects below this index were diffed (and counted) by an earlier invocation
        # Look-ups have threads of their own: a backlog of writes never delays the next window's records.
        self._lookups = ThreadPoolExecutor(max_workers=options.lookups_ahead + 1, thread_name_prefix="delta-get")
        self._executor = ThreadPoolExecutor(max_workers=options.threads, thread_name_prefix="delta-put")
        # A store in this process (memory) is called inline: threads would only fight over the GIL.
        self._inline: bool = getattr(options.store, "in_process", False)
        self._open = _Window()
        self._windows: deque[_Window] = deque()
        self._commits: deque[asyncio.Future[None]] = deque()
        self._pending: dict[str, int] = {}  # user key -> deltas diffed but not committed or released
        self._done: dict[str, int] = {}  # user key -> epoch of its last finished commit
        self._epoch = 0

    # -- reading side -------------------------------------------------------------------------

    async def push(self, item: Item) -> list[Item]:
        """Take an attributes item; the items whose windows are ready, in file order."""
        window = self._open
        window.items.append(item)
        window.keys.append(user_key(item.obj))
        if len(window.items) < self._options.window:
            return []
        self._submit(window)
        ready: list[Item] = []
        while self._windows and (
            len(self._windows) > self._options.lookups_ahead
            or self._windows[0].future is None
            or self._windows[0].future.done()
        ):
            ready += await self._diff(self._windows[0])  # still queued while diffed: _prune keeps its epoch
            self._windows.popleft()
        while len(self._commits) > self._options.max_commit_jobs:
            await self._commits.popleft()
        return ready

    async def finish(self) -> list[Item]:
        """Every item still held, diffed, in file order (the file is read to its end)."""
        if self._open.items:
            self._submit(self._open)
        ready: list[Item] = []
        while self._windows:
            ready += await self._diff(self._windows[0])
            self._windows.popleft()
        return ready

    def _submit(self, window: _Window) -> None:
        keys = [k for k in window.keys if k is not None]
        window.epoch = self._epoch
        if keys and self._inline:
            try:
                window.records = self._options.store.get_many(keys)
            except Exception:
                self._counters.delta_lookup_errors += len(keys)
        elif keys:
            loop = asyncio.get_running_loop()
            window.future = loop.run_in_executor(self._lookups, self._options.store.get_many, keys)
        self._windows.append(window)
        self._open = _Window()

    async def _diff(self, window: _Window) -> list[Item]:
        records = window.records
        if window.future is not None:
            try:
                records = await window.future
            except Exception:
                self._counters.delta_lookup_errors += sum(1 for k in window.keys if k is not None)
        options, counters, pending, done = self._options, self._counters, self._pending, self._done
        now = self._time()
        for item, key in zip(window.items, window.keys, strict=True):
            if key is None:
                continue  # names no user the store can key: sent as it is
            stale = key in pending or done.get(key, -1) >= window.epoch
            try:
                delta = diff(
                    item.obj,
                    records.get(key),
                    now=now,
                    max_age_seconds=options.max_age_seconds,
                    full=options.full or stale,
                    max_array=options.max_array,
                )
            except Exception as exc:
                logger.warning("attributes object sent whole: its delta failed", extra={"error": type(exc).__name__})
                delta = sent_whole(item.obj, records.get(key))
            if item.index >= self._counted:  # re-read after a pause: counted by the invocation that read it
                counters.values_read += delta.read
                counters.values_sent += delta.sent
                counters.values_skipped += delta.skipped
                counters.users_too_large += delta.too_large
            if delta.send is None:
                counters.objects_unchanged += 1
                item.obj = None
                continue
            item.obj = delta.send
            if delta.changes is not None:
                item.delta = delta
                item.user = key
                pending[key] = pending.get(key, 0) + 1
        return window.items

    # -- settling side ------------------------------------------------------------------------

    def accepted(self, items: list[Item]) -> None:
        """Braze took these items' objects (each has a delta): commit their changes, then settle them."""
        self._commit([(i.user, i.delta.changes) for i in items], [i.index for i in items])  # type: ignore[misc,union-attr]

    def unanswered(self, items: list[Item]) -> None:
        """Braze may or may not have applied these: the records forget what they set."""
        self._commit([(i.user, unanswered(i.delta)) for i in items if i.delta is not None])  # type: ignore[misc]

    def refused(self, items: list[Item]) -> None:
        """Braze refused these: the records stay as they are (if an earlier attempt went unanswered,
        they already forgot what it set: see ``unsure``)."""
        for item in items:
            if item.delta is not None:
                self._release(item.user)  # type: ignore[arg-type]
                item.delta = None

    def unsure(self, items: list[Item]) -> None:
        """An attempt of these went unanswered: Braze may have applied it, whatever comes next (an
        answer, a refusal, a pause, the end of the function). The records forget what they set now;
        a later acceptance's write, conditional on the version read, then finds them changed."""
        work = [(i.user, unanswered(i.delta)) for i in items if i.delta is not None and not i.maybe_applied]
        for item in items:
            item.maybe_applied = True
        self._commit(work, release=False)  # type: ignore[arg-type]

    def _commit(
        self, work: list[tuple[str, Changes | None]], settle: list[int] | None = None, *, release: bool = True
    ) -> None:
        if not work:
            return
        keys = [key for key, _ in work] if release else []
        writes = [(key, changes) for key, changes in work if changes]
        now = self._time()
        if self._inline:
            self._committed(keys, self._commit_many(writes, now), settle)
            return
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._commit_many, writes, now)

        def finished(f: asyncio.Future[int]) -> None:
            if not f.cancelled():
                self._committed(keys, f.result(), settle)

        future.add_done_callback(finished)
        self._commits.append(future)  # type: ignore[arg-type]

    def _commit_many(self, writes: list[tuple[str, Changes]], now: float) -> int:
        """The store's commit of ``writes``; how many users' records could not be written."""
        if not writes:
            return 0
        try:
            return self._options.store.commit_many(writes, now)
        except Exception:
            return len(writes)

    def _committed(self, keys: list[str], errors: int, settle: list[int] | None) -> None:
        self._counters.delta_commit_errors += errors
        if settle:
            self._settled(settle)
        for key in keys:
            self._done[key] = self._epoch
            self._release(key)
        self._epoch += 1
        if len(self._done) > _PRUNE_AT:
            self._prune()

    def _release(self, key: str) -> None:
        left = self._pending.get(key, 0) - 1
        if left > 0:
            self._pending[key] = left
        else:
            self._pending.pop(key, None)

    def _prune(self) -> None:
        oldest = min((w.epoch for w in self._windows), default=self._epoch)
        oldest = min(oldest, self._epoch)
        self._done = {k: e for k, e in self._done.items() if e >= oldest}

    async def close(self) -> None:
        """Wait for every commit, then stop the worker threads (look-ups still running are dropped)."""
        while self._commits:
            future = self._commits.popleft()
            await asyncio.wait([future])
        for window in self._windows:
            if window.future is not None:
                window.future.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._lookups.shutdown(wait=False, cancel_futures=True)
