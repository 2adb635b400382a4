"""The emulator against the delta engine's model of Braze: what ``deltas.diff`` sends for each export of
the same users leaves the profiles a full send of the last export would (the sandbox's end-to-end checks
rest on this)."""

from __future__ import annotations

from typing import Any

import pytest
from braze_importer.deltas import Record, apply, diff

from sandbox import sample_data
from tests.unit.emulator_harness import Running

NOW = 1_800_000_000.0
MAX_AGE = 30 * 86400.0


def send_deltas(braze: Running, export: list[dict[str, Any]], records: dict[str, Record]) -> tuple[int, int]:
    """Diff every object against its user's record, send what is left, commit as Braze took it; the
    values sent and the objects not sent at all."""
    sent: list[dict[str, Any]] = []
    values = dropped = 0
    for obj in export:
        delta = diff(obj, records.get(obj["external_id"]), now=NOW, max_age_seconds=MAX_AGE, max_array=25)
        values += delta.sent
        dropped += delta.dropped
        if delta.send is not None:
            sent.append(delta.send)
        if delta.changes is not None:
            new = apply(records.get(obj["external_id"]), delta.changes)
            assert new is not None
            records[obj["external_id"]] = new
    for start in range(0, len(sent), 75):
        answer = braze.track(attributes=sent[start : start + 75])
        assert answer.status_code == 201 and not answer.json().get("errors"), answer.text
    return values, dropped


@pytest.mark.parametrize("seed", [11, 5, 99])
def test_sending_only_what_changed_leaves_what_the_last_export_says(braze: Running, seed: int) -> None:
    first, second = sample_data.snapshots(400, seed=seed)
    changed, users_unchanged = sample_data.changes(first, second)
    records: dict[str, Record] = {}
    assert send_deltas(braze, first, records) == (400 * 7, 0)
    assert send_deltas(braze, second, records) == (changed, users_unchanged)
    assert send_deltas(braze, second, records) == (0, 400)
    held = {user["external_id"]: user["attributes"] for user in braze.users()}
    assert held == sample_data.held(second)


def test_the_exports_change_a_few_values_of_every_kind() -> None:
    first, second = sample_data.snapshots(2_000)
    changed, users_unchanged = sample_data.changes(first, second)
    assert 0.04 < changed / (2_000 * 7) < 0.06 and 0.6 < users_unchanged / 2_000 < 0.8
    pairs = [pair for a, b in zip(first, second, strict=True) for pair in zip(a.items(), b.items(), strict=True)]
    kinds = {name for (name, old), (_, new) in pairs if old != new}
    assert kinds == {"first_name", "home_city", "loyalty_points", "email_opt_in", "last_order_at", "interests", "plan"}
    assert any(old is not None and new is None for (_, old), (_, new) in pairs)  # values that became null
    assert any(o["plan"] and o["plan"]["renews"] is None for o in second)  # nested nulls, dropped by Braze
    assert sample_data.held_value({"a": {"b": None, "c": 1}, "d": ["x", "x"]}) == {"a": {"c": 1}, "d": ["x"]}
