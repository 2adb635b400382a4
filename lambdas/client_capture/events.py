"""What a client event is: the two request bodies clients send, the checks each entry must pass
to become a Braze custom event, and the one object Firehose writes for it.

Reasons name the field and the rule, never the value: values may be personal data.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_ENTRIES = 10  # EventBridge PutEvents takes at most 10 entries per call
MAX_BODY_BYTES = 256 * 1024
MAX_NAME_LENGTH = 255  # Braze: custom event and property names are at most 255 characters
MAX_STRING_LENGTH = 255  # Braze: string property values are at most 255 characters
MAX_PROPERTIES_BYTES = 50 * 1024  # Braze: an event's properties are at most 50 KB
MAX_DEPTH = 32  # nesting of an event's properties; deeper is refused before it costs a recursion
# ISO 8601 date-time in the extended calendar form, with its zone: without one Braze reads the time
# as UTC whatever the client meant. fromisoformat then checks the numbers make a date and time.
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)", re.ASCII)


class BadRequest(Exception):
    """The body is not one of the formats: nothing in it is put."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Invalid(Exception):
    """One entry cannot become a Braze event; ``reason`` names the field and the rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("a number too large to be finite")
    return value


def loads(text: str | bytes) -> Any:
    """Strict JSON: NaN, Infinity and numbers that overflow to infinity are errors (the importer's
    JSON has no such values). Raises ``ValueError`` (``RecursionError`` for absurd nesting)."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)


def dumps(value: Any) -> str:
    """Compact JSON of checked values; raises ``ValueError`` for a non-finite number."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _utf8(value: str, field: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"{field}: is not encodable as UTF-8 (a lone surrogate escape)") from None


@dataclass(frozen=True)
class ClientEvent:
    index: int
    event_type: str
    schema_version: str | None
    data: dict[str, Any]
    time: str | None

    def detail(self, *, external_id: str, received_at: str) -> dict[str, Any]:
        """The EventBridge event's detail: the external id comes from the verified token only."""
        return {
            "external_id": external_id,
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "data": self.data,
            "time": self.time,
            "received_at": received_at,
        }


def parse_body(body: bytes) -> tuple[list[ClientEvent], list[tuple[int, str]]]:
    """The events of a request body and the entries refused as malformed (index, reason).

    ``{"entries": [{"entry": "<JSON text>"}, ...]}`` (the capture client's wire format) or
    ``{"events": [{...}, ...]}``; identifiers in the body are ignored.
    """
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"the body is {len(body):,} bytes; at most {MAX_BODY_BYTES:,} are accepted", status=413)
    try:
        document = json.loads(body)  # non-finite numbers are each entry's own fault (checked below)
    except RecursionError:
        raise BadRequest("the body is nested too deeply to be events") from None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body must be a JSON object") from None
    if type(document) is not dict:
        raise BadRequest("the body must be a JSON object")
    forms = [k for k in ("entries", "events") if k in document]
    if len(forms) != 1:
        raise BadRequest('the body must hold either "entries" or "events"')
    items = document[forms[0]]
    if type(items) is not list or not items:
        raise BadRequest(f'"{forms[0]}" must be a non-empty array')
    if len(items) > MAX_ENTRIES:
        raise BadRequest(f"{len(items)} entries; at most {MAX_ENTRIES} are accepted per request")
    events: list[ClientEvent] = []
    refused: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        try:
            raw = _unwrap(item) if forms[0] == "entries" else item
            events.append(client_event(index, raw))
        except Invalid as exc:
            refused.append((index, exc.reason))
    return events, refused


def _unwrap(item: Any) -> Any:
    if type(item) is not dict or type(item.get("entry")) is not str:
        raise Invalid('entry: must be an object whose "entry" is a JSON text')
    try:
        return json.loads(item["entry"])
    except RecursionError:
        raise Invalid("entry: is nested too deeply") from None
    except ValueError:
        raise Invalid("entry: is not valid JSON") from None


