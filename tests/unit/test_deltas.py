"""The rules of what is sent for an attributes object given what was last set for its user."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from braze_importer.deltas import (
    MAX_RECORD_BYTES,
    NULL,
    UNKNOWN,
    WHOLE,
    Changes,
    Delta,
    Record,
    apply,
    diff,
    digest,
    record_size,
    unanswered,
    user_key,
)

MAX_AGE = 30 * 86400.0
T0 = 1_800_000_000.0


def recorded(obj: dict[str, Any], now: float = T0) -> Record:
    delta = diff(obj, None, now=now, max_age_seconds=MAX_AGE)
    assert delta.changes is not None
    record = apply(None, delta.changes)
    assert record is not None
    return record


def again(first: dict[str, Any], second: dict[str, Any], **kwargs: Any) -> Delta:
    return diff(second, recorded(first), now=T0 + 60, max_age_seconds=MAX_AGE, **kwargs)


# -- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "key"),
    [
        ({"external_id": "u1", "braze_id": "b1", "email": "a@b.c"}, "e:u1"),
        ({"external_id": 42}, "e:42"),
        ({"external_id": "", "braze_id": "b1"}, "b:b1"),
        ({"braze_id": "b1", "user_alias": {"alias_name": "n", "alias_label": "l"}}, "b:b1"),
        ({"user_alias": {"alias_name": "n", "alias_label": "l"}, "email": "a@b.c"}, "a:l:n"),
        ({"email": " Ada@Example.COM ", "phone": "+331"}, "m:ada@example.com"),
        ({"phone": " +33 1 "}, "p:+33 1"),
        ({"email": "", "phone": "+331"}, "p:+331"),
        ({"user_alias": {"alias_name": "n"}, "first_name": "x"}, None),
        ({"first_name": "x"}, None),
    ],
)
def test_the_user_key_follows_braze_identifier_precedence(obj: dict[str, Any], key: str | None) -> None:
    assert user_key(obj) == key


def test_alias_keys_are_unambiguous() -> None:
    def alias(name: str, label: str) -> str | None:
        return user_key({"user_alias": {"alias_name": name, "alias_label": label}})

    keys = {alias("b:c", "a"), alias("c", "a:b"), alias("c", "a\\:b"), alias("\\:b", "a"), alias("b", "a\\")}
    assert len(keys) == 5
    # Every kind of identifier has its own prefix: an external_id spelled like an alias key stays apart.
    assert user_key({"external_id": "a:l:n"}) != alias("n", "l")


# -- plain values ------------------------------------------------------------------------------


def test_unchanged_values_are_dropped_and_an_object_left_with_identifiers_is_not_sent() -> None:
    user = {"external_id": "u1", "app_id": "x", "name": "Ada", "age": 36, "tags": ["a", "b"], "geo": {"c": "P"}}
    delta = again(user, dict(user))
    assert delta.send is None
    assert delta.changes is None
    assert delta.dropped
    assert (delta.read, delta.sent, delta.skipped) == (4, 0, 4)


def test_a_first_sighting_sends_everything_even_identifiers_alone() -> None:
    delta = diff({"external_id": "u1"}, None, now=T0, max_age_seconds=MAX_AGE)
    assert delta.send == {"external_id": "u1"}  # creating the profile is the object's whole point
    assert not delta.dropped


def test_a_changed_scalar_is_sent_as_is_and_other_keys_pass_through() -> None:
    user = {"external_id": "u1", "app_id": "x", "name": "Ada", "age": 36}
    delta = again(user, {**user, "age": 37})
    assert delta.send == {"external_id": "u1", "app_id": "x", "age": 37}
    assert delta.changes is not None
    assert delta.changes.set == {"age": digest(37)}
    assert delta.changes.expected == {"age": digest(36)}
    assert (delta.read, delta.sent, delta.skipped) == (2, 1, 1)


@pytest.mark.parametrize(("old", "new"), [(1, 1.0), (1, True), (0, False), ("1", 1), (None, "")])
def test_values_of_another_type_are_changes(old: Any, new: Any) -> None:
    delta = again({"external_id": "u1", "v": old, "w": 0}, {"external_id": "u1", "v": new, "w": 0})
    assert delta.send == {"external_id": "u1", "v": new}


def test_null_is_sent_once_then_the_value_is_recorded_as_absent() -> None:
    first = {"external_id": "u1", "age": 36, "other": 1}
    delta = again(first, {"external_id": "u1", "age": None})
    assert delta.send == {"external_id": "u1", "age": None}
    assert delta.changes is not None
    after = apply(recorded(first), delta.changes)
    assert after is not None
    assert after.values == {"other": digest(1), "age": NULL}
    second = diff({"external_id": "u1", "age": None}, after, now=T0 + 120, max_age_seconds=MAX_AGE)
    assert second.send is None
    assert second.skipped == 1


def test_a_null_without_a_record_is_sent_and_recorded_as_known_absent() -> None:
    delta = diff({"external_id": "u1", "age": None, "x": 1}, None, now=T0, max_age_seconds=MAX_AGE)
    assert delta.send == {"external_id": "u1", "age": None, "x": 1}
    assert delta.changes is not None
    assert delta.changes.set == {"x": digest(1), "age": NULL}


def test_an_attribute_the_record_does_not_name_is_not_known_absent() -> None:
    # A full send names only some attributes; Braze keeps the others (set by an earlier file or by
    # someone else): a later null for one of them must reach Braze.
    record = recorded({"external_id": "u1", "x": 1})
    delta = diff({"external_id": "u1", "x": 1, "gone": None}, record, now=T0 + 1, max_age_seconds=MAX_AGE)
    assert delta.send == {"external_id": "u1", "gone": None}


def test_an_update_only_object_makes_even_attributes_it_names_first_unknown() -> None:
    record = recorded({"external_id": "u1", "x": 1})
    only = {"external_id": "u1", "x": 2, "y": 3, "_update_existing_only": True}
    delta = diff(only, record, now=T0 + 1, max_age_seconds=MAX_AGE)
    assert delta.send == only
    after = apply(record, delta.changes) if delta.changes is not None else record
    assert after is not None
    # y was never known: a null for it is sent; x became unknown: its old value is sent again.
    later = diff({"external_id": "u1", "x": 1, "y": None}, after, now=T0 + 2, max_age_seconds=MAX_AGE)
    assert later.send == {"external_id": "u1", "x": 1, "y": None}


def test_a_nested_attribute_sent_whole_never_rides_with_another_ones_deep_merge() -> None:
    first = {"external_id": "u1", "a": {"k": 1, "j": 1}}
    record = recorded(first)
    # "a" changed one leaf (a merge would do), "b" is new (must be set whole): both go whole, no merge.
    second = {"external_id": "u1", "a": {"k": 2, "j": 1}, "b": {"m": 1}}
    delta = diff(second, record, now=T0 + 1, max_age_seconds=MAX_AGE)
    assert delta.send == second
    assert "_merge_objects" not in delta.send


@pytest.mark.parametrize("key", ["inc", "add", "$add"])
def test_a_nested_delta_that_reads_as_an_operation_is_sent_whole(key: str) -> None:
    value = [1] if key != "inc" else 1
    first = {"external_id": "u1", "n": {key: value, "other": 1}}
    second = {"external_id": "u1", "n": {key: [2] if key != "inc" else 2, "other": 1}}
    delta = diff(second, recorded(first), now=T0 + 1, max_age_seconds=MAX_AGE)
    assert delta.send == second


@pytest.mark.parametrize("name", ["current_location", "facebook", "twitter"])
def test_standard_object_attributes_are_sent_whole_when_they_change(name: str) -> None:
    first = {"external_id": "u1", name: {"latitude": 1.5, "longitude": 2.5}}
    second = {"external_id": "u1", name: {"latitude": 1.5, "longitude": 3.5}}
    record = recorded(first)
    assert diff(first, record, now=T0 + 1, max_age_seconds=MAX_AGE).send is None
    assert diff(second, record, now=T0 + 1, max_age_seconds=MAX_AGE).send == second


# -- arrays ------------------------------------------------------------------------------------


def test_an_array_of_strings_sends_what_was_added_and_removed() -> None:
    delta = again({"external_id": "u1", "t": ["a", "b", "c"]}, {"external_id": "u1", "t": ["d", "c", "a", "d", "e"]})
    assert delta.send == {"external_id": "u1", "t": {"add": ["d", "e"], "remove": ["b"]}}
    only_removed = again({"external_id": "u1", "t": ["a", "b"]}, {"external_id": "u1", "t": ["a"]})
    assert only_removed.send == {"external_id": "u1", "t": {"remove": ["b"]}}
    emptied = again({"external_id": "u1", "t": ["a", "b"]}, {"external_id": "u1", "t": []})
    assert emptied.send == {"external_id": "u1", "t": {"remove": ["a", "b"]}}


def test_order_and_duplicates_alone_are_no_change() -> None:
    delta = again({"external_id": "u1", "t": ["a", "b", "a"]}, {"external_id": "u1", "t": ["b", "b", "a"]})
    assert delta.send is None


def test_an_array_first_seen_is_sent_as_is() -> None:
    first = diff({"external_id": "u1", "t": ["b", "a", "b"]}, None, now=T0, max_age_seconds=MAX_AGE)
    assert first.send == {"external_id": "u1", "t": ["b", "a", "b"]}
    # ... and so is one that was a scalar, or not recorded, before.
    assert again({"external_id": "u1", "t": "a"}, {"external_id": "u1", "t": ["a"]}).send == {
        "external_id": "u1",
        "t": ["a"],
    }
    assert again({"external_id": "u1", "x": 1}, {"external_id": "u1", "x": 1, "t": ["a"]}).send == {
        "external_id": "u1",
        "t": ["a"],
    }


def test_arrays_of_other_values_and_of_objects_are_sent_whole() -> None:
    first = {"external_id": "u1", "n": [1, 2], "o": [{"id": 1, "v": "a"}]}
    assert again(first, dict(first)).send is None
    assert again(first, {**first, "n": [2, 1]}).send == {"external_id": "u1", "n": [2, 1]}
    changed = [{"id": 1, "v": "b"}]
    assert again(first, {**first, "o": changed}).send == {"external_id": "u1", "o": changed}


# -- nested objects ----------------------------------------------------------------------------


def test_a_nested_object_sends_changed_keys_merged_and_null_for_what_went() -> None:
    first = {"external_id": "u1", "n": {"a": 1, "b": {"c": 2, "d": {"e": 3, "f": 4}}, "g": 5}, "x": 1}
    second = {"external_id": "u1", "n": {"a": 1, "b": {"c": 2, "d": {"e": 30}}, "h": {"i": 6}}, "x": 1}
    delta = again(first, second)
    assert delta.send == {
        "external_id": "u1",
        "n": {"b": {"d": {"e": 30, "f": None}}, "g": None, "h": {"i": 6}},
        "_merge_objects": True,
    }
    assert delta.changes is not None
    changed, gone = delta.changes.paths["n"]
    assert changed == {'["b","d","e"]': digest(30), '["h","i"]': digest(6), WHOLE: digest(second["n"])}
    assert sorted(gone) == ['["b","d","f"]', '["g"]']


def test_a_whole_subtree_that_went_is_one_null() -> None:
    delta = again({"external_id": "u1", "n": {"a": 1, "b": {"c": {"d": 1}}}}, {"external_id": "u1", "n": {"a": 1}})
    assert delta.send == {"external_id": "u1", "n": {"b": None}, "_merge_objects": True}


def test_a_nested_object_first_seen_or_replacing_a_scalar_is_sent_whole_and_replaces() -> None:
    first = diff({"external_id": "u1", "n": {"a": {"b": 1}}}, None, now=T0, max_age_seconds=MAX_AGE)
    assert first.send == {"external_id": "u1", "n": {"a": {"b": 1}}}  # no _merge_objects: Braze replaces
    delta = again({"external_id": "u1", "n": 5}, {"external_id": "u1", "n": {"a": 1}})
    assert delta.send == {"external_id": "u1", "n": {"a": 1}}


def test_an_unchanged_nested_object_is_dropped_whatever_its_key_order() -> None:
    first = {"external_id": "u1", "n": {"a": 1, "b": {"c": 2, "d": 3}}}
    assert again(first, {"external_id": "u1", "n": {"b": {"d": 3, "c": 2}, "a": 1}}).send is None


# -- not plain values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n", {"inc": 1}),
        ("t", {"add": ["x"]}),
        ("t", {"remove": ["a"]}),
        ("o", {"$add": [{"id": 2}]}),
        ("o", {"$update": [{"$identifier_key": "id", "$identifier_value": 1, "$new_object": {"v": 2}}]}),
        ("subscription_groups", [{"subscription_group_id": "g", "subscription_state": "subscribed"}]),
        ("push_tokens", [{"app_id": "a", "token": "t"}]),
    ],
)
def test_operations_are_always_sent_never_recorded_and_clear_the_record(name: str, value: Any) -> None:
    first = {"external_id": "u1", "n": 1, "t": ["a"], "o": [{"id": 1}], "x": 1}
    if name in ("subscription_groups", "push_tokens"):
        first[name] = value
    record = recorded(first)
    for _ in range(2):  # and again: an operation repeated is still sent
        delta = diff({"external_id": "u1", name: value, "x": 1}, record, now=T0 + 60, max_age_seconds=MAX_AGE)
        assert delta.send == {"external_id": "u1", name: value}
        if delta.changes is not None:
            assert delta.changes.set == {}
            after = apply(record, delta.changes)
            assert after is not None
            record = after
        assert record.values[name] == UNKNOWN


def test_nested_objects_of_an_input_that_carries_merge_objects_are_sent_as_they_are() -> None:
    first = {"external_id": "u1", "n": {"a": 1, "b": 2}, "x": 1}
    second = {"external_id": "u1", "_merge_objects": True, "n": {"a": 1}, "x": 1}
    delta = again(first, second)
    assert delta.send == {"external_id": "u1", "_merge_objects": True, "n": {"a": 1}}
    assert delta.changes is not None
    assert delta.changes.unknown == ["n"]


@pytest.mark.parametrize(
    "identity",
    [
        {"external_id": "u1", "_update_existing_only": True},
        {"external_id": "u1", "push_token_import": True},
        {"user_alias": {"alias_name": "n", "alias_label": "l"}},  # update only unless told otherwise
        {"email": "a@b.c", "_update_existing_only": True},
    ],
)
def test_an_object_braze_may_ignore_is_sent_as_is_and_only_clears_the_record(identity: dict[str, Any]) -> None:
    record = Record({"age": digest(36), "x": digest(1)}, T0)
    obj = {**identity, "age": 36}
    delta = diff(obj, record, now=T0 + 60, max_age_seconds=MAX_AGE)
    assert delta.send == obj
    assert delta.changes is not None
    assert delta.changes.unknown == ["age"]
    assert delta.changes.set == {}
    after = apply(record, delta.changes)
    assert after is not None
    assert diff(obj, after, now=T0 + 60, max_age_seconds=MAX_AGE).changes is None  # already unknown


def test_an_alias_that_may_create_the_user_is_diffed() -> None:
    alias = {"user_alias": {"alias_name": "n", "alias_label": "l"}, "_update_existing_only": False}
    delta = again({**alias, "age": 36, "x": 1}, {**alias, "age": 37, "x": 1})
    assert delta.send == {**alias, "age": 37}


def test_email_is_an_attribute_beside_a_primary_identifier_and_the_identifier_alone() -> None:
    first = {"external_id": "u1", "email": "a@b.c", "phone": "1"}
    assert again(first, dict(first)).send is None
    by_email = {"email": "a@b.c", "phone": "1", "x": 1}
    delta = again(by_email, dict(by_email))
    assert delta.send is None  # both unchanged: the identifier alone is not sent
    delta = again(by_email, {**by_email, "phone": "2"})
    assert delta.send == {"email": "a@b.c", "phone": "2"}


# -- age, full sends, size ---------------------------------------------------------------------


def test_a_record_older_than_the_maximum_age_is_ignored() -> None:
    user = {"external_id": "u1", "age": 36}
    record = recorded(user)
    fresh = diff(user, record, now=T0 + MAX_AGE, max_age_seconds=MAX_AGE)
    assert fresh.send is None
    stale = diff(user, record, now=T0 + MAX_AGE + 1, max_age_seconds=MAX_AGE)
    assert stale.send == user
    assert stale.changes is not None
    assert stale.changes.refreshed_at == T0 + MAX_AGE + 1
    assert stale.changes.expected_version == record.version


def test_a_full_send_sends_everything_and_refreshes_the_record() -> None:
    user = {"external_id": "u1", "age": 36, "t": ["a"]}
    delta = again(user, user, full=True)
    assert delta.send == user
    assert (delta.read, delta.sent, delta.skipped) == (2, 2, 0)
    assert delta.changes is not None
    assert delta.changes.refreshed_at == T0 + 60


def test_a_user_too_large_to_record_is_sent_in_full_and_its_record_dropped() -> None:
    many = [f"{i:08d}-{'x' * 60}" for i in range(6000)]
    huge = {"external_id": "u1", "t": many}
    first = diff(huge, None, now=T0, max_age_seconds=MAX_AGE)
    assert first.too_large
    assert first.send == huge
    assert first.changes == Changes(remove=["t"], forget=True)
    # A record that grows too large on a change is dropped too, and the object goes whole.
    small = recorded({"external_id": "u1", "t": many[:10], "x": 1})
    delta = diff({"external_id": "u1", "t": many, "x": 1}, small, now=T0 + 1, max_age_seconds=MAX_AGE)
    assert delta.too_large
    assert delta.send == {"external_id": "u1", "t": many, "x": 1}
    assert delta.changes == Changes(remove=["t", "x"], forget=True)
    assert apply(small, delta.changes) is None


def test_record_size_estimates_a_dynamodb_item() -> None:
    record = recorded({"external_id": "u1", "name": "Ada", "tags": ["abc", "de"], "n": {"a": {"b": 1}}})
    size = record_size(record.values)
    assert 200 < size < 400
    assert record_size({"t": frozenset(f"{i:07d}" for i in range(40_000))}) > MAX_RECORD_BYTES


def test_an_attribute_of_unknown_value_is_sent_whole_and_recorded_again() -> None:
    record = Record({"s": UNKNOWN, "t": UNKNOWN, "n": UNKNOWN, "gone": UNKNOWN}, T0, 3)
    obj = {"external_id": "u1", "s": 1, "t": ["a", "a"], "n": {"a": {"b": 1}}, "gone": None}
    delta = diff(obj, record, now=T0 + 1, max_age_seconds=MAX_AGE)
    assert delta.send == obj  # no add/remove, no _merge_objects: Braze's value becomes exactly these
    assert delta.changes is not None
    after = apply(record, delta.changes)
    assert after is not None
    assert after.values == recorded(obj).values
    assert after.version == 4
    assert diff(obj, after, now=T0 + 2, max_age_seconds=MAX_AGE).send is None


def test_unanswered_changes_mark_what_the_object_set_unknown() -> None:
    first = {"external_id": "u1", "a": 1, "b": ["x"], "c": 1}
    delta = again(first, {"external_id": "u1", "a": 2, "b": ["y"], "c": 1})
    changes = unanswered(delta)
    assert changes == Changes(unknown=["a", "b"])
    assert unanswered(again(first, dict(first))) is None  # nothing was sent


def test_integers_beyond_64_bits_as_the_reader_keeps_them_are_compared_by_their_digits() -> None:
    big = "123456789012345678901234567890"

    def user(digits: str) -> dict[str, Any]:
        return {"external_id": "u1", "id": orjson.Fragment(digits.encode()), "ids": [orjson.Fragment(b"1" * 25)]}

    assert again(user(big), user(big)).send is None
    other = big[:-1] + "1"
    assert orjson.dumps(again(user(big), user(other)).send) == f'{{"external_id":"u1","id":{other}}}'.encode()
