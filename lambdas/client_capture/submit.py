"""``POST /event``: parse the body, put every well-formed entry on the bus in one call, and answer
for each entry. Never 200 unless every entry was put.

Answers (always JSON ``{"accepted", "refused": [{"index", "reason", "retryable"}]}``):
200 every entry put; 207 some put, some refused; 422 none put, every refusal is the entry's own
fault (resending will not help); 503 none put and some refusals are EventBridge's (resend those);
400/413 the body is not the format (``{"message"}``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .events import BadRequest, ClientEvent, parse_body

SOURCE = "braze.client-capture"
DETAIL_TYPE = "ClientEvent"
# Per-entry codes of PutEvents that a later attempt may not meet again.
RETRYABLE_CODES = frozenset({"InternalFailure", "InternalException", "ThrottlingException", "ServiceUnavailable"})


class BusUnavailable(Exception):
    """The whole PutEvents call failed (throttled, an error, no answer): nothing was put."""

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


def _put(
    events: list[ClientEvent], *, external_id: str, received_at: str, bus_name: str, put: PutEvents
) -> list[Refusal]:
    entries = [
        {
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": json.dumps(e.detail(external_id=external_id, received_at=received_at), ensure_ascii=False),
            "EventBusName": bus_name,
        }
        for e in events
    ]
    try:
        codes = list(put(entries))
    except BusUnavailable as exc:
        return [Refusal(e.index, f"EventBridge did not take the events ({exc.code})", True) for e in events]
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
