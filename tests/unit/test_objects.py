from __future__ import annotations

from typing import Any

import pytest
from braze_importer.objects import Invalid, Kind, classify

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
