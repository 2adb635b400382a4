"""``POST /event``: parse the body, put every well-formed entry on the bus in one call, and answer
for each entry. Never 200 unless every entry was put.

Answers (always JSON ``{"accepted", "refused": [{"index", "reason", "retryable"}]}``):
200 every entry put; 207 some put, some refused; 422 none put, every refusal is the entry's own
fault (resending will not help); 503 none put and some refusals are EventBridge's (resend those);
400/413 the body is not the format (``{"message"}``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .events import BadRequest, ClientEvent, dumps, parse_body

SOURCE = "braze.client-capture"
DETAIL_TYPE = "ClientEvent"
# Per-entry codes of PutEvents that a later attempt may not meet again.
RETRYABLE_CODES = frozenset({"InternalFailure", "InternalException", "ThrottlingException", "ServiceUnavailable"})
# Whole-call errors that are the request's own fault: the same request would be refused again.
REQUEST_FAULT_CODES = frozenset({"ValidationException", "SerializationException", "InvalidParameterValue"})
# PutEvents: each entry, and all entries of one call together, at most 256 KB as EventBridge counts them.
MAX_ENTRY_BYTES = 256 * 1024


class BusUnavailable(Exception):
    """The whole PutEvents call failed (throttled, an error, no answer, refused): nothing was put.
    ``code`` is AWS's error code; one of :data:`REQUEST_FAULT_CODES` is not worth resending."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# entries -> one result per entry, in order: None when put, else the error code.
PutEvents = Callable[[Sequence[dict[str, Any]]], Sequence[str | None]]


@dataclass(frozen=True)
class Refusal:
    index: int
    reason: str
    retryable: bool

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason, "retryable": self.retryable}


def submit(
    body: bytes, *, external_id: str, received_at: str, bus_name: str, put_events: PutEvents
) -> tuple[int, dict[str, Any]]:
    try:
        events, malformed = parse_body(body)
    except BadRequest as exc:
        return exc.status, {"message": exc.message}
    refused = [Refusal(index, reason, retryable=False) for index, reason in malformed]
    if events:
        refused += _put(events, external_id=external_id, received_at=received_at, bus_name=bus_name, put=put_events)
    refused.sort(key=lambda r: r.index)
    accepted = len(events) + len(malformed) - len(refused)
    return _status(accepted, refused), {"accepted": accepted, "refused": [r.as_json() for r in refused]}


def entry_size(entry: dict[str, Any]) -> int:
    """A PutEvents entry's size as EventBridge counts it: Time 14 bytes; Source, DetailType, Detail
    and each of Resources as UTF-8 bytes."""
    size = 14 if entry.get("Time") is not None else 0
    size += sum(len(str(entry.get(k) or "").encode("utf-8")) for k in ("Source", "DetailType", "Detail"))
    return size + sum(len(str(r).encode("utf-8")) for r in entry.get("Resources") or [] if r is not None)


def _put(
    events: list[ClientEvent], *, external_id: str, received_at: str, bus_name: str, put: PutEvents
) -> list[Refusal]:
    refused: list[Refusal] = []
    batches: list[list[tuple[ClientEvent, dict[str, Any]]]] = [[]]
    batch_size = 0
    for e in events:
        entry = {
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": dumps(e.detail(external_id=external_id, received_at=received_at)),
            "EventBusName": bus_name,
        }
        size = entry_size(entry)
        if size > MAX_ENTRY_BYTES:
            refused.append(Refusal(e.index, f"entry: too large for EventBridge ({size:,} bytes)", False))
            continue
        if batch_size + size > MAX_ENTRY_BYTES:  # PutEvents' limit holds for the whole call too
            batches.append([])
            batch_size = 0
        batches[-1].append((e, entry))
        batch_size += size
    for batch in batches:
        if batch:
            refused += _put_batch([e for e, _ in batch], [entry for _, entry in batch], put)
    return refused


def _put_batch(events: list[ClientEvent], entries: list[dict[str, Any]], put: PutEvents) -> list[Refusal]:
    try:
        codes = list(put(entries))
    except BusUnavailable as exc:
        retryable = exc.code not in REQUEST_FAULT_CODES
        return [Refusal(e.index, f"EventBridge did not take the events ({exc.code})", retryable) for e in events]
    if len(codes) != len(events):  # an answer that cannot be matched to entries proves nothing was put
        return [Refusal(e.index, "EventBridge's answer did not match the request", True) for e in events]
    return [
        Refusal(e.index, f"EventBridge refused the entry ({code})", code in RETRYABLE_CODES)
        for e, code in zip(events, codes, strict=True)
        if code is not None
    ]


def _status(accepted: int, refused: list[Refusal]) -> int:
    if not refused:
        return 200
    if accepted:
        return 207
    return 503 if any(r.retryable for r in refused) else 422
