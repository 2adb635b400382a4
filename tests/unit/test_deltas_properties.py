"""Property: Braze holding ``first`` and sent the delta of ``second`` holds what sending ``second`` whole
gives: ``second``'s attributes, and ``first``'s for the attributes ``second`` does not name (an absent key
is no change to Braze; null is).

Braze's attribute semantics are the emulator's own profile-update code (sandbox.braze_emulator.Users),
applied in-process. Arrays of strings compare as sets (Braze keeps each item once; an order change alone is
not sent) and nulls inside objects compare as absent (Braze drops them).
"""

from __future__ import annotations

from typing import Any

from braze_importer.delta_store import MemoryDeltaStore
from braze_importer.deltas import NULL, UNKNOWN, WHOLE, Record, Value, apply, diff, recorded, unanswered
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.braze_emulator import Users

MAX_AGE = 1000.0
NAMES = ["a", "b", "c", "d", "e", "f"]
KEYS = ["k1", "k2", "k3"]
WORDS = ["x", "y", "z", "w", "v"]

scalars = st.one_of(
    st.integers(-3, 3),
    st.booleans(),
    st.sampled_from(["s", "t", "", "1"]),
    st.floats(-2, 2, allow_nan=False).map(lambda f: round(f, 1)),
)
string_arrays = st.lists(st.sampled_from(WORDS), max_size=6)
other_arrays = st.one_of(
    st.lists(st.integers(0, 3), min_size=1, max_size=3),
    st.lists(st.fixed_dictionaries({"id": st.integers(0, 2), "v": scalars}), min_size=1, max_size=3),
)
nested = st.recursive(
    st.dictionaries(st.sampled_from(KEYS), st.one_of(scalars, st.none(), string_arrays), max_size=3),
    lambda children: st.dictionaries(
        st.sampled_from(KEYS), st.one_of(scalars, st.none(), string_arrays, children), max_size=3
    ),
    max_leaves=12,
)
values = st.one_of(scalars, st.none(), string_arrays, other_arrays, nested)
attributes = st.dictionaries(st.sampled_from(NAMES), values, max_size=6)


