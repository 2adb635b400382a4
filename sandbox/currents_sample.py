"""Realistic Braze Currents Avro files in Braze's key layout, for the sandbox and the tests."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import fastavro
import orjson

BASE_FIELDS: list[dict[str, Any]] = [
    {"name": "id", "type": "string"},
    {"name": "user_id", "type": "string"},
    {"name": "external_user_id", "type": ["null", "string"], "default": None},
    {"name": "time", "type": "int"},
    {"name": "app_id", "type": ["null", "string"], "default": None},
]
SCHEMAS: dict[str, list[dict[str, Any]]] = {
    "users.behaviors.CustomEvent": [
        {"name": "name", "type": "string"},
        {"name": "properties", "type": ["null", "string"], "default": None},
    ],
    "users.behaviors.Purchase": [
        {"name": "product_id", "type": "string"},
        {"name": "price", "type": "double"},
        {"name": "currency", "type": "string"},
        {"name": "properties", "type": ["null", "string"], "default": None},
    ],
    "users.messages.email.Open": [
        {"name": "campaign_name", "type": ["null", "string"], "default": None},
        {"name": "email_address", "type": ["null", "string"], "default": None},
        {"name": "machine_open", "type": ["null", "string"], "default": None},
    ],
}
SESSION_START = "users.behaviors.app.SessionStart"
EXTRA_SCHEMAS: dict[str, list[dict[str, Any]]] = {
    SESSION_START: [{"name": "session_id", "type": ["null", "string"], "default": None}],
}
SHOWS = ("Redemption Point", "The Sad Egg", "Night Shift", "Ocean Lab")


def schema(event_type: str, extra_fields: list[dict[str, Any]] | None = None) -> Any:
    return fastavro.parse_schema(
        {
            "type": "record",
            "name": event_type.rsplit(".", 1)[-1],
            "namespace": "com.braze.currents",
            "fields": [*BASE_FIELDS, *{**SCHEMAS, **EXTRA_SCHEMAS}[event_type], *(extra_fields or [])],
        }
    )


def write(path: Path, event_type: str, records: list[dict[str, Any]], *, codec: str = "deflate", **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        fastavro.writer(out, schema(event_type, kw.get("extra_fields")), records, codec=codec)
    return path


def key(event_type: str, hour: str, name: str, *, cluster: str = "prod-01", integration: str = "5f1e2d") -> str:
    return f"dataexport.{cluster}.S3.integration.{integration}/event_type={event_type}/date={hour}/{name}.avro"


def records(
    event_type: str, users: int, events: int, *, seed: int = 1, start: int = 1_793_000_000
) -> list[dict[str, Any]]:
    rng = random.Random(f"{seed}-{event_type}")
    out = []
    for i in range(events):
        u = rng.randrange(users)
        record: dict[str, Any] = {
            "id": f"{event_type[-8:]}-{seed}-{i}",
            "user_id": f"braze-{u:05d}",
            "external_user_id": "ユーザー-ü-0" if u == 0 else (f"customer-{u:05d}" if u % 3 else None),
            "time": start + i * 13,
            "app_id": "app-1",
        }
        show = rng.choice(SHOWS)
        if event_type == "users.behaviors.CustomEvent":
            record |= {"name": "watched_episode", "properties": orjson.dumps({"show": show, "episode": i % 9}).decode()}
        elif event_type == "users.behaviors.Purchase":
            record |= {"product_id": f"{show} season pass", "price": 9.99, "currency": "USD", "properties": "{}"}
        elif event_type == SESSION_START:
            record |= {"session_id": f"s-{i}"}
        else:
            record |= {
                "campaign_name": f"{show} weekly",
                "email_address": f"user{u}@example.com",
                "machine_open": "true" if i % 5 == 4 else None,  # Apple Mail Privacy Protection
            }
        out.append(record)
    return out


def period(out: Path, user: str, *, start: int) -> list[Path]:
    """One user's period as Currents writes it: a SessionStart file, then, minutes later, a
    Purchase file and a CustomEvent file (one file per event type)."""
    base = {"user_id": user, "external_user_id": f"customer-{user}", "app_id": "app-1"}
    files: list[tuple[str, list[dict[str, Any]]]] = [
        (SESSION_START, [{**base, "id": f"{user}-s1", "time": start, "session_id": "s-1"}]),
        (
            "users.behaviors.Purchase",
            [{**base, "id": f"{user}-p1", "time": start + 240, "product_id": "Ocean Lab season pass",
              "price": 9.99, "currency": "USD", "properties": None}],
        ),
        (
            "users.behaviors.CustomEvent",
            [{**base, "id": f"{user}-c{n}", "time": start + 60 * n, "name": "watched_episode",
              "properties": orjson.dumps({"show": "Ocean Lab", "episode": n}).decode()} for n in (5, 6)],
        ),
    ]  # fmt: skip
    hour = time.strftime("%Y-%m-%d-%H", time.gmtime(start))
    return [write(out / key(t, hour, f"{user}-{n}"), t, records) for n, (t, records) in enumerate(files)]


def write_sample(out: Path, users: int, events: int, *, files_per_type: int = 2) -> list[Path]:
    """Several event types, each over a few files, with some events repeated in the next file
    (Currents delivers at least once) and one user whose external id is not ASCII."""
    written = []
    for event_type in SCHEMAS:
        batch = records(event_type, users, events)
        size = max(1, len(batch) // files_per_type)
        for n in range(files_per_type):
            part = batch[n * size : (n + 1) * size if n < files_per_type - 1 else None]
            if n:
                part = batch[n * size - min(5, size) : n * size] + part  # duplicates across files
            name = key(event_type, "2026-11-23-10", f"{n:05d}")
            written.append(write(out / name, event_type, part, codec=("deflate", "snappy", "null")[n % 3]))
    return written
