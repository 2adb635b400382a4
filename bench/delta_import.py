"""Sending Braze only what changed (issue 17), end to end: the real handler (sandbox: moto server + Braze
emulator at 30 ms per answer and Braze's cap of 3,000 requests / 3 s) imports a snapshot of users into an
empty delta store, then the same users with 5 % of their values changed; beside them, in the same run, the
first snapshot with deltas off.

Each user has 7 attributes (names, a number, a flag, a country, an array of strings, a nested object); a
changed value is a new scalar, a null, an array that lost an item and gained another, or a nested leaf.
What really changed is counted from the two snapshots, per attribute, as Braze compares them (an array of
strings as its set of items). The store is swapped in by patching the handler's dependencies, as the
function's wiring (``DELTAS_TABLE``) will give them: in memory for the figures, then DynamoDB on moto
server for scale (moto answers far slower than DynamoDB, so that part runs a smaller snapshot).

Prints one JSON object. Usage: ``python -m bench.delta_import [users] [moto_users]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import orjson

# isort: off
from sandbox import sample_data  # noqa: F401  first: it puts lambdas/ on the path, as a bundle's root is
from braze_importer.delta_store import DeltaStore, DynamoDeltaStore, MemoryDeltaStore

# isort: on
from bench.deltas import user
from bench.throughput import importer
from sandbox.importer import ImportSandbox
from sandbox.services import BrazeEmulator

SHARE = 0.05  # of values changed in the second snapshot
TTL_SECONDS = 30 * 86400


def edited(obj: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The user with each attribute changed with probability ``SHARE``: names and country sometimes to
    null, the array of tags losing its first item and gaining one, one leaf of the nested object."""
    out = dict(obj)
    for name in ("first_name", "last_name", "country"):
        if rng.random() < SHARE:
            out[name] = None if rng.random() < 0.2 else f"{out[name]}-{rng.randrange(1000)}"
    if rng.random() < SHARE:
        out["age"] += 1
    if rng.random() < SHARE:
        out["vip"] = not out["vip"]
    if rng.random() < SHARE:
        out["tags"] = [*out["tags"][1:], f"new{rng.randrange(10)}"]
    if rng.random() < SHARE:
        prefs = out["prefs"]
        if rng.random() < 0.5:
            out["prefs"] = {**prefs, "lang": "de"}
        else:
            out["prefs"] = {**prefs, "notify": {**prefs["notify"], "sms": not prefs["notify"]["sms"]}}
    return out


def _braze_value(value: Any) -> Any:
    """A value as Braze compares it: an array of strings keeps each item once, in no order."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    return value


def changed_values(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> int:
    """Attribute values (identifiers aside) that differ between the two snapshots."""
    return sum(
        1
        for old, new in zip(before, after, strict=True)
        for name in old.keys() - {"external_id"}
        if _braze_value(old[name]) != _braze_value(new.get(name))
    )


def snapshots(work: Path, users: int) -> tuple[Path, Path, int]:
    """The two JSON Lines snapshots of ``users`` users, and how many values changed between them."""
    rng = random.Random(17)
    before = [user(i) for i in range(users)]
    after = [edited(obj, rng) for obj in before]
    paths = (work / f"attributes-{users}.jsonl", work / f"attributes-{users}-changed.jsonl")
    for path, objects in zip(paths, (before, after), strict=True):
        path.write_bytes(b"".join(orjson.dumps(obj) + b"\n" for obj in objects))
    return paths[0], paths[1], changed_values(before, after)


@contextlib.contextmanager
def deltas_in(store: DeltaStore | None) -> Iterator[None]:
    """The handler's dependencies with ``store`` as the delta store (None: deltas off) while inside."""
    from braze_importer import handler

    original = handler._deps
    deps = dataclasses.replace(original(), deltas=store)
    handler._deps = cache(lambda: deps)
    try:
        yield
    finally:
        handler._deps = original


def imported(box: ImportSandbox, path: Path, key: str, store: DeltaStore | None) -> dict[str, Any]:
    """One timed import with that store; its report's figures, checked."""
    with deltas_in(store):
        run = importer(box, path, key)
    report = run["report"]
    deltas = report["deltas"]
    assert deltas["enabled"] is (store is not None), deltas
    assert deltas["lookup_errors"] == 0 and deltas["commit_errors"] == 0, deltas
    return {"seconds": run["seconds"], "objects_read": report["objects_read"], "deltas": deltas}


def compare(
    box: ImportSandbox, users: int, new_store: Callable[[int], DeltaStore], label: str, attempts: int
) -> dict[str, Any]:
    """Deltas off, first import into an empty store, second import of the changed users: alternated
    ``attempts`` times (each attempt with a new store), each keeping its best."""
    first_path, second_path, changed = snapshots(Path(".bench"), users)
    off, first, second = [], [], []
    for attempt in range(attempts):
        off.append(imported(box, first_path, f"incoming/attributes/{label}-off-{attempt}.jsonl", None))
        store = new_store(attempt)
        first.append(imported(box, first_path, f"incoming/attributes/{label}-first-{attempt}.jsonl", store))
        second.append(imported(box, second_path, f"incoming/attributes/{label}-second-{attempt}.jsonl", store))
    for run in off + first + second:
        assert run["objects_read"] == users, run
    for run in first:
        assert run["deltas"]["values_sent"] == run["deltas"]["values_read"] == users * 7, run
    sent = {run["deltas"]["values_sent"] for run in second}
    assert len(sent) == 1, sent  # each user once in a file: what is sent does not depend on timing
    best_off, best_first, best_second = (min(r["seconds"] for r in runs) for runs in (off, first, second))
    values_sent = sent.pop()
    return {
        "users": users,
        "changed_values": changed,
        "off_seconds": best_off,
        "first_seconds": best_first,
        "second_seconds": best_second,
        "off_objects_per_second": users / best_off,
        "first_objects_per_second": users / best_first,
        "first_vs_off": best_off / best_first,
        "second_vs_first": best_second / best_first,
        "values_sent": values_sent,
        "sent_vs_changed": values_sent / changed,
        "objects_unchanged": second[0]["deltas"]["objects_unchanged"],
        "all_seconds": {"off": [r["seconds"] for r in off], "first": [r["seconds"] for r in first],
                        "second": [r["seconds"] for r in second]},
    }  # fmt: skip


def main(users: int, moto_users: int) -> dict[str, Any]:
    Path(".bench").mkdir(exist_ok=True)
    with ImportSandbox(emulator_settings={"record": False, "profiles": False}) as box:
        braze: BrazeEmulator = box.emulator  # type: ignore[assignment]
        braze.configure(rate_limit=3000, rate_window_seconds=3.0, latency_ms=30)
        box.set_function_env(WORKSPACE_REQUESTS_PER_SECOND="1000", MAX_IN_FLIGHT="80")
        memory = compare(box, users, lambda _: MemoryDeltaStore(), "memory", attempts=2)

        dynamodb = boto3.client("dynamodb")  # the sandbox points it at moto server

        def table(attempt: int) -> DeltaStore:
            name = f"sandbox-deltas-{attempt}"
            dynamodb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            # One user a write, as the sandbox does: moto copies the whole table for every action of a
            # transaction (DynamoDB does not), which would make this row measure moto alone.
            return DynamoDeltaStore(dynamodb, name, ttl_seconds=TTL_SECONDS, transactions=False)

        moto = compare(box, moto_users, table, "moto", attempts=1)
    return {"memory": memory, "moto": moto}


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    print(json.dumps(main(args[0] if args else 200_000, args[1] if len(args) > 1 else 10_000)))
