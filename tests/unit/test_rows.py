"""Kinds by folder and Braze Cloud Data Ingestion rows: routes, merging, rejects with reasons."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from braze_importer.objects import Invalid, Kind
from braze_importer.rows import Route, as_object, is_cdi_row, route_for


@pytest.mark.parametrize(
    ("relative", "route"),
    [
        ("a.json", Route()),
        ("attributes/a.csv", Route(Kind.ATTRIBUTES)),
        ("events/2026/01/a.jsonl.gz", Route(Kind.EVENT)),
        ("purchases/a.json", Route(Kind.PURCHASE)),
        ("other/a.json", Route()),
        ("attributes", Route()),  # a file named like a folder, directly under incoming/
        ("dry-run/a.json", Route(None, True)),
        ("dry-run/events/a.jsonl", Route(Kind.EVENT, True)),
    ],
)
def test_the_folder_fixes_the_kind_and_the_dry_run(relative: str, route: Route) -> None:
    assert route_for(relative) == route


def test_a_dry_run_folder_below_the_first_is_refused_even_inside_a_dry_run() -> None:
    route = route_for("dry-run/dry-run/events/a.jsonl")
    assert route.dry_run and route.refused is not None and "directly under the incoming prefix" in route.refused


@pytest.mark.parametrize(
    ("relative", "route"),
    [
        ("catalogs/shoes/a.json", Route(catalog="shoes")),
        ("catalogs/shoes/2026/01/a.jsonl", Route(catalog="shoes")),
        ("dry-run/catalogs/Shoe_list-2/a.json", Route(dry_run=True, catalog="Shoe_list-2")),
        ("user-deletes/a.jsonl", Route(user_deletes=True)),
        ("dry-run/user-deletes/a.json", Route(dry_run=True, user_deletes=True)),
    ],
)
def test_catalog_and_user_delete_folders_name_their_endpoint(relative: str, route: Route) -> None:
    assert route_for(relative) == route


@pytest.mark.parametrize("relative", ["catalogs/a.json", "catalogs/shoes and socks/a.json", "catalogs/é/a.json"])
def test_a_catalog_folder_that_names_no_valid_catalog_is_refused(relative: str) -> None:
    route = route_for(relative)
    assert route.catalog is None and route.refused is not None and "nothing was sent" in route.refused


def test_an_attributes_object_with_name_and_time_is_attributes_in_the_attributes_folder() -> None:
    obj = {"external_id": "u1", "name": "GT896", "time": "not a time at all", "product_id": "p", "price": 1}
    assert as_object(dict(obj), Kind.ATTRIBUTES) == obj


def test_an_event_in_the_events_folder_must_be_a_valid_event() -> None:
    with pytest.raises(Invalid, match="name"):
        as_object({"external_id": "u1", "time": "2024-04-02T14:34:08"}, Kind.EVENT)
    with pytest.raises(Invalid, match="time: is required"):
        as_object({"external_id": "u1", "name": "x"}, Kind.EVENT)
    with pytest.raises(Invalid, match="currency"):
        as_object({"external_id": "u1", "product_id": "p", "price": 1, "time": "2024-04-02"}, Kind.PURCHASE)


def payload(**fields: Any) -> str:
    return orjson.dumps(fields).decode()


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"external_id": "u1", "payload": payload(age=3)}, {"external_id": "u1", "age": 3}),
        ({"EXTERNAL_ID": "u1", "PAYLOAD": payload(age=3)}, {"external_id": "u1", "age": 3}),
        ({"External_Id": "u1", "Payload": {"age": 3}}, {"external_id": "u1", "age": 3}),  # an object in JSON files
        ({"BRAZE_ID": "b1", "PAYLOAD": payload(age=3)}, {"braze_id": "b1", "age": 3}),
        ({"EMAIL": "a@example.com", "PAYLOAD": payload(age=3)}, {"email": "a@example.com", "age": 3}),
        ({"PHONE": "+15555550100", "PAYLOAD": payload(age=3)}, {"phone": "+15555550100", "age": 3}),
        (
            {"ALIAS_NAME": "n", "ALIAS_LABEL": "l", "PAYLOAD": payload(age=3)},
            {"user_alias": {"alias_name": "n", "alias_label": "l"}, "age": 3},
        ),
        # Empty identifier cells (a CSV with several identifier columns) name no identifier.
        (
            {"EXTERNAL_ID": "u1", "EMAIL": "", "BRAZE_ID": None, "PAYLOAD": payload(age=3)},
            {"external_id": "u1", "age": 3},
        ),
        # The same identifier in the payload is the same user; UPDATED_AT (a warehouse column) is not sent.
        (
            {"EXTERNAL_ID": "u1", "UPDATED_AT": "2024-01-01", "PAYLOAD": payload(external_id="u1", age=3)},
            {"external_id": "u1", "age": 3},
        ),
        # An email in an attributes payload is the email attribute, set on the user the row names.
        (
            {"EXTERNAL_ID": "u1", "PAYLOAD": payload(email="a@example.com")},
            {"external_id": "u1", "email": "a@example.com"},
        ),
    ],
)
def test_a_cdi_row_becomes_one_braze_object(row: dict[str, Any], expected: dict[str, Any]) -> None:
    assert is_cdi_row(row)
    assert as_object(row, Kind.ATTRIBUTES) == expected


def test_a_cdi_event_takes_name_time_and_properties_from_its_payload() -> None:
    row = {
        "external_id": "s3-qa-0",
        "payload": payload(app_id="A", name="view-206", time="2024-04-02T14:34:08", properties={"n": 206}),
    }
    assert as_object(row, Kind.EVENT) == {
        "external_id": "s3-qa-0", "app_id": "A", "name": "view-206", "time": "2024-04-02T14:34:08",
        "properties": {"n": 206},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"PAYLOAD": payload(age=3)}, "no identifier"),
        ({"EXTERNAL_ID": "", "PAYLOAD": payload(age=3)}, "no identifier"),
        ({"EXTERNAL_ID": "u1", "BRAZE_ID": "b1", "PAYLOAD": payload(age=3)}, "more than one identifier"),
        ({"EXTERNAL_ID": "u1", "EMAIL": "a@example.com", "PAYLOAD": "{}"}, "more than one identifier"),
        ({"EXTERNAL_ID": "u1", "PAYLOAD": payload(external_id="u2")}, "different users"),
        ({"EXTERNAL_ID": "u1", "PAYLOAD": payload(braze_id="b2")}, "different users"),
        (
            {"EMAIL": "a@example.com", "PAYLOAD": payload(user_alias={"alias_name": "n", "alias_label": "l"})},
            "different",
        ),
        ({"ALIAS_NAME": "n", "PAYLOAD": payload(age=3)}, "needs both"),
        ({"EXTERNAL_ID": 7, "PAYLOAD": payload(age=3)}, "EXTERNAL_ID: must be a string"),
        ({"external_id": "u1", "EXTERNAL_ID": "u1", "PAYLOAD": "{}"}, "same column twice"),
        ({"EXTERNAL_ID": "u1", "PAYLOAD": "{not json"}, "PAYLOAD: is not valid JSON"),
        ({"EXTERNAL_ID": "u1", "PAYLOAD": "[1, 2]"}, "PAYLOAD: is a JSON array"),
        ({"EXTERNAL_ID": "u1", "PAYLOAD": "42"}, "PAYLOAD: is a JSON number"),
        ({"EXTERNAL_ID": "u1", "PAYLOAD": [1]}, "PAYLOAD: is a JSON array"),
        ({"EXTERNAL_ID": "u1", "PAYLOAD": ""}, "PAYLOAD: is empty"),
        ({"EXTERNAL_ID": "u1", "PAYLOAD": None}, "PAYLOAD: is empty"),
    ],
)
def test_a_bad_cdi_row_is_a_reject_with_its_reason(row: dict[str, Any], reason: str) -> None:
    with pytest.raises(Invalid, match=reason) as caught:
        as_object(row, Kind.ATTRIBUTES)
    assert "u1" not in caught.value.reason and "a@example.com" not in caught.value.reason  # no values in reasons


def test_an_object_with_other_keys_than_cdi_columns_is_a_braze_object() -> None:
    obj = {"external_id": "u1", "payload": "kept as an attribute", "tier": "gold"}
    assert not is_cdi_row(obj)
    assert as_object(dict(obj), Kind.ATTRIBUTES) == obj
