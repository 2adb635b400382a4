"""What computing a delta costs per attributes object, and how large a user's record is.

A 7-attribute user (names, a number, a flag, a country, an array of 3 strings, a nested object of two
levels): ``diff`` against its record when nothing changed, when 5 % of the values changed, and with no
record (first sighting). The baseline, in the same run, is ``orjson.dumps`` of the same objects: what the
importer spends anyway to put each object in a request body.
Prints one JSON object (microseconds per object, best of ``repeat``, interleaved; record bytes).
Usage: ``python -m bench.deltas [users]``.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

# isort: off
from sandbox import sample_data  # noqa: F401  first: it puts lambdas/ on the path, as a bundle's root is
from braze_importer.deltas import Record, apply, diff, record_size

# isort: on

MAX_AGE = 30 * 86400.0
NOW = 1_800_000_000.0


def user(i: int) -> dict[str, Any]:
    return {
        "external_id": f"user-{i:08d}",
        "first_name": f"First{i % 997}",
        "last_name": f"Last{i % 991}",
        "age": 18 + i % 60,
        "vip": i % 7 == 0,
        "country": ("FR", "DE", "US", "JP")[i % 4],
        "tags": [f"tag{i % 5}", f"tag{i % 11}", "newsletter"],
        "prefs": {"lang": ("fr", "en")[i % 2], "notify": {"email": True, "sms": i % 3 == 0}},
    }


def changed(obj: dict[str, Any], rng: random.Random, share: float) -> dict[str, Any]:
    """The object with each of its 7 attributes changed with probability ``share``."""
    out = dict(obj)
    if rng.random() < share:
        out["first_name"] += "x"
    if rng.random() < share:
        out["last_name"] += "y"
    if rng.random() < share:
        out["age"] += 1
    if rng.random() < share:
        out["vip"] = not out["vip"]
    if rng.random() < share:
        out["country"] = "ES"
    if rng.random() < share:
        out["tags"] = [*out["tags"][1:], "new"]
    if rng.random() < share:
        out["prefs"] = {**out["prefs"], "notify": {"email": False, "sms": out["prefs"]["notify"]["sms"]}}
    return out


def _timed(fn: Callable[[], None], count: int) -> float:
    began = time.perf_counter()
    fn()
    return (time.perf_counter() - began) / count * 1e6


def main(users: int = 50_000, repeat: int = 5) -> dict[str, float]:
    rng = random.Random(17)
    first = [user(i) for i in range(users)]
    records: list[Record] = []
    for obj in first:
        delta = diff(obj, None, now=NOW, max_age_seconds=MAX_AGE)
        assert delta.changes is not None
        record = apply(None, delta.changes)
        assert record is not None
        records.append(record)
    five = [changed(obj, rng, 0.05) for obj in first]
    pairs_unchanged = list(zip(first, records, strict=True))
    pairs_five = list(zip(five, records, strict=True))

    def unchanged() -> None:
        for obj, record in pairs_unchanged:
            diff(obj, record, now=NOW + 60, max_age_seconds=MAX_AGE)

    def five_percent() -> None:
        for obj, record in pairs_five:
            diff(obj, record, now=NOW + 60, max_age_seconds=MAX_AGE)

    def first_sighting() -> None:
        for obj in first:
            diff(obj, None, now=NOW, max_age_seconds=MAX_AGE)

    def serialize() -> None:
        for obj in five:
            orjson.dumps(obj)

    cases: dict[str, Callable[[], None]] = {
        "diff_unchanged_us": unchanged,
        "diff_5pct_changed_us": five_percent,
        "diff_first_sighting_us": first_sighting,
        "baseline_orjson_dumps_us": serialize,
    }
    figures = dict.fromkeys(cases, float("inf"))
    for _ in range(repeat):
        for name, fn in cases.items():
            figures[name] = min(figures[name], _timed(fn, users))
    sent = read = 0
    for obj, record in pairs_five:
        delta = diff(obj, record, now=NOW + 60, max_age_seconds=MAX_AGE)
        sent += delta.sent
        read += delta.read
    figures["values_sent_share_5pct"] = sent / read
    figures["record_bytes"] = sum(record_size(r.values) for r in records) / users
    figures["users"] = users
    return figures


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:]))))
