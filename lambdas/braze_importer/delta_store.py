"""Where the records of what was last set per user live: a port, an in-memory store, and DynamoDB.

Both stores keep the same promise: what a fresh record claims, Braze holds. Each commit changes an
attribute only if the record still holds the value the delta was computed from; if another run changed
it meanwhile, the attribute becomes UNKNOWN instead (the next file resends it, which Braze takes as a
no-op). Two runs touching different attributes of one user both keep theirs. A rewrite whole checks the
record's version (every write counts one), so it cannot erase what another run marked UNKNOWN.

DynamoDB item of one user (table: partition key ``pk`` string, TTL attribute ``expires_at``, on demand):

- ``pk`` (S): ``deltas.user_key`` of the user ("e:<external_id>", "b:", "a:<label>:<name>", "m:", "p:");
- ``updated_at`` (N): when the record was last rewritten whole (epoch seconds; absent: stale);
- ``v`` (N): the record's version, one more on every write;
- ``expires_at`` (N): when the record was rewritten whole + the TTL (epoch seconds), for DynamoDB's TTL;
- ``a.<attribute>`` per Braze attribute: B for a scalar or a value sent whole (its JSON under 8 bytes,
  else an 8-byte digest; b"?" for UNKNOWN), L of S (sorted) for an array of strings, M of path -> B for a
  nested object (path: JSON array text; "*": the whole object's digest).

The importer needs dynamodb:BatchGetItem, PutItem and UpdateItem on the table, nothing else: a batch of
commits goes in TransactWriteItems, whose actions IAM checks as the PutItem and UpdateItem they are.
"""

from __future__ import annotations

import pickle
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from .deltas import FIELD_PREFIX, NEVER, UNKNOWN, Changes, Record, Value, apply, attribute_after, record_size

BATCH_GET_KEYS = 100  # BatchGetItem's limit
UPDATE_ATTRIBUTES = 40  # attributes per UpdateItem: keeps expressions far under DynamoDB's 4 KB
UPDATE_BYTES = 150_000  # new + expected values per UpdateItem: keeps requests under the 400 KB item limit
GET_ATTEMPTS = 8
TRANSACT_ACTIONS = 100  # TransactWriteItems' limit
TRANSACT_BYTES = 3_000_000  # estimated bytes written per transaction: its limit is 4 MB of items
# Why an action was not applied, when trying it again may apply it (the others were not at fault).
TRANSIENT_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


class DeltaStore(Protocol):
    """The records of what was last set per user (``deltas.user_key`` keys)."""

    in_process: bool
    """True: calls are cheap and never wait on the network (call them inline, not from a thread)."""

    def get_many(self, keys: Iterable[str]) -> dict[str, Record]:
        """The records of those keys that have one."""
        ...

    def commit(self, key: str, changes: Changes, now: float) -> None:
        """Apply ``changes`` (Braze accepted the object they came with) to ``key``'s record."""
        ...

    def commit_many(self, work: Sequence[tuple[str, Changes]], now: float) -> int:
        """``commit`` each (key, changes) in order; how many of them could not be written (never raises
        for those: the caller counts them)."""
        ...


class DeltaStoreUnavailable(Exception):
    """DynamoDB kept some keys unprocessed through every retry."""


class _Packed(MutableMapping[str, Record]):
    """Records kept as bytes, as a table holds items: millions of records held as Python objects would
    make every full pass of the garbage collector walk them (half a benchmark's time, measured)."""

    def __init__(self) -> None:
        self._items: dict[str, bytes] = {}

    def __getitem__(self, key: str) -> Record:
        return pickle.loads(self._items[key])  # noqa: S301 - bytes this class wrote

    def __setitem__(self, key: str, record: Record) -> None:
        self._items[key] = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)

    def __delitem__(self, key: str) -> None:
        del self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class MemoryDeltaStore:
    """Records in memory, with the DynamoDB store's conditional semantics (for tests, the sandbox, benches)."""

    in_process = True

    def __init__(self) -> None:
        self.records: MutableMapping[str, Record] = _Packed()
        self._lock = threading.Lock()

    def get_many(self, keys: Iterable[str]) -> dict[str, Record]:
        with self._lock:
            records = self.records
            return {k: records[k] for k in keys if k in records}

    def commit(self, key: str, changes: Changes, now: float) -> None:
        if not changes:
            return
        with self._lock:
            current = self.records.get(key)
            version = current.version + 1 if current is not None else 1
            values = dict(current.values) if current is not None else {}
            updated_at = current.updated_at if current is not None else NEVER
            if changes.forget:
                for name in changes.remove:
                    values.pop(name, None)
                self.records[key] = Record(values, NEVER, version)
                return
            if changes.refreshed_at is not None:
                if (current.version if current is not None else None) == changes.expected_version:
                    new = apply(current, changes)
                    assert new is not None
                    self.records[key] = new
                else:
                    values.update(dict.fromkeys(changes.touched(), UNKNOWN))
                    self.records[key] = Record(values, updated_at, version)
                return
            moved = changes.expected_version is not None and (
                current is None or current.version != changes.expected_version
            )
            for name in changes.touched():
                if moved or name in changes.unknown or values.get(name) != changes.expected.get(name):
                    values[name] = UNKNOWN
                    continue
                after = None if name in changes.remove else attribute_after(values.get(name), name, changes)
                if after is None:
                    values.pop(name, None)
                else:
                    values[name] = after
            self.records[key] = Record(values, updated_at, version)

    def commit_many(self, work: Sequence[tuple[str, Changes]], now: float) -> int:
        failed = 0
        for key, changes in work:
            try:
                self.commit(key, changes, now)
            except Exception:
                failed += 1
        return failed