@st.composite
def pairs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A first object and a second sharing much of it (kept, changed, gone, new, nested edits)."""
    first = draw(attributes)
    other = draw(attributes)
    second: dict[str, Any] = {}
    for name in sorted(set(first) | set(other)):
        choice = draw(st.sampled_from(["keep", "other", "drop", "edit"]))
        if choice == "keep" and name in first:
            second[name] = first[name]
        elif choice == "other" and name in other:
            second[name] = other[name]
        elif choice == "edit" and isinstance(first.get(name), dict):
            edited = dict(first[name])
            edited.update(draw(nested))
            for key in draw(st.lists(st.sampled_from(KEYS), max_size=2)):
                edited.pop(key, None)
            second[name] = edited
        elif choice == "edit" and isinstance(first.get(name), list) and all(isinstance(v, str) for v in first[name]):
            second[name] = list(reversed(first[name])) + draw(string_arrays)
    return first, second


def normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return sorted(set(value))
        return [normal(v) for v in value]
    return value


def held(*objects: dict[str, Any] | None, max_array: int = 500) -> dict[str, Any]:
    """The attributes Braze holds for user "u" after these objects, in order."""
    users = Users()
    for obj in objects:
        if obj is not None:
            users.apply([("attributes", obj)], max_array=max_array, keep_entries=False)
    profile = users.by_external.get("u")
    return dict(profile.attributes or {}) if profile is not None else {}


def braze(*objects: dict[str, Any] | None, max_array: int = 500) -> dict[str, Any]:
    return normal(held(*objects, max_array=max_array))  # type: ignore[no-any-return]


def claims(values: dict[str, Value]) -> dict[str, Value]:
    """What a record says Braze holds (a nested object's whole digest is a shortcut, not a claim: it may
    lag behind when only nulls changed)."""
    return {n: {p: h for p, h in v.items() if p != WHOLE} if isinstance(v, dict) else v for n, v in values.items()}


def record_of(obj: dict[str, Any], now: float) -> Record:
    delta = diff(obj, None, now=now, max_age_seconds=MAX_AGE)
    assert delta.changes is not None
    record = apply(None, delta.changes)
    assert record is not None
    return record


@settings(max_examples=1500, deadline=None)
@given(pairs())
def test_braze_holding_first_and_sent_the_delta_holds_second(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    first, second = ({"external_id": "u", **attrs} for attrs in pair)
    record = record_of(first, now=0.0)
    delta = diff(second, record, now=10.0, max_age_seconds=MAX_AGE)
    assert braze(first, delta.send) == braze(first, second)
    assert delta.read == len(pair[1])
    assert delta.sent + delta.skipped == delta.read
    # The record after the commit holds what Braze was sent last for each attribute ...
    after = apply(record, delta.changes) if delta.changes is not None else record
    assert after is not None
    expected = {**record.values, **record_of(second, now=0.0).values}
    assert claims(after.values) == claims(expected)
    # ... so the same object again sends nothing.
    again = diff(second, after, now=20.0, max_age_seconds=MAX_AGE)
    assert again.send is None
    assert again.dropped
    assert again.skipped == again.read


@settings(max_examples=300, deadline=None)
@given(pairs(), pairs())
def test_a_chain_of_snapshots_keeps_braze_equal_to_the_last(
    one: tuple[dict[str, Any], dict[str, Any]], two: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    snapshots = [{"external_id": "u", **attrs} for attrs in (*one, *two)]
    record: Record | None = None
    sent: list[dict[str, Any] | None] = []
    for now, snapshot in enumerate(snapshots):
        delta = diff(snapshot, record, now=float(now), max_age_seconds=MAX_AGE)
        sent.append(delta.send)
        if delta.changes is not None:
            record = apply(record, delta.changes)
        assert braze(*sent) == braze(*snapshots[: now + 1])


@settings(max_examples=400, deadline=None)
@given(pairs(), pairs())
def test_arrays_longer_than_braze_keeps_are_sent_whole(
    one: tuple[dict[str, Any], dict[str, Any]], two: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """With a maximum array length of 3, Braze holds after the deltas what it holds after the snapshots."""
    snapshots = [{"external_id": "u", **attrs} for attrs in (*one, *two)]
    record: Record | None = None
    sent: list[dict[str, Any] | None] = []
    for now, snapshot in enumerate(snapshots):
        delta = diff(snapshot, record, now=float(now), max_age_seconds=MAX_AGE, max_array=3)
        sent.append(delta.send)
        if delta.changes is not None:
            record = apply(record, delta.changes)
        assert braze(*sent, max_array=3) == braze(*snapshots[: now + 1], max_array=3)


def now_stale(record: Record) -> bool:
    return 30.0 - record.updated_at > MAX_AGE


OUTCOMES = ["accepted", "rejected", "unanswered_applied", "unanswered_lost"]


@settings(max_examples=600, deadline=None)
@given(
    pairs(),
    attributes,
    st.lists(st.sampled_from(OUTCOMES), min_size=2, max_size=2),
    st.permutations([0, 1]),
    st.permutations([0, 1]),
)
def test_concurrent_runs_never_leave_a_claim_braze_does_not_hold(
    pair: tuple[dict[str, Any], dict[str, Any]],
    third: dict[str, Any],
    outcomes: list[str],
    braze_order: list[int],
    commit_order: list[int],
) -> None:
    """Two runs diff the same user against the same record; Braze applies what it applies in either
    order, and the runs commit in either order. Whatever the record then claims, Braze holds."""
    store = MemoryDeltaStore()
    base = {"external_id": "u", **pair[0]}
    start = diff(base, None, now=0.0, max_age_seconds=MAX_AGE)
    assert start.changes is not None
    store.commit("e:u", start.changes, 0.0)
    record = store.get_many(["e:u"]).get("e:u")
    runs = [{"external_id": "u", **pair[1]}, {"external_id": "u", **third}]
    deltas = [diff(obj, record, now=10.0, max_age_seconds=MAX_AGE) for obj in runs]
    applied = [base] + [deltas[i].send for i in braze_order if outcomes[i] in ("accepted", "unanswered_applied")]
    for i in commit_order:
        if outcomes[i] == "accepted" and deltas[i].changes is not None:
            store.commit("e:u", deltas[i].changes, 20.0)  # type: ignore[arg-type]
        elif outcomes[i].startswith("unanswered"):
            changes = unanswered(deltas[i])
            if changes is not None:
                store.commit("e:u", changes, 20.0)
    holds = held(*applied)
    after = store.get_many(["e:u"]).get("e:u")
    if after is None or now_stale(after):
        return  # a stale record claims nothing: the next diff sends everything
    for name, claim in claims(after.values).items():
        if claim == UNKNOWN:
            continue
        if claim == NULL:  # known absent
            assert holds.get(name) is None, name
            continue
        assert name in holds, name
        assert claim == claims({name: recorded(holds[name])})[name], name
