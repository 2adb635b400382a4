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


# -- snapshots of the same users, for sending only what changed ---------------------------------

FIRST_NAMES = ("Ana", "Bruno", "Chloé", "Dmitri", "Eun-ji", "Farah", "Gustav", "Hiro", "Inès", "Jonas")
INTERESTS = ("hiking", "jazz", "cooking", "film", "chess", "running", "design", "travel", "gaming", "poetry")
TIERS = ("bronze", "silver", "gold", "platinum")


def snapshots(users: int, *, seed: int = 11, change: float = 0.05) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two full exports of the same users' attributes, as a warehouse writes them day after day: seven
    per user (strings, a number, a flag, a time, an array of strings, a nested object), a few null. In
    the second about ``change`` of the values differ: new values, a few nulls, array items removed and
    appended, nested leaves changed or dropped. Every object names all seven, null or not."""
    rng = random.Random(seed)
    first = [_profile(i, rng) for i in range(users)]
    return first, [_changed(obj, rng, change) for obj in first]


def _profile(i: int, rng: random.Random) -> dict[str, Any]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "external_id": f"member-{i:06d}",
        "first_name": rng.choice(FIRST_NAMES),
        "home_city": rng.choice(CITIES),
        "loyalty_points": rng.randint(0, 5000),
        "email_opt_in": None if rng.random() < 0.02 else rng.random() < 0.7,
        "last_order_at": (start + timedelta(minutes=rng.randrange(500_000))).isoformat(),
        "interests": rng.sample(INTERESTS, rng.randint(1, 5)),
        "plan": {
            "tier": rng.choice(TIERS),
            "renews": f"2027-{rng.randint(1, 12):02d}-01",
            "limits": {"seats": rng.randint(1, 10), "storage_gb": rng.choice((50, 100, 500))},
        },
    }


def _changed(obj: dict[str, Any], rng: random.Random, change: float) -> dict[str, Any]:
    new = orjson.loads(orjson.dumps(obj))  # a deep copy
    for name, value in obj.items():
        if name == "external_id" or rng.random() >= change:
            continue
        if rng.random() < 0.08:
            new[name] = None
        elif name == "interests" and value:
            gone = rng.choice(value) if len(value) > 1 else None
            added = rng.choice([v for v in INTERESTS if v not in value] or ["reading"])
            new[name] = [*(v for v in value if v != gone), added]
        elif name == "plan" and value:
            plan = new[name]
            roll = rng.randrange(3)
            if roll == 0:
                plan["limits"]["seats"] += 1
            elif roll == 1:
                plan["tier"] = rng.choice([t for t in TIERS if t != value["tier"]])
            else:
                plan["renews"] = None  # a nested null: Braze drops the key
        elif name == "loyalty_points":
            new[name] = (value or 0) + rng.randint(1, 500)
        elif name == "email_opt_in":
            new[name] = not value
        elif name == "last_order_at":
            new[name] = (datetime.fromisoformat(value) + timedelta(days=1)).isoformat() if value else None
        else:
            new[name] = rng.choice([v for v in (FIRST_NAMES if name == "first_name" else CITIES) if v != value])
    return new


def snapshot_events(snapshot: list[dict[str, Any]], count: int, *, seed: int = 12) -> list[dict[str, Any]]:
    """``count`` custom events of the snapshot's users."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 2, tzinfo=UTC)
    return [
        {
            "external_id": rng.choice(snapshot)["external_id"],
            "name": rng.choice(EVENTS),
            "time": (start + timedelta(seconds=i * 13)).isoformat(),
            "properties": {"position": i},
        }
        for i in range(count)
    ]


def write_lines(path: Path, objects: list[dict[str, Any]]) -> Path:
    """Write the objects as JSON Lines."""
    path.write_bytes(b"".join(orjson.dumps(obj) + b"\n" for obj in objects))
    return path


def held_value(value: Any) -> Any:
    """What Braze holds of an attribute value set whole: a null at any depth of an object is an absent
    key, an array of scalars keeps each value once (None: the attribute is absent)."""
    if isinstance(value, dict):
        return {k: held_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list) and not any(isinstance(v, dict | list) for v in value):
        return list(dict.fromkeys(value))
    return value


def held(snapshot: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per external id, the attributes Braze holds once this full snapshot is imported (over any
    earlier one: every object names all its attributes)."""
    return {
        obj["external_id"]: {k: held_value(v) for k, v in obj.items() if k != "external_id" and v is not None}
        for obj in snapshot
    }


def changes(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> tuple[int, int]:
    """The attribute values that really changed from one snapshot to the next (as Braze holds them), and
    the users with none changed."""
    before, after = held(first), held(second)
    changed = users_unchanged = 0
    for user, attributes in after.items():
        old = before.get(user, {})
        differ = sum(attributes.get(name) != old.get(name) for name in attributes.keys() | old.keys())
        changed += differ
        users_unchanged += not differ
    return changed, users_unchanged
