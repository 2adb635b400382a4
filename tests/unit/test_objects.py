from __future__ import annotations

from typing import Any

import pytest
from braze_importer.objects import Invalid, Kind, check, classify

EVENT = {"external_id": "u", "name": "played", "time": "2026-01-01T10:00:00+01:00"}
PURCHASE = {"braze_id": "b", "product_id": "p", "currency": "USD", "price": 9.5, "time": "2026-01-01T10:00:00Z"}


@pytest.mark.parametrize(
    ("obj", "kind"),
    [
        (EVENT, Kind.EVENT),
        (PURCHASE, Kind.PURCHASE),
        ({"external_id": "u", "email": "x@example.com", "first_name": "A"}, Kind.ATTRIBUTES),
        ({"email": "x@example.com", "home_city": "Porto"}, Kind.ATTRIBUTES),
        ({"user_alias": {"alias_name": "n", "alias_label": "l"}, "name": "e", "time": "2026-01-01"}, Kind.EVENT),
        ({**EVENT, "time": "2026-01-01T10:00:00:000Z"}, Kind.EVENT),  # Braze's own format
        ({**EVENT, "time": "2026-01-01T10:00:00:000+0100"}, Kind.EVENT),
        ({**EVENT, "time": "2026-01-01T10:00:00.123456789-05:30"}, Kind.EVENT),
        ({**EVENT, "time": "2026-01-01T10:00Z"}, Kind.EVENT),
        ({**EVENT, "time": "2026-01-01"}, Kind.EVENT),
        # A custom attribute called name or product_id does not make an event or a purchase.
        ({"external_id": "u1", "name": "Bob"}, Kind.ATTRIBUTES),
        ({"external_id": "u1", "name": "Bob", "email": "bob@example.com", "home_city": "Porto"}, Kind.ATTRIBUTES),
        ({"external_id": "u1", "product_id": "p-1", "plan": "gold"}, Kind.ATTRIBUTES),
        ({"external_id": "u1", "name": "Bob", "product_id": "p-1"}, Kind.ATTRIBUTES),
    ],
)
def test_valid_objects_are_classified(obj: dict[str, Any], kind: str) -> None:
    assert classify(obj) == kind


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([1], "element is a JSON array, not an object"),
        ({"name": "e", "time": "2026-01-01"}, "no identifier"),
        ({"external_id": "u", "braze_id": "b"}, "more than one identifier"),
        ({"external_id": 5}, "external_id: must be a non-empty string"),
        ({"user_alias": {"alias_name": "n"}}, "user_alias: must be an object"),
        ({**EVENT, "time": None}, "time: is required"),
        ({**PURCHASE, "time": None}, "time: is required"),
        ({k: v for k, v in PURCHASE.items() if k != "time"}, "time: is required"),
        ({k: v for k, v in PURCHASE.items() if k != "currency"}, "currency: must be a three-letter"),
        ({**PURCHASE, "currency": "usd"}, "currency: must be a three-letter ISO 4217 code"),
        ({**EVENT, "time": "2026-W01-1"}, "time: is not an ISO 8601 datetime"),
        ({**EVENT, "time": "20260101"}, "time: is not an ISO 8601 datetime"),
        ({**EVENT, "time": "2026-001"}, "time: is not an ISO 8601 datetime"),
        ({**EVENT, "time": "2026-01-01 10:00:00"}, "time: is not an ISO 8601 datetime"),
        ({**EVENT, "time": "2026-02-30T10:00:00Z"}, "time: is not a real date"),
        ({**EVENT, "time": "2026-01-01T10:00:00:000"}, "time: is not an ISO 8601 datetime"),
        ({**EVENT, "time": "next tuesday"}, "time: is not an ISO 8601 datetime"),
        ({**EVENT, "properties": [1]}, "properties: must be an object"),
        ({**PURCHASE, "currency": "dollars"}, "currency: must be a three-letter ISO 4217 code"),
        ({**PURCHASE, "price": "9.5"}, "price: must be a number"),
        ({**PURCHASE, "price": True}, "price: must be a number"),
        ({**PURCHASE, "quantity": 101}, "quantity: must be an integer from 1 to 100"),
    ],
)
def test_invalid_objects_name_the_field_and_rule(obj: Any, reason: str) -> None:
    with pytest.raises(Invalid) as raised:
        classify(obj)
    assert reason in raised.value.reason