def client_event(index: int, raw: Any) -> ClientEvent:
    if type(raw) is not dict:
        raise Invalid("entry: must be a JSON object")
    event_type = check_event_type(raw.get("eventType"), "eventType")
    version = check_schema_version(raw.get("schemaVersion"), "schemaVersion")
    data = raw.get("data", {})
    if type(data) is not dict:
        raise Invalid("data: must be a JSON object")
    check_properties(data)
    time = raw.get("time")
    if time is not None:
        check_time(time, "time")
    return ClientEvent(index, event_type, version, data, time)


def check_event_type(value: Any, field: str) -> str:
    """A Braze custom event name: a non-empty string of at most 255 characters, UTF-8 encodable."""
    if type(value) is not str or not value.strip():
        raise Invalid(f"{field}: must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise Invalid(f"{field}: must be at most {MAX_NAME_LENGTH} characters")
    _utf8(value, field)
    return value


def check_schema_version(value: Any, field: str, *, allow_empty: bool = False) -> str | None:
    """An event's optional schema version (a non-empty string, or empty with ``allow_empty``, or
    a finite number) as text."""
    if value is None:
        return None
    if type(value) not in (str, int, float) or (value == "" and not allow_empty):
        raise Invalid(f"{field}: must be a string or a number")
    if type(value) is float and not math.isfinite(value):
        raise Invalid(f"{field}: must be a finite number")
    text = str(value)
    _utf8(text, field)
    return text


def check_properties(data: dict[str, Any]) -> None:
    """What Braze takes as an event's properties, checked without recursion: names, finite
    numbers, strings of at most 255 characters encodable as UTF-8, bounded nesting, 50 KB in all."""
    for key in data:
        if not key or len(key) > MAX_NAME_LENGTH:
            raise Invalid(f"data: property names must be 1-{MAX_NAME_LENGTH} characters")
        if key.startswith("$"):
            raise Invalid("data: property names must not start with '$' (reserved by Braze)")
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if type(value) is dict:
            if depth > MAX_DEPTH:
                raise Invalid(f"data: nested too deep (at most {MAX_DEPTH} levels)")
            for key in value:
                _utf8(key, "data")
            pending += [(v, depth + 1) for v in value.values()]
        elif type(value) is list:
            if depth > MAX_DEPTH:
                raise Invalid(f"data: nested too deep (at most {MAX_DEPTH} levels)")
            pending += [(v, depth + 1) for v in value]
        elif type(value) is str:
            if len(value) > MAX_STRING_LENGTH:
                raise Invalid(f"data: string values must be at most {MAX_STRING_LENGTH} characters")
            _utf8(value, "data")
        elif type(value) is float and not math.isfinite(value):
            raise Invalid("data: numbers must be finite (no NaN or Infinity)")
    size = len(dumps(data).encode("utf-8"))
    if size > MAX_PROPERTIES_BYTES:
        raise Invalid(f"data: the properties are {size:,} bytes; Braze takes at most 50 KB")


def check_time(value: Any, field: str) -> None:
    if type(value) is not str or not _ISO_TIME.fullmatch(value):
        raise Invalid(f"{field}: must be an ISO 8601 date-time with its zone (Z or an offset)")
    try:
        datetime.fromisoformat(value.replace(",", ".").replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{field}: is not a real date and time") from None


def braze_event(event: Any) -> dict[str, Any]:
    """The importer object (a Braze custom event) for one EventBridge event from the capture API."""
    detail = event.get("detail") if type(event) is dict else None
    if type(detail) is not dict:
        raise Invalid("detail: missing; not an event from the capture API")
    external_id = detail.get("external_id")
    if type(external_id) is not str or not external_id:
        raise Invalid("external_id: missing; the event has no verified user")
    name = check_event_type(detail.get("event_type"), "event_type")
    _utf8(external_id, "external_id")
    time = detail.get("time") or detail.get("received_at")
    check_time(time, "time")
    data = detail.get("data") or {}
    if type(data) is not dict:
        raise Invalid("data: must be a JSON object")
    check_properties(data)
    properties = dict(data)
    # The API refuses an empty version from clients; another producer's is delivered as written.
    version = check_schema_version(detail.get("schema_version"), "schema_version", allow_empty=True)
    if version is not None:
        properties["schema_version"] = version
    return {"external_id": external_id, "name": name, "time": time, "properties": properties}
