"""The emulator's per-user state: what /users/track leaves on a profile, and /users/delete."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.emulator_harness import Running

ALIAS = {"alias_name": "device-1", "alias_label": "device"}


def attrs(braze: Running, external_id: str = "u1") -> dict[str, Any]:
    attributes: dict[str, Any] = braze.user(external_id)["attributes"]
    return attributes


def set_attributes(braze: Running, *objects: dict[str, Any]) -> None:
    answer = braze.track(attributes=list(objects))
    assert answer.status_code == 201, answer.text


# -- attributes ---------------------------------------------------------------------------------


def test_attributes_set_replace_and_null_removes(braze: Running) -> None:
    set_attributes(braze, {"external_id": "u1", "first_name": "Ada", "tier": "gold", "score": 1})
    set_attributes(braze, {"external_id": "u1", "tier": "silver", "score": None})
    assert attrs(braze) == {"first_name": "Ada", "tier": "silver"}
    user = braze.user("u1")
    assert user["external_id"] == "u1" and user["braze_id"].startswith("emu-")


def test_inc_adds_to_a_number_and_starts_from_zero(braze: Running) -> None:
    set_attributes(braze, {"external_id": "u1", "visits": {"inc": 2}, "words": "x"})
    set_attributes(braze, {"external_id": "u1", "visits": {"inc": 3}, "words": {"inc": 1}})
    set_attributes(braze, {"external_id": "u1", "visits": {"inc": -1}})
    assert attrs(braze) == {"visits": 4, "words": 1}


def test_arrays_hold_each_value_once_and_add_remove_edit_them(braze: Running) -> None:
    set_attributes(braze, {"external_id": "u1", "food": ["hotdog", "hotdog", "pizza", "taco"]})
    assert attrs(braze)["food"] == ["hotdog", "pizza", "taco"]
    set_attributes(braze, {"external_id": "u1", "food": {"add": ["hotdog", "sushi"], "remove": ["pizza"]}})
    assert attrs(braze)["food"] == ["taco", "hotdog", "sushi"]  # an added value already there moves to the end
    set_attributes(braze, {"external_id": "u1", "new": {"add": ["a"]}, "gone": {"remove": ["a"]}})
    assert attrs(braze)["new"] == ["a"] and attrs(braze)["gone"] == []


def test_arrays_keep_at_most_max_array_length_values(braze: Running) -> None:
    braze.configure(max_array_length=3)
    set_attributes(braze, {"external_id": "u1", "a": ["1", "2", "3", "4"], "b": ["1", "2", "3"]})
    set_attributes(braze, {"external_id": "u1", "b": {"add": ["4"]}})
    assert attrs(braze) == {"a": ["1", "2", "3"], "b": ["2", "3", "4"]}  # setting cuts the tail, add drops the oldest


def test_a_nested_object_replaces_unless_merge_objects(braze: Running) -> None:
    set_attributes(braze, {"external_id": "u1", "book": {"title": "Dune", "meta": {"year": 1965, "pages": 412}}})
    set_attributes(braze, {"external_id": "u1", "book": {"meta": {"year": 1966}}})
    assert attrs(braze)["book"] == {"meta": {"year": 1966}}
    set_attributes(braze, {"external_id": "u1", "book": {"title": "Dune", "meta": {"year": 1965, "pages": 412}}})
    set_attributes(
        braze, {"external_id": "u1", "_merge_objects": True, "book": {"meta": {"year": 1966, "pages": None}, "x": 1}}
    )
    assert attrs(braze)["book"] == {"title": "Dune", "meta": {"year": 1966}, "x": 1}
    assert "_merge_objects" not in attrs(braze)


def test_a_null_at_any_depth_of_an_object_is_an_absent_key(braze: Running) -> None:
    set_attributes(braze, {"external_id": "u1", "plan": {"tier": "gold", "limits": {"seats": 3, "note": None}}})
    assert attrs(braze)["plan"] == {"tier": "gold", "limits": {"seats": 3}}
    merged = {"limits": {"seats": None}, "extra": {"a": None, "b": 1}}
    set_attributes(braze, {"external_id": "u1", "_merge_objects": True, "plan": merged})
    assert attrs(braze)["plan"] == {"tier": "gold", "limits": {}, "extra": {"b": 1}}  # an emptied object stays


def test_what_a_delta_sends_leaves_the_profile_a_full_send_would(braze: Running) -> None:
    # Given a user set in full, and the same user's next state,
    first = {"tier": "gold", "visits": 4, "tags": ["a", "b", "c"], "plan": {"seats": 3, "geo": {"city": "Oslo"}}}
    second = {"tier": "gold", "tags": ["a", "c", "d"], "plan": {"seats": 4, "geo": {}}}
    set_attributes(braze, {"external_id": "u1", **first}, {"external_id": "u2", **first})
    # when u1 gets only the changes (null, array add/remove, a deep merge) and u2 the whole new state,
    delta = {"visits": None, "tags": {"add": ["d"], "remove": ["b"]}, "plan": {"seats": 4, "geo": {"city": None}}}
    set_attributes(braze, {"external_id": "u1", "_merge_objects": True, **delta})
    set_attributes(braze, {"external_id": "u2", "visits": None, **second})
    # then both profiles hold the new state.
    assert attrs(braze, "u1") == attrs(braze, "u2") == second


def test_arrays_of_objects_take_add_remove_and_update(braze: Running) -> None:
    stays = [{"id": 1, "hotel": "Ocean"}, {"id": 2, "hotel": "Lodge"}]
    set_attributes(braze, {"external_id": "u1", "stays": stays})
    set_attributes(
        braze,
        {
            "external_id": "u1",
            "stays": {
                "$add": [{"id": 3, "hotel": "Inn"}],
                "$remove": [{"$identifier_key": "id", "$identifier_value": 1}],
                "$update": [{"$identifier_key": "id", "$identifier_value": 2, "$new_object": {"nights": 3}}],
            },
        },
    )
    assert attrs(braze)["stays"] == [{"id": 2, "hotel": "Lodge", "nights": 3}, {"id": 3, "hotel": "Inn"}]


def test_update_existing_only_creates_no_profile(braze: Running) -> None:
    set_attributes(braze, {"external_id": "new", "_update_existing_only": True, "a": 1})
    assert braze.users() == [] and braze.http.get("/_emulator/state").json()["unmatched"] == 1
    set_attributes(braze, {"external_id": "new", "a": 1})
    set_attributes(braze, {"external_id": "new", "_update_existing_only": True, "a": 2})
    assert attrs(braze, "new") == {"a": 2}


# -- who an object is --------------------------------------------------------------------------


def test_an_alias_makes_a_profile_only_when_update_existing_only_is_false(braze: Running) -> None:
    set_attributes(braze, {"user_alias": ALIAS, "a": 1})
    assert braze.users() == []  # Braze's default for an alias is update-only
    set_attributes(braze, {"user_alias": ALIAS, "_update_existing_only": False, "a": 1})
    set_attributes(braze, {"user_alias": ALIAS, "b": 2})
    (user,) = braze.users(alias_name="device-1", alias_label="device")
    assert user["external_id"] is None and user["user_aliases"] == [ALIAS]
    assert user["attributes"] == {"a": 1, "b": 2}


def test_an_alias_on_a_known_user_is_added_to_that_profile(braze: Running) -> None:
    set_attributes(braze, {"external_id": "u1", "user_alias": ALIAS, "a": 1})
    braze.track(events=[{"user_alias": ALIAS, "name": "opened", "time": "2024-04-02T14:34:08"}])
    user = braze.user("u1")
    assert user["user_aliases"] == [ALIAS] and user["event_counts"] == {"opened": 1}


def test_email_and_phone_find_or_make_a_profile(braze: Running) -> None:
    set_attributes(braze, {"email": "Ada@Example.com", "a": 1}, {"phone": "+15550001", "b": 1})
    set_attributes(braze, {"email": "ada@example.com", "a": 2})
    (by_email,) = braze.users(email="ADA@example.com")
    assert by_email["email"] == "ada@example.com" and by_email["attributes"] == {"a": 2}  # the last one given
    (by_phone,) = braze.users(phone="+15550001")
    assert by_phone["phone"] == "+15550001" and by_phone["attributes"] == {"b": 1}
    assert len(braze.users()) == 2


def test_a_shared_email_updates_the_most_recently_updated_profile(braze: Running) -> None:
    shared = "x@example.com"
    set_attributes(braze, {"external_id": "u1", "email": shared}, {"external_id": "u2", "email": shared})
    set_attributes(braze, {"external_id": "u1", "touch": 1})
    set_attributes(braze, {"email": "x@example.com", "chosen": True})
    assert attrs(braze, "u1") == {"touch": 1, "chosen": True} and attrs(braze, "u2") == {}


def test_braze_id_finds_a_profile_and_never_makes_one(braze: Running) -> None:
    set_attributes(braze, {"braze_id": "emu-99", "a": 1})
    assert braze.users() == []
    set_attributes(braze, {"external_id": "u1"})
    braze_id = braze.user("u1")["braze_id"]
    set_attributes(braze, {"braze_id": braze_id, "a": 1})
    assert attrs(braze) == {"a": 1} and braze.users(braze_id=braze_id)[0]["external_id"] == "u1"


def test_changing_the_email_attribute_reindexes_the_profile(braze: Running) -> None:
    set_attributes(braze, {"external_id": "u1", "email": "old@example.com"})
    set_attributes(braze, {"external_id": "u1", "email": "new@example.com"})
    assert braze.users(email="old@example.com") == []
    assert braze.users(email="new@example.com")[0]["external_id"] == "u1"
    assert "email" not in attrs(braze)


def test_users_query_must_name_one_identifier(braze: Running) -> None:
    assert braze.http.get("/_emulator/users", params={"name": "x"}).status_code == 400
    assert braze.http.get("/_emulator/users", params={"external_id": "a", "email": "b"}).status_code == 400
    assert braze.users(external_id="nobody") == []


# -- events and purchases ---------------------------------------------------------------------


def test_events_and_purchases_are_appended_and_counted_per_user(braze: Running) -> None:
    event = {"external_id": "u1", "name": "played", "time": "2024-04-02T14:34:08", "properties": {"song": "a"}}
    purchase = {"external_id": "u1", "product_id": "p1", "currency": "EUR", "price": 2.5, "time": "2024-04-02"}
    answer = braze.track(events=[event, {**event, "name": "paused"}, event], purchases=[purchase, purchase])
    assert answer.status_code == 201
    braze.track(events=[{**event, "external_id": "u2"}])
    user = braze.user("u1")
    assert user["event_counts"] == {"played": 2, "paused": 1}
    assert user["events"][0] == {"name": "played", "time": "2024-04-02T14:34:08", "properties": {"song": "a"}}
    assert [e["name"] for e in user["events"]] == ["played", "paused", "played"]
    assert user["purchase_counts"] == {"p1": 2} and len(user["purchases"]) == 2
    assert braze.user("u2")["event_counts"] == {"played": 1}


def test_invalid_objects_change_no_profile_and_the_objects_log_is_kept(braze: Running) -> None:
    answer = braze.track(
        attributes=[{"external_id": "u1", "a": 1}], events=[{"external_id": "u2", "time": "2024-01-01"}]
    )
    assert answer.status_code == 201 and answer.json()["errors"][0]["input_array"] == "events"
    assert [u["external_id"] for u in braze.users()] == ["u1"]
    assert braze.http.get("/_emulator/objects").json() == [
        {"array": "attributes", "object": {"external_id": "u1", "a": 1}}
    ]


def test_profiles_can_be_turned_off(braze: Running) -> None:
    braze.configure(profiles=False)
    set_attributes(braze, {"external_id": "u1", "a": 1})
    assert braze.users() == [] and braze.http.get("/_emulator/state").json()["stored"] == 1


# -- /users/delete ---------------------------------------------------------------------------


def delete(braze: Running, body: Any) -> Any:
    return braze.call("POST", "/users/delete", body)


def test_delete_by_external_id_removes_those_users_only(braze: Running) -> None:
    set_attributes(braze, *({"external_id": f"u{n}", "a": n} for n in range(4)))
    answer = delete(braze, {"external_ids": ["u1", "u3", "nobody"]})
    assert answer.status_code == 201
    assert answer.json() == {"deleted": 3, "message": "success"}  # identifiers queued, as Braze counts them
    assert sorted(u["external_id"] for u in braze.users()) == ["u0", "u2"]
    state = braze.http.get("/_emulator/state").json()
    assert state["users_deleted"] == 2 and state["users"] == 2
    set_attributes(braze, {"external_id": "u1", "_update_existing_only": True, "a": 9})
    assert braze.users(external_id="u1") == []  # gone for good


def test_delete_by_every_other_identifier(braze: Running) -> None:
    set_attributes(
        braze,
        {"user_alias": ALIAS, "_update_existing_only": False},
        {"external_id": "e1", "email": "Shared@example.com"},
        {"external_id": "e2", "email": "shared@example.com"},
        {"external_id": "p1", "phone": "+15550001"},
        {"external_id": "b1"},
        {"external_id": "keep"},
    )
    braze_id = braze.user("b1")["braze_id"]
    assert delete(braze, {"user_aliases": [ALIAS]}).json()["deleted"] == 1
    assert delete(braze, {"email_addresses": ["SHARED@example.com"]}).json()["deleted"] == 1
    assert delete(braze, {"phone_numbers": ["+15550001"]}).status_code == 201
    assert delete(braze, {"braze_ids": [braze_id]}).status_code == 201
    assert [u["external_id"] for u in braze.users()] == ["keep"]  # every profile with that email went
    assert braze.users(alias_name=ALIAS["alias_name"], alias_label=ALIAS["alias_label"]) == []
    assert braze.http.get("/_emulator/state").json()["users_deleted"] == 5


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"external_ids": []},
        {"external_ids": ["a"], "braze_ids": ["b"]},
        {"external_ids": [f"u{n}" for n in range(51)]},
        {"external_ids": "u1"},
        {"external_ids": [1]},
        {"external_ids": [""]},
        {"user_aliases": [{"alias_name": "x"}]},
        {"user_aliases": ["x"]},
        {"emails": ["a@example.com"]},
        ["u1"],
    ],
)
def test_a_bad_delete_is_refused_and_deletes_nothing(braze: Running, body: Any) -> None:
    set_attributes(braze, {"external_id": "u1"}, {"external_id": "b"})
    answer = delete(braze, body)
    assert answer.status_code == 400 and answer.json()["message"]
    assert len(braze.users()) == 2


def test_fifty_identifiers_is_the_most(braze: Running) -> None:
    answer = delete(braze, {"external_ids": [f"u{n}" for n in range(50)]})
    assert answer.status_code == 201 and answer.json()["deleted"] == 50


def test_delete_needs_the_key(braze: Running) -> None:
    set_attributes(braze, {"external_id": "u1"})
    assert braze.call("POST", "/users/delete", {"external_ids": ["u1"]}, auth=False).status_code == 401
    assert len(braze.users()) == 1


def test_without_record_only_the_counts_of_events_and_purchases_are_kept(braze: Running) -> None:
    braze.configure(record=False)
    event = {"external_id": "u1", "name": "played", "time": "2024-04-02T14:34:08"}
    purchase = {"external_id": "u1", "product_id": "p1", "currency": "EUR", "price": 1, "time": "2024-04-02"}
    braze.track(events=[event, event], purchases=[purchase], attributes=[{"external_id": "u1", "a": 1}])
    user = braze.user("u1")
    assert user["events"] == [] and user["purchases"] == []
    assert user["event_counts"] == {"played": 2} and user["purchase_counts"] == {"p1": 1}
    assert user["attributes"] == {"a": 1}


@pytest.mark.parametrize(
    ("array", "obj", "problem"),
    [
        ("attributes", {"a": 1}, "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"),
        ("attributes", {"external_id": "", "a": 1}, "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is"),
        ("events", {"external_id": "u", "time": "2024-01-01"}, "Event name is required"),
        ("events", {"external_id": "u", "name": "", "time": "2024-01-01"}, "Event name is required"),
        ("events", {"external_id": "u", "name": "x"}, "Event time is required"),
        ("purchases", {"external_id": "u", "currency": "EUR", "price": 1, "time": "t"}, "Purchase product_id is"),
        ("purchases", {"external_id": "u", "product_id": "p", "currency": "EUR", "price": True, "time": "t"}, "price"),
        ("purchases", {"external_id": "u", "product_id": "p", "currency": "EUR", "price": "1", "time": "t"}, "price"),
        ("events", {"email": "a@example.com", "name": "x", "time": "t", "properties": {"$k": 1}}, "cannot begin"),
        ("events", {"external_id": "u", "name": "x", "time": "t", "properties": {"k": "v" * 256}}, "at most 255"),
    ],
)
def test_invalid_objects_are_named_with_braze_s_reason(braze: Running, array: str, obj: Any, problem: str) -> None:
    answer = braze.track(**{array: [obj]})
    assert answer.status_code == 400
    (error,) = answer.json()["errors"]
    assert error["input_array"] == array and error["index"] == 0 and problem in error["type"]
    assert braze.users() == []


def test_any_identifier_makes_an_object_valid(braze: Running) -> None:
    objects = [{"braze_id": "b"}, {"user_alias": ALIAS}, {"email": "a@example.com"}, {"phone": "+1555"}]
    answer = braze.track(
        attributes=objects, purchases=[{**objects[3], "product_id": "p", "currency": "EUR", "price": 2.5, "time": "t"}]
    )
    assert answer.status_code == 201 and "errors" not in answer.json()
