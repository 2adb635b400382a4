"""A user's recent activity across every Currents file: the input of a generation.

Currents writes one file per event type, so one period of a user's activity arrives as several
files minutes apart. Each file's events are merged into one compact profile per user (a few of
the newest events per type, newest first, with their source times, and the ids already seen), and
a generation reads the profile, never one file.

A profile is *pending* from the first new event that carries intent until a generation has read
it; a generation is scheduled once, when a profile becomes pending, after a settle window, so the
files of one period become one generation. Redelivered events are recognised by id and change
nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from .events import (
    CUSTOM_EVENT,
    EMAIL_CLICK,
    EMAIL_OPEN,
    PURCHASE,
    PUSH_OPEN,
    SESSION_START,
    CurrentsEvent,
    UserActivity,
)

PER_TYPE = 5  # newest events kept per event type
SEEN_IDS = 1000  # event ids remembered for redeliveries
MAX_PROPERTIES = 8
MAX_TEXT = 100
MAX_KEY = 40  # characters of a property name
MAX_ID = 64  # characters of an event id; a longer id is kept as a digest
PROFILE_BYTES = 100_000  # the encoded profile's budget, far below DynamoDB's 400 KB item limit
EVENTS_BYTES = 60_000  # of which the kept events (the rest: the ids seen)

# What each event type means for the customer, as the model and the offline template read it.
_ACTION = {
    CUSTOM_EVENT: "did",
    PURCHASE: "bought",
    EMAIL_OPEN: "opened an email from us",
    EMAIL_CLICK: "clicked a link in an email from us",
    PUSH_OPEN: "opened a push notification from us",
    SESSION_START: "opened the app",
}


@dataclass(slots=True)
class Profile:
    user_id: str
    external_id: str | None = None
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # type -> newest first
    seen: list[str] = field(default_factory=list)  # oldest first, bounded
    newest_time: int = 0
    version: int = 0  # bumped on every write: the conditional-write token
    intent: int = 0  # bumped only by merges with a new event of intent: what a generation settles
    pending_since: int | None = None  # receive time of the first new intent since the last generation
    scheduled_at: int | None = None

    def recent(self) -> list[dict[str, Any]]:
        """Every kept event, newest first (each carries its ``type``)."""
        merged = [{"type": t, **e} for t, events in self.events.items() for e in events]
        return sorted(merged, key=lambda e: (e["time"], e["id"]), reverse=True)

    def to_json(self) -> str:
        return orjson.dumps({"x": self.external_id, "e": self.events, "s": self.seen, "n": self.newest_time}).decode()

    @classmethod
    def from_json(cls, user_id: str, text: str, *, version: int, pending_since: int | None,
                  scheduled_at: int | None, intent: int = 0) -> Profile:  # fmt: skip
        data = orjson.loads(text)
        return cls(
            user_id=user_id,
            external_id=data.get("x"),
            events={k: list(v) for k, v in data.get("e", {}).items()},
            seen=list(data.get("s", [])),
            newest_time=int(data.get("n", 0)),
            version=version,
            intent=intent,
            pending_since=pending_since,
            scheduled_at=scheduled_at,
        )


@dataclass(frozen=True, slots=True)
class Merge:
    new_events: int
    schedule: bool  # a generation message should be sent now


def merge(
    profile: Profile,
    activity: UserActivity,
    *,
    now: int,
    passive_types: frozenset[str],
    overdue_seconds: int,
) -> Merge:
    """Merge one file's events for the user into the profile (in place)."""
    seen = set(profile.seen)
    new = 0
    triggering = False
    if activity.external_id:
        profile.external_id = activity.external_id
    for event in activity.events:
        key = event_key(event.id)
        if key in seen:
            continue
        seen.add(key)
        profile.seen.append(key)
        profile.events.setdefault(event.event_type, []).append(_compact(event, key))
        profile.newest_time = max(profile.newest_time, event.time)
        new += 1
        if event.event_type not in passive_types:
            triggering = True
    for events in profile.events.values():
        events.sort(key=lambda e: (e["time"], e["id"]), reverse=True)
        del events[PER_TYPE:]
    del profile.seen[:-SEEN_IDS]
    _fit(profile)
    if triggering:
        profile.intent += 1
    schedule = False
    if triggering and profile.pending_since is None:
        profile.pending_since = now
        schedule = True
    elif profile.pending_since is not None and now - (profile.scheduled_at or 0) > overdue_seconds:
        schedule = True  # the message for a pending profile was lost: schedule it again
    if schedule:
        profile.scheduled_at = now
    return Merge(new, schedule)


