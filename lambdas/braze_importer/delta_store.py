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

The importer needs dynamodb:BatchGetItem, PutItem and UpdateItem on the table, nothing else.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from botocore.exceptions import ClientError

from .deltas import FIELD_PREFIX, NEVER, UNKNOWN, Changes, Record, Value, apply, attribute_after

BATCH_GET_KEYS = 100  # BatchGetItem's limit
UPDATE_ATTRIBUTES = 40  # attributes per UpdateItem: keeps expressions far under DynamoDB's 4 KB
UPDATE_BYTES = 150_000  # new + expected values per UpdateItem: keeps requests under the 400 KB item limit
GET_ATTEMPTS = 8


class DeltaStore(Protocol):
    """The records of what was last set per user (``deltas.user_key`` keys)."""

    def get_many(self, keys: Iterable[str]) -> dict[str, Record]:
        """The records of those keys that have one."""
        ...

    def commit(self, key: str, changes: Changes, now: float) -> None:
        """Apply ``changes`` (Braze accepted the object they came with) to ``key``'s record."""
        ...


class DeltaStoreUnavailable(Exception):
    """DynamoDB kept some keys unprocessed through every retry."""


class MemoryDeltaStore:
    """Records in a dict, with the DynamoDB store's conditional semantics (for tests, the sandbox, benches)."""

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}
        self._lock = threading.Lock()

    def get_many(self, keys: Iterable[str]) -> dict[str, Record]:
        with self._lock:
            return {k: self.records[k] for k in keys if k in self.records}

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
            for name in changes.touched():
                if name in changes.unknown or values.get(name) != changes.expected.get(name):
                    values[name] = UNKNOWN
                    continue
                after = None if name in changes.remove else attribute_after(values.get(name), name, changes)
                if after is None:
                    values.pop(name, None)
                else:
                    values[name] = after
            self.records[key] = Record(values, updated_at, version)


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


class DynamoDeltaStore:
    """Records in a DynamoDB table (layout in the module's docstring).

    Reads are strongly consistent: the sandbox and schedules import one file right after another, and an
    eventually consistent read could return a record one commit behind, whose older value would then be
    dropped as "unchanged" while Braze holds the newer one. A strongly consistent read costs one read
    unit per 4 KB instead of half of one; a record of a few attributes is well under 4 KB.
    """

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        *,
        ttl_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = GET_ATTEMPTS,
    ) -> None:
        self.db = dynamodb
        self.table = table
        self.ttl_seconds = ttl_seconds
        self.sleep = sleep
        self.attempts = attempts

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
                # Full jitter backoff: 50 ms doubling, capped at 2 s.
                self.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
            else:
                left = len(request.get(self.table, {}).get("Keys", []))
                raise DeltaStoreUnavailable(
                    f"DynamoDB left {left} record reads unprocessed after {self.attempts} tries"
                )
        return found

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
            self._update(key, changes, now)

    def _refresh(self, key: str, changes: Changes, now: float) -> None:
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
        try:
            self.db.put_item(TableName=self.table, Item=item, **condition)
        except ClientError as exc:
            if not _conditional(exc):
                raise
            # Another run wrote the record since it was read: what it says about the attributes this
            # object set may predate or follow ours at Braze. Those become unknown; the rest stays.
            self._mark_unknown(key, changes.touched(), now)

    def _update(self, key: str, changes: Changes, now: float) -> None:
        chunk: list[str] = []
        size = 0
        for name in changes.touched():
            if name in changes.unknown:
                continue
            weight = _size(changes.expected.get(name)) + _size(changes.set.get(name)) + 64
            if chunk and (len(chunk) >= UPDATE_ATTRIBUTES or size + weight > UPDATE_BYTES):
                self._update_chunk(key, chunk, changes, now)
                chunk, size = [], 0
            chunk.append(name)
            size += weight
        if chunk:
            self._update_chunk(key, chunk, changes, now)

    def _update_chunk(self, key: str, names: list[str], changes: Changes, now: float) -> None:
        sets = ["#exp = if_not_exists(#exp, :exp)"]
        removes: list[str] = []
        conditions: list[str] = []
        attr_names = {"#exp": "expires_at", "#v": "v"}
        attr_values: dict[str, Any] = {":exp": {"N": str(int(now + self.ttl_seconds))}, ":one": {"N": "1"}}
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
        try:
            self.db.update_item(
                TableName=self.table,
                Key={"pk": {"S": key}},
                UpdateExpression=expression,
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=attr_names,
                ExpressionAttributeValues=attr_values,
            )
        except ClientError as exc:
            if _conditional(exc) and len(names) > 1:
                # Another run changed some of these attributes since they were read (rare): each alone,
                # so those it did not touch still change.
                for name in names:
                    self._update_chunk(key, [name], changes, now)
            elif _conditional(exc):
                # Another run changed this attribute since it was read: which value Braze kept is unknown.
                self._mark_unknown(key, names, now)
            elif exc.response.get("Error", {}).get("Code") == "ValidationException" and "size" in str(exc):
                # Concurrent runs grew the item past DynamoDB's limit: the user is too large to record.
                self._forget(key, names, now)
            else:
                raise

    def _mark_unknown(self, key: str, names: list[str], now: float) -> None:
        """Unconditionally: these attributes' values at Braze are unknown."""
        for start in range(0, len(names), UPDATE_ATTRIBUTES):
            part = names[start : start + UPDATE_ATTRIBUTES]
            refs = [f"#n{i}" for i in range(len(part))]
            attr_names = dict(zip(refs, (FIELD_PREFIX + name for name in part), strict=True))
            attr_names |= {"#exp": "expires_at", "#v": "v"}
            self.db.update_item(
                TableName=self.table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET #exp = if_not_exists(#exp, :exp), "
                + ", ".join(f"{ref} = :unknown" for ref in refs)
                + " ADD #v :one",
                ExpressionAttributeNames=attr_names,
                ExpressionAttributeValues={
                    ":exp": {"N": str(int(now + self.ttl_seconds))},
                    ":unknown": {"B": UNKNOWN},
                    ":one": {"N": "1"},
                },
            )

    def _forget(self, key: str, names: list[str], now: float) -> None:
        """The record becomes stale (ignored until rewritten whole) and drops these attributes."""
        names = list(names)
        first = True
        while first or names:
            part, names = names[:UPDATE_ATTRIBUTES], names[UPDATE_ATTRIBUTES:]
            refs = [f"#n{i}" for i in range(len(part))]
            attr_names = dict(zip(refs, (FIELD_PREFIX + name for name in part), strict=True))
            attr_names |= {"#exp": "expires_at", "#v": "v", "#u": "updated_at"}
            self.db.update_item(
                TableName=self.table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET #exp = if_not_exists(#exp, :exp) REMOVE "
                + ", ".join(["#u", *refs])
                + " ADD #v :one",
                ExpressionAttributeNames=attr_names,
                ExpressionAttributeValues={":exp": {"N": str(int(now + self.ttl_seconds))}, ":one": {"N": "1"}},
            )
            first = False