# -- DynamoDB ----------------------------------------------------------------------------------


def _encode(value: Value) -> dict[str, Any]:
    if isinstance(value, bytes):
        return {"B": value}
    if isinstance(value, frozenset):
        return {"L": [{"S": item} for item in sorted(value)]}
    return {"M": {path: {"B": h} for path, h in value.items()}}


def _decode(value: dict[str, Any]) -> Value | None:
    if "B" in value:
        return bytes(value["B"])
    if "L" in value:
        return frozenset(item["S"] for item in value["L"])
    if "M" in value:
        return {path: bytes(h["B"]) for path, h in value["M"].items()}
    return None


def record_from_item(item: dict[str, Any]) -> Record:
    """The record an item holds (an item without ``updated_at`` reads as never refreshed: stale)."""
    values: dict[str, Value] = {}
    for name, raw in item.items():
        if name.startswith(FIELD_PREFIX):
            value = _decode(raw)
            if value is not None:
                values[name[len(FIELD_PREFIX) :]] = value
    stamp = item.get("updated_at")
    version = item.get("v")
    return Record(values, float(stamp["N"]) if stamp else NEVER, int(version["N"]) if version else 0)


def _conditional(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _size(value: Value | None) -> int:
    if value is None:
        return 0
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, frozenset):
        return sum(len(item) + 4 for item in value)
    return sum(len(p) + len(h) + 4 for p, h in value.items())


def _names_size(names: list[str]) -> int:
    """An estimate of the bytes an update of these attributes' names writes."""
    return sum(len(name) + 64 for name in names) + 200


def _too_large(code: str | None, message: str) -> bool:
    """DynamoDB refused a write that would grow the item past its 400 KB."""
    return code in ("ValidationException", "ValidationError") and "size" in message


@dataclass(slots=True)
class _Write:
    """One user's changes in a batch of commits. ``action``: the one TransactWriteItems action that applies
    them (None: they take several writes, made one by one); ``size``: an estimate of the bytes it writes;
    ``chunk``: the attributes of a conditional update (on a conflict, each is tried alone)."""

    key: str
    changes: Changes
    action: dict[str, Any] | None = None
    size: int = 0
    chunk: list[str] | None = None
    tries: int = 0