def test_reasons_never_carry_the_value() -> None:
    with pytest.raises(Invalid) as raised:
        classify({"external_id": "jane.doe@example.com", "name": "e", "time": "jane.doe@example.com"})
    assert "jane" not in raised.value.reason


# Braze's documented forms for an event's or purchase's time: ISO 8601 (with or without an
# offset: without one, Braze reads UTC, as its Cloud Data Ingestion samples write times) and
# yyyy-MM-dd'T'HH:mm:ss:SSSZ.
TIMES = [
    "2024-04-02T14:34:08",  # Braze's CDI samples: no offset, UTC
    "2024-04-02T14:34:08.598806",  # fractions without an offset
    "2024-04-02T14:34",
    "2024-04-02T14:34:08Z",
    "2024-04-02T14:34:08.123Z",
    "2024-04-02T14:34:08+02:00",
    "2024-04-02T14:34:08-0530",
    "2024-04-02T14:34:08+02",
    "2024-04-02T14:34:08:123Z",  # Braze's own format
    "2024-04-02T14:34:08:123+0100",
    "2024-04-02",
]


@pytest.mark.parametrize("time", TIMES)
@pytest.mark.parametrize("kind", [Kind.EVENT, Kind.PURCHASE])
def test_every_documented_time_form_is_taken_for_events_and_purchases(time: str, kind: str) -> None:
    obj = {**(EVENT if kind == Kind.EVENT else PURCHASE), "time": time}
    assert classify(obj) == kind
    check(obj, kind)


@pytest.mark.parametrize(
    "time", ["2024-04-02 14:34:08", "2024-04-02T14:34:08:123", "1712068448", "2024-13-02T00:00:00"]
)
@pytest.mark.parametrize("kind", [Kind.EVENT, Kind.PURCHASE])
def test_undocumented_time_forms_are_rejected_in_every_folder(time: str, kind: str) -> None:
    obj = {**(EVENT if kind == Kind.EVENT else PURCHASE), "time": time}
    with pytest.raises(Invalid, match="time: is not"):
        check(obj, kind)


def test_a_time_as_a_number_is_rejected() -> None:
    with pytest.raises(Invalid, match="time: must be an ISO 8601 string"):
        check({**EVENT, "time": 1712068448}, Kind.EVENT)


@pytest.mark.parametrize(
    "attrs",
    [
        {"dob": "1980-12-21"},
        {"dob": None},  # unsets it
        {"date_of_first_session": "2024-04-02T14:34:08"},
        {"date_of_last_session": "2024-04-02T14:34:08:000Z"},
        {"date_of_last_session": None},
        {"last_visit": "2023-08-08T16:03:26.598806", "joined": "any text at all"},  # custom: any string
    ],
)
def test_attribute_dates_in_braze_forms_are_taken(attrs: dict[str, Any]) -> None:
    obj = {"external_id": "u", **attrs}
    assert classify(obj) == Kind.ATTRIBUTES
    check(obj, Kind.ATTRIBUTES)


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({"dob": "21/12/1980"}, "dob: must be a date written YYYY-MM-DD"),
        ({"dob": "1980-12-21T00:00:00Z"}, "dob: must be a date written YYYY-MM-DD"),
        ({"dob": 19801221}, "dob: must be a date written YYYY-MM-DD"),
        ({"dob": "1980-02-30"}, "dob: is not a real date"),
        ({"date_of_first_session": "yesterday"}, "date_of_first_session: must be a date in a form Braze documents"),
        ({"date_of_last_session": 1712068448}, "date_of_last_session: must be a date in a form Braze documents"),
    ],
)
def test_attribute_dates_braze_would_not_take_are_rejected(attrs: dict[str, Any], reason: str) -> None:
    obj = {"external_id": "u", **attrs}
    with pytest.raises(Invalid, match=reason):
        check(obj, Kind.ATTRIBUTES)  # in attributes/: the folder says they are attributes
    assert classify(obj) == Kind.ATTRIBUTES  # directly under incoming/: today's rules, unchecked
