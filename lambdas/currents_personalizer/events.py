"""Braze Currents events: read from Avro, keep the configured types, drop duplicates, group per user.

Currents is delivered at least once and its schemas grow: a record missing optional fields or
carrying new ones is fine; one without an event id or a Braze user id cannot be attributed and is
skipped (counted). ``time`` is UNIX seconds; ``properties`` is a JSON-encoded string.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any

import fastavro
import orjson

_EVENT_TYPE = re.compile(r"(?:^|/)event_type=([^/]+)/")

CUSTOM_EVENT = "users.behaviors.CustomEvent"
PURCHASE = "users.behaviors.Purchase"
EMAIL_OPEN = "users.messages.email.Open"
EMAIL_CLICK = "users.messages.email.Click"
PUSH_OPEN = "users.messages.pushnotification.Open"
SESSION_START = "users.behaviors.app.SessionStart"

# The one list of event types kept by default (the stack's setting and the README name the same):
# what users did in apps and sites, bought, and opened or clicked.
DEFAULT_EVENT_TYPES = frozenset({CUSTOM_EVENT, PURCHASE, EMAIL_OPEN, EMAIL_CLICK, PUSH_OPEN, SESSION_START})
# Event types that enrich a profile but do not, alone, start a generation (a session start says
# nothing about what the user wants).
DEFAULT_PASSIVE_TYPES = frozenset({SESSION_START})


def event_type_from_key(key: str) -> str | None:
    """``…/event_type=<type>/date=…/…/<file>.avro`` → ``<type>``; nothing after ``date=`` is relied on."""
    match = _EVENT_TYPE.search(key)
    return match.group(1) if match else None


def read_records(fileobj: IO[bytes]) -> Iterator[dict[str, Any]]:
    """Stream records from an Avro object container file (codec from its header)."""
    yield from fastavro.reader(fileobj)  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class CurrentsEvent:
    id: str
    event_type: str
    user_id: str  # Braze's user id (``${braze_id}`` in Liquid)
    external_user_id: str | None  # the external id (``${user_id}`` in Liquid)
    time: int  # UNIX seconds
    name: str | None  # what it was about in the customer's terms: custom event name or product id
    properties_json: str | None = None  # decoded only for the events a generation reads
    intent: bool = True  # False for machine opens (Apple Mail Privacy Protection) and suspected bot clicks

    def properties(self) -> dict[str, Any]:
        return _properties(self.properties_json)


RESERVED_USER_PREFIX = "#profile#"  # the content table's profile keys: never a user id


def parse_event(record: dict[str, Any], event_type: str) -> CurrentsEvent | None:
    """A record as an event, or None when it cannot be attributed to an event id and a user."""
    get = record.get
    event_id = get("id")
    user_id = get("user_id")
    if type(event_id) is not str or not event_id or type(user_id) is not str or not user_id:
        return None
    if user_id.startswith(RESERVED_USER_PREFIX):
        return None  # would address another user's profile item
    external = get("external_user_id")
    # Campaign and canvas names are the sender's internal labels, never what the user enjoyed.
    name = get("name") or get("product_id")
    time = get("time")
    properties = get("properties")
    return CurrentsEvent(
        event_id,
        event_type,
        user_id,
        external if type(external) is str and external else None,
        time if type(time) is int else _seconds(time),
        name if type(name) is str else None,
        properties if type(properties) is str else (orjson.dumps(properties).decode() if properties else None),
        not (_flag(get("machine_open")) or _flag(get("is_suspected_bot_click"))),
    )


def _flag(value: Any) -> bool:
    """Braze sends these flags as booleans or as strings (``"true"``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return False


def _seconds(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return 0
    return 0


def _properties(value: Any) -> dict[str, Any]:
    """Decode the JSON-encoded properties; garbage decodes to nothing rather than failing a file."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str | bytes) and value:
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
        return decoded if isinstance(decoded, dict) else {}
    return {}


@dataclass(slots=True)
class UserActivity:
    """What one user did in one file: the input of one generation."""

    user_id: str
    external_id: str | None = None
    events: deque[CurrentsEvent] = field(default_factory=deque)
    event_ids: list[str] = field(default_factory=list)
    newest_time: int = 0

    def add(self, event: CurrentsEvent, keep_last: int) -> None:
        if event.external_user_id:
            self.external_id = event.external_user_id
        self.events.append(event)
        while len(self.events) > keep_last:
            self.events.popleft()
        self.event_ids.append(event.id)
        self.newest_time = max(self.newest_time, event.time)

    def recent(self) -> list[CurrentsEvent]:
        """The kept events, newest first."""
        return sorted(self.events, key=lambda e: e.time, reverse=True)


@dataclass(slots=True)
class FileSummary:
    records: int = 0
    kept: int = 0
    duplicates: int = 0
    unattributed: int = 0
    other_types: int = 0
    no_intent: int = 0  # machine opens and suspected bot clicks
    future_clamped: int = 0


def group_by_user(
    records: Iterable[dict[str, Any]],
    event_type: str,
    *,
    keep_types: frozenset[str] = DEFAULT_EVENT_TYPES,
    keep_last: int = 20,
    now: float | None = None,
) -> tuple[dict[str, UserActivity], FileSummary]:
    """Group one file's records per Braze user id, dropping other types, repeated event ids and
    signals that carry no intent (machine opens, suspected bot clicks).

    Event times after ``now`` (the receive time) are clamped to it: one event dated years ahead
    must not make every later event look old. Cost grows with users, not events: each user keeps
    only its ``keep_last`` newest events (every event id is still remembered, for deduplication).
    """
    limit = int(now) if now is not None else None
    summary = FileSummary()
    users: dict[str, UserActivity] = {}
    seen: set[str] = set()
    wanted = event_type in keep_types
    for record in records:
        summary.records += 1
        if not wanted:
            summary.other_types += 1
            continue
        event = parse_event(record, event_type)
        if event is None:
            summary.unattributed += 1
            continue
        if event.id in seen:
            summary.duplicates += 1
            continue
        seen.add(event.id)
        if not event.intent:
            summary.no_intent += 1
            continue
        if limit is not None and event.time > limit:
            summary.future_clamped += 1
            event = replace(event, time=limit)
        summary.kept += 1
        activity = users.get(event.user_id)
        if activity is None:
            activity = users[event.user_id] = UserActivity(event.user_id)
        activity.add(event, keep_last)
    return users, summary
