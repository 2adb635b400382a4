"""Realistic import files: events, purchases and attribute updates, with a few invalid objects."""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

EVENTS = ("viewed_product", "added_to_cart", "started_trial", "watched_episode", "searched", "shared_playlist")
PRODUCTS = (("Monitor", 219.98), ("Headphones", 89.5), ("Gift card", 25.0), ("Season pass", 59.99))
CITIES = ("Lisboa", "München", "Zürich", "São Paulo", "東京", "New York")


def objects(count: int, *, seed: int = 42, invalid_every: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` objects; with ``invalid_every`` N, every Nth one breaks a rule on purpose."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(count):
        user = f"user-{rng.randrange(max(1, count // 4)):07d}"
        when = (start + timedelta(seconds=i * 7)).isoformat()
        roll = rng.random()
        obj: dict[str, Any]
        if roll < 0.6:
            obj = {
                "external_id": user,
                "name": rng.choice(EVENTS),
                "time": when,
                "properties": {"source": "import", "position": i, "note": 'quote " and {brace} [bracket]'},
            }
        elif roll < 0.8:
            product, price = rng.choice(PRODUCTS)
            obj = {
                "external_id": user,
                "product_id": product,
                "currency": "EUR",
                "price": price,
                "quantity": rng.randint(1, 3),
                "time": when,
                "properties": {"products": [{"name": product, "category": "retail"}]},
            }
        else:
            obj = {"external_id": user, "home_city": rng.choice(CITIES), "loyalty_points": rng.randint(0, 5000)}
        if invalid_every and i % invalid_every == invalid_every - 1:
            obj = _break(obj, rng)
        yield obj


def _break(obj: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    broken = dict(obj)
    choice = rng.randrange(3)
    if choice == 0:
        broken.pop("external_id")  # no identifier
    elif choice == 1 and "name" in broken:
        broken["time"] = "yesterday"  # not ISO 8601
    else:
        broken["properties"] = {"$reserved": 1}  # only Braze itself refuses this
    return broken


def write(path: Path, count: int, *, seed: int = 42, invalid_every: int = 0, lines: bool | None = None) -> Path:
    """Write a JSON array (or JSON Lines for .jsonl/.ndjson), gzipped for .gz names."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    as_lines = lines if lines is not None else name.endswith((".jsonl", ".ndjson"))
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as out:
        if as_lines:
            for obj in objects(count, seed=seed, invalid_every=invalid_every):
                out.write(orjson.dumps(obj) + b"\n")
        else:
            out.write(b"[\n")
            for i, obj in enumerate(objects(count, seed=seed, invalid_every=invalid_every)):
                out.write((b",\n  " if i else b"  ") + orjson.dumps(obj))
            out.write(b"\n]\n")
    return path
