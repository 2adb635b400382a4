"""``POST /event``'s two body formats and its answers: every entry is either put or listed with its
index and reason; 200 only when all were put."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from client_capture.events import MAX_BODY_BYTES
from client_capture.submit import DETAIL_TYPE, MAX_ENTRY_BYTES, SOURCE, BusUnavailable, entry_size, submit

RECEIVED = "2026-11-30T12:00:00.000Z"


class FakeBus:
    """PutEvents in memory: ``codes`` are the per-entry answers to give (None: put)."""

    def __init__(self, codes: Sequence[str | None] | None = None, down: str | None = None) -> None:
        self.codes = codes
        self.down = down
        self.entries: list[dict[str, Any]] = []

    def __call__(self, entries: Sequence[dict[str, Any]]) -> list[str | None]:
        if self.down:
            raise BusUnavailable(self.down)
        codes = list(self.codes) if self.codes is not None else [None] * len(entries)
        self.entries += [e for e, c in zip(entries, codes, strict=True) if c is None]
        return codes

    def details(self) -> list[dict[str, Any]]:
        return [json.loads(e["Detail"]) for e in self.entries]


def post(body: Any, bus: FakeBus | None = None, external_id: str = "user-7") -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return submit(raw, external_id=external_id, received_at=RECEIVED, bus_name="capture", put_events=bus or FakeBus())


def entry(**fields: Any) -> dict[str, str]:
    return {"entry": json.dumps(fields)}


def test_the_capture_clients_wire_format_is_put_unchanged_with_the_tokens_external_id() -> None:
    bus = FakeBus()
    body = {
        "entries": [
            entry(eventType="loyaltypurchase", schemaVersion="1.0", data={"sku": 'a "quoted" \\ name'},
                  time="2026-11-30T11:59:00Z", external_id="someone-else"),
            entry(eventType="pageview", schemaVersion=2, data={}),
        ]
    }  # fmt: skip
    assert post(body, bus) == (200, {"accepted": 2, "refused": []})
    assert [(e["Source"], e["DetailType"], e["EventBusName"]) for e in bus.entries] == [
        (SOURCE, DETAIL_TYPE, "capture")
    ] * 2
    first, second = bus.details()
    assert first == {
        "external_id": "user-7", "event_type": "loyaltypurchase", "schema_version": "1.0",
        "data": {"sku": 'a "quoted" \\ name'}, "time": "2026-11-30T11:59:00Z", "received_at": RECEIVED,
    }  # fmt: skip
    assert (second["schema_version"], second["time"]) == ("2", None)


def test_the_plain_events_form_is_accepted_too() -> None:
    bus = FakeBus()
    status, _ = post({"events": [{"eventType": "signup", "data": {"plan": "pro"}, "userId": "x"}]}, bus)
    assert status == 200
    assert bus.details()[0]["external_id"] == "user-7"
    assert bus.details()[0]["data"] == {"plan": "pro"}


def test_malformed_entries_are_listed_and_the_rest_put() -> None:
    bus = FakeBus()
    body = {
        "entries": [
            entry(eventType="ok", data={}),
            {"entry": "{not json"},
            entry(data={}),
            entry(eventType="late", data={}, time="yesterday"),
            entry(eventType="bad", data=[1, 2]),
            entry(eventType="priv", data={"$reserved": 1}),
            {"notentry": 1},
        ]
    }
    status, answer = post(body, bus)
    assert status == 207
    assert answer["accepted"] == 1
    assert [(r["index"], r["retryable"]) for r in answer["refused"]] == [(i, False) for i in range(1, 7)]
    reasons = [r["reason"] for r in answer["refused"]]
    assert "not valid JSON" in reasons[0]
    assert reasons[1].startswith("eventType")
    assert reasons[2].startswith("time")
    assert reasons[3].startswith("data")
    assert "$" in reasons[4]
    assert [d["event_type"] for d in bus.details()] == ["ok"]


def test_entries_eventbridge_refuses_are_listed_with_whether_to_resend_them() -> None:
    bus = FakeBus(codes=[None, "ThrottlingException", "MalformedDetail"])
    status, answer = post({"events": [{"eventType": f"e{i}"} for i in range(3)]}, bus)
    assert status == 207
    assert answer == {
        "accepted": 1,
        "refused": [
            {"index": 1, "reason": "EventBridge refused the entry (ThrottlingException)", "retryable": True},
            {"index": 2, "reason": "EventBridge refused the entry (MalformedDetail)", "retryable": False},
        ],
    }


def test_indexes_stay_the_requests_own_when_malformed_and_refused_entries_mix() -> None:
    bus = FakeBus(codes=[None, "InternalFailure"])  # the two well-formed entries: 0 and 2
    status, answer = post({"events": [{"eventType": "a"}, {"eventType": ""}, {"eventType": "c"}]}, bus)
    assert status == 207
    assert [(r["index"], r["retryable"]) for r in answer["refused"]] == [(1, False), (2, True)]


def test_eventbridge_down_is_503_with_every_entry_to_resend() -> None:
    status, answer = post({"events": [{"eventType": "a"}, {"eventType": "b"}]}, FakeBus(down="ThrottlingException"))
    assert status == 503
    assert answer["accepted"] == 0
    assert all(r["retryable"] for r in answer["refused"]) and len(answer["refused"]) == 2


def test_all_entries_malformed_is_422_not_200() -> None:
    bus = FakeBus()
    status, answer = post({"events": [{"eventType": 5}, "text"]}, bus)
    assert (status, answer["accepted"], len(answer["refused"])) == (422, 0, 2)
    assert bus.entries == []


def test_an_answer_that_does_not_match_the_entries_is_not_taken_as_success() -> None:
    def short(entries: Sequence[dict[str, Any]]) -> list[str | None]:
        return []

    status, answer = submit(b'{"events": [{"eventType": "a"}]}', external_id="u", received_at=RECEIVED,
                            bus_name="b", put_events=short)  # fmt: skip
    assert status == 503 and answer["refused"][0]["retryable"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 400, "JSON object"),
        (b"[]", 400, "JSON object"),
        (b"{}", 400, '"entries" or "events"'),
        (json.dumps({"entries": [], "events": []}).encode(), 400, '"entries" or "events"'),
        (json.dumps({"entries": []}).encode(), 400, "non-empty array"),
        (json.dumps({"events": {"eventType": "a"}}).encode(), 400, "non-empty array"),
        (json.dumps({"events": [{"eventType": "a"}] * 11}).encode(), 400, "at most 10"),
        (b'{"events": [{"eventType": "' + b"x" * MAX_BODY_BYTES + b'"}]}', 413, "at most 262,144"),
    ],
)
def test_a_body_that_is_not_the_format_is_refused_whole(body: bytes, status: int, message: str) -> None:
    bus = FakeBus()
    answer = post(body, bus)
    assert answer[0] == status and message in answer[1]["message"]
    assert bus.entries == []


def test_an_entry_with_a_lone_surrogate_is_refused_with_its_index_and_nothing_else_is_lost() -> None:
    bus = FakeBus()
    body = b'{"events":[{"eventType":"ok"},{"eventType":"poison","data":{"x":"\\ud800"}}]}'
    status, answer = post(body, bus)
    assert status == 207
    assert [(r["index"], r["retryable"]) for r in answer["refused"]] == [(1, False)]
    assert "UTF-8" in answer["refused"][0]["reason"]
    assert [d["event_type"] for d in bus.details()] == ["ok"]
    alone = post(b'{"events":[{"eventType":"poison","data":{"x":"\\ud800"}}]}', FakeBus())
    assert alone[0] == 422
    surrogate_name = post(b'{"events":[{"eventType":"\\udfff"}]}', FakeBus())
    assert surrogate_name[0] == 422 and surrogate_name[1]["refused"][0]["reason"].startswith("eventType")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"events":[{"eventType":"n","data":{"x":NaN}}]}', "data"),
        (b'{"events":[{"eventType":"n","data":{"x":Infinity}}]}', "data"),
        (b'{"events":[{"eventType":"n","data":{"x":-Infinity}}]}', "data"),
        (b'{"events":[{"eventType":"n","data":{"x":1e400}}]}', "data"),
        (b'{"events":[{"eventType":"n","data":{"x":{"y":[-1e999]}}}]}', "data"),
        (b'{"entries":[{"entry":"{\\"eventType\\":\\"n\\",\\"data\\":{\\"x\\":NaN}}"}]}', "data"),
        (b'{"events":[{"eventType":"n","schemaVersion":1e400}]}', "schemaVersion"),
    ],
)
def test_non_finite_numbers_are_refused_not_written_as_invalid_json(body: bytes, field: str) -> None:
    bus = FakeBus()
    status, answer = post(body, bus)
    assert status == 422, answer
    assert answer["refused"][0]["reason"].startswith(field)
    assert "finite" in answer["refused"][0]["reason"]
    assert bus.entries == []


def test_a_string_property_over_255_characters_and_properties_over_50_kb_are_refused() -> None:
    bus = FakeBus()
    events = [
        {"eventType": "ok", "data": {"x": "a" * 255, "nested": {"y": "é" * 255}}},
        {"eventType": "long", "data": {"x": "a" * 256}},
        {"eventType": "nested", "data": {"x": {"y": ["b" * 256]}}},
        {"eventType": "big", "data": {f"k{i}": "c" * 250 for i in range(220)}},  # ~56 KB
    ]
    status, answer = post({"events": events}, bus)
    assert status == 207
    refused = {r["index"]: r["reason"] for r in answer["refused"]}
    assert set(refused) == {1, 2, 3}
    assert "255" in refused[1] and "255" in refused[2]
    assert "50" in refused[3]
    assert [d["event_type"] for d in bus.details()] == ["ok"]


def test_deeply_nested_json_is_a_clear_400_or_a_refused_entry_not_a_crash() -> None:
    deep = b'{"events":[{"eventType":"d","data":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}]}"
    status, answer = post(deep, FakeBus())
    assert status in (400, 413) and "message" in answer
    inner = '{"eventType":"d","data":' + '{"a":' * 5_000 + "1" + "}" * 5_000 + "}"
    status, answer = post({"entries": [{"entry": inner}, entry(eventType="ok")]}, FakeBus())
    assert status == 207 and answer["refused"][0]["index"] == 0
    nested = {"eventType": "d", "data": {}}
    level = nested["data"]
    for _ in range(60):
        level["a"] = {}
        level = level["a"]
    status, answer = post({"events": [nested]}, FakeBus())
    assert status == 422 and "deep" in answer["refused"][0]["reason"]


def test_entries_are_serialized_compactly_and_a_full_body_fits_eventbridges_request_limit() -> None:
    bus = FakeBus()
    # Ten entries filling the 256 KB body: the fields the API adds (a long external id among them)
    # take the entries past PutEvents' 256 KB per request, so they must go in more than one call.
    props = {f"k{i:03}": "v" * 200 for i in range(124)}
    body = json.dumps({"events": [{"eventType": "e", "data": props}] * 10}, separators=(",", ":")).encode()
    assert MAX_BODY_BYTES - 2_000 < len(body) <= MAX_BODY_BYTES
    calls: list[int] = []

    def put(entries: Sequence[dict[str, Any]]) -> list[str | None]:
        calls.append(sum(entry_size(e) for e in entries))
        return bus(entries)

    status, answer = submit(body, external_id="u" * 200, received_at=RECEIVED, bus_name="capture", put_events=put)
    assert status == 200, answer
    assert len(bus.entries) == 10 and len(calls) >= 2
    assert all(size <= MAX_ENTRY_BYTES for size in calls)
    assert ": " not in bus.entries[0]["Detail"] and ", " not in bus.entries[0]["Detail"]


def test_an_entry_eventbridge_would_find_too_large_is_refused_before_putting() -> None:
    bus = FakeBus()
    status, answer = submit(b'{"events":[{"eventType":"e"}]}', external_id="u" * MAX_ENTRY_BYTES,
                            received_at=RECEIVED, bus_name="capture", put_events=bus)  # fmt: skip
    assert status == 422 and bus.entries == []
    assert not answer["refused"][0]["retryable"] and "too large" in answer["refused"][0]["reason"]


def test_entry_size_counts_source_detail_type_detail_and_resources_in_utf8() -> None:
    assert entry_size({"Source": "s", "DetailType": "dt", "Detail": "é", "Resources": ["ab", "€"]}) == 1 + 2 + 2 + 2 + 3
    assert entry_size({"Source": "s", "DetailType": "d", "Time": "x"}) == 2 + 14


def test_eventbridge_refusing_the_request_itself_is_not_retryable() -> None:
    status, answer = post({"events": [{"eventType": "a"}]}, FakeBus(down="ValidationException"))
    assert status == 422
    assert answer["refused"][0]["retryable"] is False


@pytest.mark.parametrize(
    ("time", "ok"),
    [
        ("2026-11-30T11:59:00Z", True),
        ("2026-11-30T11:59:00.123+01:00", True),
        ("2026-11-30T11:59-0500", True),
        ("2026-11-30T11:59:00", False),  # no zone: Braze would read it as UTC, whatever the client meant
        ("2026-11-30", False),
        ("2026-11-30T25:00:00Z", False),
        ("\uff12\uff10\uff12\uff16-11-30T11:59:00Z", False),  # full-width digits are not ISO 8601
    ],
)
def test_time_must_be_a_date_time_with_a_zone(time: str, ok: bool) -> None:
    status, answer = post({"events": [{"eventType": "t", "time": time}]}, FakeBus())
    assert (status == 200) is ok, answer
    if not ok:
        assert answer["refused"][0]["reason"].startswith("time")