class DynamoDeltaStore:
    """Records in a DynamoDB table (layout in the module's docstring).

    Reads are strongly consistent: the sandbox and schedules import one file right after another, and an
    eventually consistent read could return a record one commit behind, whose older value would then be
    dropped as "unchanged" while Braze holds the newer one. A strongly consistent read costs one read
    unit per 4 KB instead of half of one; a record of a few attributes is well under 4 KB.
    """

    in_process = False

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        *,
        ttl_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = GET_ATTEMPTS,
        transactions: bool = True,
    ) -> None:
        self.db = dynamodb
        self.table = table
        self.ttl_seconds = ttl_seconds
        self.sleep = sleep
        self.attempts = attempts
        # False: commit_many writes one user at a time (the sandbox: moto copies the whole table for
        # every action of a transaction, so transactions there grow with the square of the records).
        self.transactions = transactions

    def get_many(self, keys: Iterable[str]) -> dict[str, Record]:
        unique = list(dict.fromkeys(keys))
        found: dict[str, Record] = {}
        for start in range(0, len(unique), BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{"pk": {"S": k}} for k in unique[start : start + BATCH_GET_KEYS]],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(self.attempts):
                answer = self.db.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table, []):
                    found[item["pk"]["S"]] = record_from_item(item)
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._back_off(attempt)
            else:
                left = len(request.get(self.table, {}).get("Keys", []))
                raise DeltaStoreUnavailable(
                    f"DynamoDB left {left} record reads unprocessed after {self.attempts} tries"
                )
        return found

    def _back_off(self, attempt: int) -> None:
        # Full jitter backoff: 50 ms doubling, capped at 2 s.
        self.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))

    def commit(self, key: str, changes: Changes, now: float) -> None:
        if not changes:
            return
        if changes.forget:
            self._forget(key, changes.remove, now)
        elif changes.refreshed_at is not None:
            self._refresh(key, changes, now)
        else:
            if changes.unknown:
                self._mark_unknown(key, changes.unknown, now)
            # The version read, plus the writes that marked those unknown (one per UPDATE_ATTRIBUTES).
            self._update(key, changes, now, writes_before=-(-len(changes.unknown) // UPDATE_ATTRIBUTES))

    # -- many users at once --------------------------------------------------------------------

    def commit_many(self, work: Sequence[tuple[str, Changes]], now: float) -> int:
        """Users whose changes take one write go up to ``TRANSACT_ACTIONS`` in one TransactWriteItems: a
        call costs the client about what one PutItem does, so a first import is not capped by the
        client's CPU. Each action keeps its own condition; users whose changes take several writes are
        committed one by one. A key seen again waits for the next transaction, so its changes apply in
        order."""
        if not self.transactions:
            return sum(self._commit_alone(_Write(key, changes), now) for key, changes in work if changes)
        queue = [self._write(key, changes, now) for key, changes in work if changes]
        failed = 0
        while queue:
            batch: list[_Write] = []
            waiting: list[_Write] = []
            held: set[str] = set()  # keys with a write in this transaction, or waiting behind one
            size = 0
            for write in queue:
                if write.key in held:
                    waiting.append(write)
                elif write.action is None:
                    failed += self._commit_alone(write, now)
                elif not batch or (len(batch) < TRANSACT_ACTIONS and size + write.size <= TRANSACT_BYTES):
                    batch.append(write)
                    held.add(write.key)
                    size += write.size
                else:
                    waiting.append(write)
                    held.add(write.key)
            again, lost, tries = self._transact(batch, now) if batch else ([], 0, 0)
            failed += lost
            # What was not applied goes first: a key's later writes wait in ``waiting``, behind it.
            queue = again + waiting
            if tries:
                self._back_off(tries - 1)
        return failed

    def _write(self, key: str, changes: Changes, now: float) -> _Write:
        """``changes`` as a batch's write, with the one action that applies them when there is one."""
        if changes.forget:
            if len(changes.remove) <= UPDATE_ATTRIBUTES:
                action = {"Update": self._forget_request(key, changes.remove, now)}
                return _Write(key, changes, action, _names_size(changes.remove))
        elif changes.refreshed_at is not None:
            action = {"Put": self._refresh_request(key, changes, now)}
            return _Write(key, changes, action, record_size(changes.set))
        else:
            chunks = self._chunks(changes)
            if changes.unknown and not chunks and len(changes.unknown) <= UPDATE_ATTRIBUTES:
                action = {"Update": self._unknown_request(key, changes.unknown, now)}
                return _Write(key, changes, action, _names_size(changes.unknown))
            if not changes.unknown and len(chunks) == 1:
                ((names, weight),) = chunks
                action = {"Update": self._chunk_request(key, names, changes, now)}
                return _Write(key, changes, action, weight, chunk=names)
        return _Write(key, changes)

    def _commit_alone(self, write: _Write, now: float) -> int:
        """Commit one user's changes by themselves; 1 if they could not be written."""
        try:
            self.commit(write.key, write.changes, now)
        except Exception:
            return 1
        return 0

    def _transact(self, batch: list[_Write], now: float) -> tuple[list[_Write], int, int]:
        """Write ``batch`` in one transaction: the writes to submit again, how many users could not be
        written, and the most tries a write submitted again has made (0: none failed for a passing
        reason)."""
        try:
            self.db.transact_write_items(
                TransactItems=[write.action for write in batch],
                # One per call: botocore's retries resend it, so a call that applied is not applied twice.
                # A token derived from the content alone would also swallow, for 10 minutes, a later
                # identical transaction (another run marking the same attributes unknown in that second).
                ClientRequestToken=str(uuid.uuid4()),
            )
            return [], 0, 0
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") != "TransactionCanceledException":
                if _too_large(error.get("Code"), error.get("Message", "")):
                    # An item grown past 400 KB, reported for the whole call (as moto does): each user
                    # alone meets the per-user handling.
                    return [], sum(self._commit_alone(write, now) for write in batch), 0
                return [], len(batch), 0
            reasons = exc.response.get("CancellationReasons") or []
        except BotoCoreError:
            return [], len(batch), 0
        if len(reasons) != len(batch) or all((r.get("Code") or "None") == "None" for r in reasons):
            reasons = [{"Code": "TransactionConflict"}] * len(batch)  # no reason given: try again, bounded
        again: list[_Write] = []
        failed = tries = 0
        for write, reason in zip(batch, reasons, strict=True):
            code = reason.get("Code") or "None"
            if code == "None":
                again.append(write)  # not applied because another action failed
            elif code == "ConditionalCheckFailed":
                failed += self._settle(write, now, conflict=True)
            elif _too_large(code, reason.get("Message", "")):
                failed += self._settle(write, now, conflict=False)
            elif code in TRANSIENT_REASONS and write.tries + 1 < self.attempts:
                write.tries += 1
                tries = max(tries, write.tries)
                again.append(write)
            else:
                failed += 1
        return again, failed, tries

    def _settle(self, write: _Write, now: float, *, conflict: bool) -> int:
        """What the per-user path does when this write's condition failed (``conflict``) or its item
        would grow too large; 1 if the user's record could not be written."""
        assert write.action is not None
        try:
            if conflict and "Put" in write.action:
                self._mark_unknown(write.key, write.changes.touched(), now)
            elif conflict and write.chunk is not None:
                self._chunk_conflict(write.key, write.chunk, write.changes, now)
            elif not conflict and write.chunk is not None:
                self._forget(write.key, write.chunk, now)
            else:
                return 1  # an unconditional write, or a record rewritten whole, too large: as one by one
        except Exception:
            return 1
        return 0

    # -- one user ------------------------------------------------------------------------------

    def _refresh(self, key: str, changes: Changes, now: float) -> None:
        try:
            self.db.put_item(**self._refresh_request(key, changes, now))
        except ClientError as exc:
            if not _conditional(exc):
                raise
            # Another run wrote the record since it was read: what it says about the attributes this
            # object set may predate or follow ours at Braze. Those become unknown; the rest stays.
            self._mark_unknown(key, changes.touched(), now)

    def _refresh_request(self, key: str, changes: Changes, now: float) -> dict[str, Any]:
        assert changes.refreshed_at is not None
        item: dict[str, Any] = {
            "pk": {"S": key},
            "updated_at": {"N": repr(changes.refreshed_at)},
            "v": {"N": str((changes.expected_version or 0) + 1)},
            "expires_at": {"N": str(int(now + self.ttl_seconds))},
        }
        for name, value in changes.set.items():
            item[FIELD_PREFIX + name] = _encode(value)
        expected = changes.expected_version
        condition: dict[str, Any]
        if expected is None:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        elif expected == 0:
            condition = {"ConditionExpression": "attribute_not_exists(v)"}
        else:
            condition = {"ConditionExpression": "v = :v", "ExpressionAttributeValues": {":v": {"N": str(expected)}}}
        return {"TableName": self.table, "Item": item, **condition}

    def _update(self, key: str, changes: Changes, now: float, *, writes_before: int = 0) -> None:
        # Each write adds one to the version: the k-th chunk expects the version read plus k, plus the
        # writes made for these changes before it.
        for k, (names, _) in enumerate(self._chunks(changes)):
            self._update_chunk(key, names, changes, now, k + writes_before)

    def _chunks(self, changes: Changes) -> list[tuple[list[str], int]]:
        """The attributes an update changes (those marked unknown apart), in chunks of one UpdateItem
        each, with each chunk's weight (an estimate of its bytes)."""
        chunks: list[tuple[list[str], int]] = []
        chunk: list[str] = []
        size = 0
        for name in changes.touched():
            if name in changes.unknown:
                continue
            weight = _size(changes.expected.get(name)) + _size(changes.set.get(name)) + 64
            if chunk and (len(chunk) >= UPDATE_ATTRIBUTES or size + weight > UPDATE_BYTES):
                chunks.append((chunk, size))
                chunk, size = [], 0
            chunk.append(name)
            size += weight
        if chunk:
            chunks.append((chunk, size))
        return chunks

    def _update_chunk(self, key: str, names: list[str], changes: Changes, now: float, writes_before: int = 0) -> None:
        try:
            self.db.update_item(**self._chunk_request(key, names, changes, now, writes_before))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if _conditional(exc):
                self._chunk_conflict(key, names, changes, now)
            elif _too_large(error.get("Code"), str(exc)):
                # Concurrent runs grew the item past DynamoDB's limit: the user is too large to record.
                self._forget(key, names, now)
            else:
                raise

    def _chunk_conflict(self, key: str, names: list[str], changes: Changes, now: float) -> None:
        # Another write came in since the record was read (another run, or another object of the user
        # sent at the same time): which value Braze kept of these attributes is unknown.
        self._mark_unknown(key, names, now)

    def _chunk_request(
        self, key: str, names: list[str], changes: Changes, now: float, writes_before: int = 0
    ) -> dict[str, Any]:
        sets = ["#exp = if_not_exists(#exp, :exp)"]
        removes: list[str] = []
        conditions: list[str] = []
        if changes.expected_version is not None:
            conditions.append("#v = :ver")
        attr_names = {"#exp": "expires_at", "#v": "v"}
        attr_values: dict[str, Any] = {":exp": {"N": str(int(now + self.ttl_seconds))}, ":one": {"N": "1"}}
        if changes.expected_version is not None:
            attr_values[":ver"] = {"N": str(changes.expected_version + writes_before)}
        for i, name in enumerate(names):
            ref = f"#n{i}"
            attr_names[ref] = FIELD_PREFIX + name
            old = changes.expected.get(name)
            after = None if name in changes.remove else attribute_after(old, name, changes)
            if after is None:
                removes.append(ref)
            else:
                sets.append(f"{ref} = :v{i}")
                attr_values[f":v{i}"] = _encode(after)
            if old is None:
                conditions.append(f"attribute_not_exists({ref})")
            else:
                conditions.append(f"{ref} = :e{i}")
                attr_values[f":e{i}"] = _encode(old)
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "") + " ADD #v :one"
        return {
            "TableName": self.table,
            "Key": {"pk": {"S": key}},
            "UpdateExpression": expression,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": attr_names,
            "ExpressionAttributeValues": attr_values,
        }

    def _mark_unknown(self, key: str, names: list[str], now: float) -> None:
        """Unconditionally: these attributes' values at Braze are unknown."""
        for start in range(0, len(names), UPDATE_ATTRIBUTES):
            self.db.update_item(**self._unknown_request(key, names[start : start + UPDATE_ATTRIBUTES], now))

    def _unknown_request(self, key: str, names: list[str], now: float) -> dict[str, Any]:
        refs = [f"#n{i}" for i in range(len(names))]
        attr_names = dict(zip(refs, (FIELD_PREFIX + name for name in names), strict=True))
        attr_names |= {"#exp": "expires_at", "#v": "v"}
        return {
            "TableName": self.table,
            "Key": {"pk": {"S": key}},
            "UpdateExpression": "SET #exp = if_not_exists(#exp, :exp), "
            + ", ".join(f"{ref} = :unknown" for ref in refs)
            + " ADD #v :one",
            "ExpressionAttributeNames": attr_names,
            "ExpressionAttributeValues": {
                ":exp": {"N": str(int(now + self.ttl_seconds))},
                ":unknown": {"B": UNKNOWN},
                ":one": {"N": "1"},
            },
        }

    def _forget(self, key: str, names: list[str], now: float) -> None:
        """The record becomes stale (ignored until rewritten whole) and drops these attributes."""
        names = list(names)
        first = True
        while first or names:
            part, names = names[:UPDATE_ATTRIBUTES], names[UPDATE_ATTRIBUTES:]
            self.db.update_item(**self._forget_request(key, part, now))
            first = False

    def _forget_request(self, key: str, names: list[str], now: float) -> dict[str, Any]:
        refs = [f"#n{i}" for i in range(len(names))]
        attr_names = dict(zip(refs, (FIELD_PREFIX + name for name in names), strict=True))
        attr_names |= {"#exp": "expires_at", "#v": "v", "#u": "updated_at"}
        return {
            "TableName": self.table,
            "Key": {"pk": {"S": key}},
            "UpdateExpression": "SET #exp = if_not_exists(#exp, :exp) REMOVE "
            + ", ".join(["#u", *refs])
            + " ADD #v :one",
            "ExpressionAttributeNames": attr_names,
            "ExpressionAttributeValues": {":exp": {"N": str(int(now + self.ttl_seconds))}, ":one": {"N": "1"}},
        }
