"""The emulator's catalogs: the setting that makes them, the bulk item endpoints and their answers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.emulator_harness import Running, running

FIELDS = [
    {"name": "id", "type": "string"},
    {"name": "name", "type": "string"},
    {"name": "price", "type": "number"},
    {"name": "in_stock", "type": "boolean"},
    {"name": "launched", "type": "time"},
    {"name": "details", "type": "object"},
    {"name": "tags", "type": "array"},
]
ITEMS = "/catalogs/products/items"


@pytest.fixture
def braze(server: Running) -> Running:
    server.reset()
    server.configure(catalogs={"products": {"description": "Shop", "fields": FIELDS}})
    return server


def item(item_id: Any, **values: Any) -> dict[str, Any]:
    return {"id": item_id, **values}


def errors(answer: Any) -> dict[str, tuple[list[str], list[Any]]]:
    body = answer.json()
    assert body["message"] == "Invalid Request"
    return {e["id"]: (e["parameters"], e["parameter_values"]) for e in body["errors"]}


def stored(braze: Running) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in braze.items("products")["items"]}


# -- the catalogs setting ----------------------------------------------------------------------


def test_a_catalog_comes_from_the_setting_and_is_listed_with_its_fields(braze: Running) -> None:
    answer = braze.call("GET", "/catalogs")
    assert answer.status_code == 200
    body = answer.json()
    assert body["message"] == "success"
    (catalog,) = body["catalogs"]
    assert catalog["name"] == "products" and catalog["description"] == "Shop"
    assert catalog["fields"] == FIELDS and catalog["num_items"] == 0 and catalog["updated_at"]


def test_catalogs_can_be_set_at_start(tmp_path: Any) -> None:
    with running(catalogs={"a": {"fields": [{"name": "id", "type": "string"}]}}) as braze:
        assert [c["name"] for c in braze.call("GET", "/catalogs").json()["catalogs"]] == ["a"]
        assert braze.call("POST", "/catalogs/a/items", {"items": [{"id": "x"}]}).status_code == 202


@pytest.mark.parametrize(
    "catalogs",
    [
        [],
        {"p": {"fields": []}},
        {"p": {"fields": [{"name": "sku", "type": "string"}]}},
        {"p": {"fields": [{"name": "id", "type": "number"}]}},
        {"p": {"fields": [{"name": "id", "type": "string"}, {"name": "x", "type": "integer"}]}},
        {"p": {"fields": [{"name": "id", "type": "string"}, *[{"name": "x", "type": "string"}] * 2]}},
        {"bad name": {"fields": [{"name": "id", "type": "string"}]}},
    ],
)
def test_a_bad_catalogs_setting_is_refused_and_changes_nothing(braze: Running, catalogs: Any) -> None:
    answer = braze.http.post("/_emulator/config", json={"catalogs": catalogs})
    assert answer.status_code == 400 and answer.json()["message"]
    assert [c["name"] for c in braze.call("GET", "/catalogs").json()["catalogs"]] == ["products"]


def test_setting_catalogs_again_keeps_the_items_of_catalogs_that_stay(braze: Running) -> None:
    assert braze.call("POST", ITEMS, {"items": [item("a", price=1)]}).status_code == 202
    other = {"fields": [{"name": "id", "type": "string"}]}
    braze.configure(catalogs={"products": {"fields": FIELDS}, "other": other})
    assert list(stored(braze)) == ["a"]
    braze.configure(catalogs={"other": other})
    assert braze.call("POST", ITEMS, {"items": [item("b")]}).status_code == 404
    braze.configure(catalogs={"products": {"fields": FIELDS}})
    assert stored(braze) == {}  # the catalog went away with its items


def test_the_item_endpoints_never_create_a_catalog(braze: Running) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        answer = braze.call(method, "/catalogs/nope/items", {"items": [item("a")]})
        assert answer.status_code == 404
        body = answer.json()
        assert body["errors"][0]["id"] == "catalog-not-found"
        assert body["errors"][0]["parameter_values"] == ["nope"]
    assert braze.http.get("/_emulator/catalogs/nope").status_code == 404
    assert [c["name"] for c in braze.call("GET", "/catalogs").json()["catalogs"]] == ["products"]


# -- create, replace, edit, delete --------------------------------------------------------------


def test_create_stores_new_items_and_answers_202(braze: Running) -> None:
    new = [
        item("a-1", name="Lamp", price=12.5, in_stock=True, launched="2024-04-02T14:34:08Z"),
        item("b_2", details={"colour": "red", "size": {"w": 2}}, tags=["x", "y"]),
    ]
    answer = braze.call("POST", ITEMS, {"items": new})
    assert answer.status_code == 202 and answer.json() == {"message": "success"}
    assert stored(braze) == {i["id"]: i for i in new}
    assert braze.call("GET", "/catalogs").json()["catalogs"][0]["num_items"] == 2


def test_create_does_not_overwrite_an_existing_item_and_records_why(braze: Running) -> None:
    braze.call("POST", ITEMS, {"items": [item("a", price=1)]})
    answer = braze.call("POST", ITEMS, {"items": [item("a", price=2), item("b", price=3)]})
    assert answer.status_code == 202  # asynchronous in Braze: the conflict is not in the answer
    assert {k: v["price"] for k, v in stored(braze).items()} == {"a": 1, "b": 3}
    assert braze.items("products")["failures"] == [{"method": "POST", "id": "a", "error": "item-already-exists"}]


def test_replace_creates_or_replaces_the_whole_item(braze: Running) -> None:
    braze.call("POST", ITEMS, {"items": [item("a", name="Lamp", price=1)]})
    answer = braze.call("PUT", ITEMS, {"items": [item("a", price=2), item("b", name="New")]})
    assert answer.status_code == 202
    assert stored(braze) == {"a": {"id": "a", "price": 2}, "b": {"id": "b", "name": "New"}}


def test_edit_changes_only_the_given_fields_of_existing_items(braze: Running) -> None:
    braze.call("POST", ITEMS, {"items": [item("a", name="Lamp", price=1, tags=["x", "y"])]})
    edit = [item("a", price=5, name=None, tags={"$add": ["z", "x"], "$remove": ["y"]}), item("ghost", price=1)]
    answer = braze.call("PATCH", ITEMS, {"items": edit})
    assert answer.status_code == 202
    assert stored(braze) == {"a": {"id": "a", "price": 5, "tags": ["x", "z"]}}
    assert braze.items("products")["failures"] == [{"method": "PATCH", "id": "ghost", "error": "item-not-found"}]


def test_delete_removes_the_items(braze: Running) -> None:
    braze.call("POST", ITEMS, {"items": [item("a"), item("b"), item("c")]})
    answer = braze.call("DELETE", ITEMS, {"items": [item("a"), item("c"), item("zz")]})
    assert answer.status_code == 202 and answer.json() == {"message": "success"}
    assert list(stored(braze)) == ["b"]
    assert braze.items("products")["failures"] == [{"method": "DELETE", "id": "zz", "error": "item-not-found"}]


# -- refusals: the whole request, nothing stored -----------------------------------------------


@pytest.mark.parametrize("body", [{}, {"items": {}}, {"items": []}, {"items": ["a"]}, [1], "x"])
def test_items_must_be_an_array_of_objects(braze: Running, body: Any) -> None:
    answer = braze.call("POST", ITEMS, body)
    assert answer.status_code == 400
    assert errors(answer) == {"item-array-invalid": ([], [])}


def test_more_than_50_items_is_refused(braze: Running) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        answer = braze.call(method, ITEMS, {"items": [item(f"i{n}") for n in range(51)]})
        assert answer.status_code == 400
        assert list(errors(answer)) == ["request-includes-too-many-items"]
    assert braze.call("POST", ITEMS, {"items": [item(f"i{n}") for n in range(50)]}).status_code == 202


def test_items_without_ids_are_counted(braze: Running) -> None:
    answer = braze.call("POST", ITEMS, {"items": [{"name": "x"}, item("ok"), {"price": 1}]})
    assert answer.status_code == 400
    body = answer.json()
    assert body["errors"] == [
        {
            "id": "items-missing-ids",
            "message": "There are 2 item(s) that do not have ids",
            "parameters": [],
            "parameter_values": [],
        }
    ]
    assert stored(braze) == {}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_bad_ids_are_named(braze: Running, method: str) -> None:
    bad = [item(7), item("x" * 251), item("has space"), item("dup"), item("dup"), item("fine")]
    answer = braze.call(method, ITEMS, {"items": bad})
    assert answer.status_code == 400
    assert errors(answer) == {
        "ids-not-strings": (["id"], [7]),
        "ids-too-large": (["id"], ["x" * 251]),
        "invalid-ids": (["id"], ["has space"]),
        "ids-not-unique": (["id"], ["dup"]),
    }
    assert stored(braze) == {}


def test_an_id_of_250_characters_is_fine(braze: Running) -> None:
    assert braze.call("POST", ITEMS, {"items": [item("x" * 250)]}).status_code == 202


def test_one_bad_item_fails_the_whole_request_naming_every_offender(braze: Running) -> None:
    batch = [item("good", price=1), item("a", colour="red"), item("b", size=1), item("c", price="12")]
    answer = braze.call("POST", ITEMS, {"items": batch})
    assert answer.status_code == 400
    assert errors(answer) == {
        "invalid-fields": (["id", "id"], ["a", "b"]),
        "unable-to-coerce-value": (["id"], ["c"]),
    }
    assert stored(braze) == {}  # not even the good one


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", 5),
        ("price", "5"),
        ("price", True),
        ("in_stock", "true"),
        ("launched", "yesterday"),
        ("launched", 1700000000),
        ("details", ["a"]),
        ("tags", "a"),
        ("tags", [1, 2]),
        ("tags", [str(n) for n in range(101)]),
    ],
)
def test_a_value_of_the_wrong_type_cannot_be_coerced(braze: Running, field: str, value: Any) -> None:
    answer = braze.call("PUT", ITEMS, {"items": [item("a", **{field: value})]})
    assert answer.status_code == 400
    assert errors(answer) == {"unable-to-coerce-value": (["id"], ["a"])}


def test_only_patch_edits_arrays(braze: Running) -> None:
    for method in ("POST", "PUT"):
        answer = braze.call(method, ITEMS, {"items": [item("a", tags={"$add": ["a"]})]})
        assert answer.status_code == 400
        assert errors(answer)["unable-to-coerce-value"] == (["id"], ["a"])
    answer = braze.call("PATCH", ITEMS, {"items": [item("a", name={"$add": ["a"]})]})
    assert errors(answer)["unable-to-coerce-value"] == (["id"], ["a"])  # not an array field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "x"),
        ("price", 0),
        ("price", -1.5),
        ("in_stock", False),
        ("launched", "2024-04-02"),
        ("launched", "2024-04-02T14:34:08.967+00:00"),
        ("details", {}),
        ("tags", []),
        ("name", None),
    ],
)
def test_a_value_of_the_right_type_is_taken(braze: Running, field: str, value: Any) -> None:
    assert braze.call("PUT", ITEMS, {"items": [item("a", **{field: value})]}).status_code == 202


def test_keys_inside_object_values_may_not_hold_dots_or_dollars(braze: Running) -> None:
    batch = [item("a", details={"a.b": 1}), item("b", details={"x": {"$y": 1}}), item("c", details={"ok": 1})]
    answer = braze.call("PUT", ITEMS, {"items": batch})
    assert errors(answer) == {"invalid-keys-in-value-object": (["id", "id"], ["a", "b"])}


def test_nesting_past_50_levels_is_refused(braze: Running) -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(50):
        deep = {"k": deep}
    answer = braze.call("PUT", ITEMS, {"items": [item("a", details=deep)]})
    assert errors(answer) == {"too-deep-nesting-in-value-object": (["id"], ["a"])}
    assert braze.call("PUT", ITEMS, {"items": [item("a", details=deep["k"])]}).status_code == 202


def test_an_item_over_5000_characters_is_too_large(braze: Running) -> None:
    answer = braze.call("PUT", ITEMS, {"items": [item("a", name="x" * 5000)]})
    assert errors(answer) == {"items-too-large": (["id"], ["a"])}
    assert braze.call("PUT", ITEMS, {"items": [item("a", name="x" * 4980)]}).status_code == 202


def test_delete_reads_only_the_ids(braze: Running) -> None:
    braze.call("POST", ITEMS, {"items": [item("a")]})
    assert braze.call("DELETE", ITEMS, {"items": [item("a", unknown_field=1)]}).status_code == 202
    assert stored(braze) == {}


def test_the_item_endpoints_need_the_key(braze: Running) -> None:
    answer = braze.call("POST", ITEMS, {"items": [item("a")]}, auth=False)
    assert answer.status_code == 401
    assert stored(braze) == {}
    assert braze.call("GET", "/catalogs", auth=False).status_code == 401


def test_reset_forgets_catalogs_and_items(braze: Running) -> None:
    braze.call("POST", ITEMS, {"items": [item("a")]})
    braze.reset()
    assert braze.call("GET", "/catalogs").json()["catalogs"] == []
    assert braze.http.get("/_emulator/catalogs").json() == {"catalogs": {}}


def test_item_size_counts_characters_not_bytes(braze: Running) -> None:
    assert braze.call("PUT", ITEMS, {"items": [item("a", name="東" * 4980)]}).status_code == 202