def event_key(event_id: str) -> str:
    """The id a profile remembers: short ids as they are, a long one as a stable digest."""
    if len(event_id) <= MAX_ID:
        return event_id
    return "#" + hashlib.sha256(event_id.encode()).hexdigest()[:40]


def _size(value: Any) -> int:
    return len(orjson.dumps(value))  # UTF-8 bytes


def _fit(profile: Profile) -> None:
    """Drop the oldest events, then the oldest seen ids, until the profile fits its byte budget."""
    sizes = {(t, e["id"]): _size(e) for t, events in profile.events.items() for e in events}
    total = sum(sizes.values())
    if total > EVENTS_BYTES:
        for event in sorted(profile.recent(), key=lambda e: (e["time"], e["id"])):
            if total <= EVENTS_BYTES:
                break
            kept = profile.events[event["type"]]
            kept[:] = [e for e in kept if e["id"] != event["id"]]
            total -= sizes[(event["type"], event["id"])]
        for event_type in [t for t, events in profile.events.items() if not events]:
            del profile.events[event_type]
    excess = len(profile.to_json().encode()) - PROFILE_BYTES
    drop = 0
    while excess > 0 and drop < len(profile.seen):
        excess -= _size(profile.seen[drop]) + 1
        drop += 1
    del profile.seen[:drop]


def _compact(event: CurrentsEvent, key: str) -> dict[str, Any]:
    item: dict[str, Any] = {"id": key, "time": event.time}
    if event.name and event.event_type in (CUSTOM_EVENT, PURCHASE):
        item["about"] = event.name[:MAX_TEXT]
    properties = _bounded(event.properties())
    if properties:
        item["p"] = properties
    return item


def _bounded(properties: dict[str, Any]) -> dict[str, Any]:
    """A few scalar properties with short values: a profile's size stays bounded whatever Braze sends."""
    kept: dict[str, Any] = {}
    for key, value in properties.items():
        if len(kept) == MAX_PROPERTIES:
            break
        if isinstance(value, bool | int | float):
            kept[_key(str(key))] = value
        elif isinstance(value, str) and value:
            kept[_key(str(key))] = value[:MAX_TEXT]
    return kept


def _key(key: str) -> str:
    """A property name of at most ``MAX_KEY`` characters; long names keep a digest, so two long
    names with the same beginning stay two properties."""
    if len(key) <= MAX_KEY:
        return key
    return key[: MAX_KEY - 9] + "~" + hashlib.sha256(key.encode()).hexdigest()[:8]


def describe(events: Iterable[CurrentsEvent]) -> list[dict[str, Any]]:
    """The activity in the customer's terms, newest first: what they did, with what, when.

    Email and push opens are told apart; a campaign's or canvas's name never appears (it is the
    sender's label, not something the customer enjoyed)."""
    described = []
    for event in sorted(events, key=lambda e: e.time, reverse=True):
        entry: dict[str, Any] = {"what": _ACTION.get(event.event_type, "did")}
        if event.name and event.event_type in (CUSTOM_EVENT, PURCHASE):
            entry["item" if event.event_type == PURCHASE else "activity"] = _humanize(event.name)
        details = _bounded(event.properties())
        if details:
            entry["details"] = details
        entry["when"] = datetime.fromtimestamp(event.time, UTC).strftime("%Y-%m-%d %H:%M UTC")
        described.append(entry)
    return described


def _humanize(name: str) -> str:
    return name.replace("_", " ").strip()


def activity_of(profile: Profile) -> UserActivity:
    """The profile as a ``UserActivity`` (for generators written against one)."""
    activity = UserActivity(profile.user_id, profile.external_id)
    for event in sorted(profile.recent(), key=lambda e: e["time"]):
        activity.events.append(
            CurrentsEvent(
                id=event["id"],
                event_type=event["type"],
                user_id=profile.user_id,
                external_user_id=profile.external_id,
                time=event["time"],
                name=event.get("about"),
                properties_json=orjson.dumps(event["p"]).decode() if event.get("p") else None,
            )
        )
        activity.event_ids.append(event["id"])
        activity.newest_time = max(activity.newest_time, event["time"])
    return activity
