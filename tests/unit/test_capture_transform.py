"""Firehose's transform: each capture event becomes one importer line (a Braze custom event); an
event that cannot be one goes to Firehose's error output, never silently away."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from client_capture.events import Invalid, braze_event
from client_capture.transform_handler import transform_record


def bus_event(**detail: Any) -> dict[str, Any]:
    base = {
        "external_id": "user-7", "event_type": "loyaltypurchase", "schema_version": "1.0",
        "data": {"sku": "A-1", "note": 'says "hi"\n'}, "time": "2026-11-30T11:59:00Z",
        "received_at": "2026-11-30T12:00:00.000Z",
    }  # fmt: skip
    base.update(detail)
    return {"version": "0", "id": "e1", "source": "braze.client-capture", "detail-type": "ClientEvent",
            "time": "2026-11-30T12:00:00Z", "detail": base}  # fmt: skip


def record(event: Any, record_id: str = "r1") -> dict[str, str]:
    data = event if isinstance(event, bytes) else json.dumps(event).encode()
    return {"recordId": record_id, "approximateArrivalTimestamp": "0", "data": base64.b64encode(data).decode()}


def test_an_event_becomes_a_braze_custom_event_with_schema_version_in_its_properties() -> None:
    assert braze_event(bus_event()) == {
        "external_id": "user-7",
        "name": "loyaltypurchase",
        "time": "2026-11-30T11:59:00Z",
        "properties": {"sku": "A-1", "note": 'says "hi"\n', "schema_version": "1.0"},
    }


def test_an_empty_schema_version_from_another_producer_is_delivered_as_written() -> None:
    # The API refuses "" from clients; an event another producer put on the bus still goes to
    # Braze, where an empty string is a valid property value.
    assert braze_event(bus_event(schema_version=""))["properties"]["schema_version"] == ""


def test_without_its_own_time_an_event_takes_the_time_the_api_received_it() -> None:
    assert braze_event(bus_event(time=None))["time"] == "2026-11-30T12:00:00.000Z"
    assert "schema_version" not in braze_event(bus_event(schema_version=None))["properties"]


@pytest.mark.parametrize(
    ("detail", "field"),
    [
        ({"external_id": ""}, "external_id"),
        ({"external_id": None}, "external_id"),
        ({"event_type": ""}, "event_type"),
        ({"time": None, "received_at": "soon"}, "time"),
        ({"data": ["x"]}, "data"),
        ({"data": {"$x": 1}}, "data"),
    ],
)
def test_an_event_that_cannot_be_a_braze_event_is_invalid(detail: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid, match=f"^{field}"):
        braze_event(bus_event(**detail))


def test_the_transform_writes_json_lines_and_sends_the_rest_to_the_error_output() -> None:
    records = [record(bus_event(), "ok"), record(bus_event(external_id=""), "noid"), record(b"{oops", "garbage")]
    answer = [transform_record(r) for r in records]
    results = {r["recordId"]: r for r in answer}
    line = base64.b64decode(results["ok"]["data"])
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one JSON Lines line per event
    assert json.loads(line)["external_id"] == "user-7"
    for failed in ("noid", "garbage"):
        assert results[failed]["result"] == "ProcessingFailed"
        # The original record goes to the error output, so nothing is lost.
        assert results[failed]["data"] == next(r["data"] for r in records if r["recordId"] == failed)


def test_one_unencodable_event_fails_alone_and_the_batch_goes_on() -> None:
    poison = b'{"detail":{"external_id":"u","event_type":"poison","data":{"x":"\\ud800"},"time":"2026-11-30T11:59Z"}}'
    records = [record(bus_event(), "ok"), record(poison, "poison"), record(bus_event(), "ok2")]
    results = {r["recordId"]: r["result"] for r in (transform_record(r) for r in records)}
    assert results == {"ok": "Ok", "poison": "ProcessingFailed", "ok2": "Ok"}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"detail":{"external_id":"u","event_type":"n","data":{"x":NaN},"time":"2026-11-30T11:59:00Z"}}',
        b'{"detail":{"external_id":"u","event_type":"n","data":{"x":1e400},"time":"2026-11-30T11:59:00Z"}}',
        b'{"detail":{"external_id":"u","event_type":"n","data":{"x":[Infinity]},"time":"2026-11-30T11:59:00Z"}}',
        b'{"detail":{"external_id":"u","event_type":"n","data":{},"schema_version":NaN,"time":"2026-11-30T11:59:00Z"}}',
    ],
)
def test_non_finite_numbers_never_reach_the_importer(raw: bytes) -> None:
    assert transform_record(record(raw))["result"] == "ProcessingFailed"


def test_properties_braze_would_refuse_go_to_the_error_output() -> None:
    too_long = record(bus_event(data={"x": "a" * 256}))
    too_big = record(bus_event(data={f"k{i}": "c" * 250 for i in range(220)}))
    too_deep = record(b'{"detail":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001)
    for r in (too_long, too_big, too_deep):
        assert transform_record(r)["result"] == "ProcessingFailed"
    ok = transform_record(record(bus_event(data={"x": "a" * 255})))
    assert ok["result"] == "Ok"
