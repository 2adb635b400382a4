"""Sending only what changed, through the sandbox CLI: exports of the same users imported one after
another into one sandbox, the emulator holding what Braze would."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from sandbox import sample_data
from sandbox.services import BrazeEmulator
from tests.e2e.conftest import KEY, ROOT, run_cli

pytestmark = pytest.mark.e2e
USERS = 300
VALUES = USERS * 7  # every export names seven attributes per user
FIRST, SECOND = sample_data.snapshots(USERS)
# The same events in both files: events are never diffed, so each file's are delivered.
EVENTS = sample_data.snapshot_events(FIRST, 40)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("exports")
    day_1 = sample_data.write_lines(folder / "members-day-1.jsonl", FIRST + EVENTS)
    day_2 = sample_data.write_lines(folder / "members-day-2.jsonl", SECOND + EVENTS)
    return str(day_1), str(day_2)


def import_in_order(braze: BrazeEmulator, *args: str) -> list[dict[str, Any]]:
    code, body, err = run_cli("import", "--in-order", *args, "--braze-url", braze.url, "--braze-api-key", KEY, "--json")
    assert code == 0 and body is not None, err
    reports: list[dict[str, Any]] = body["runs"]
    assert all(r["status"] == "completed" and r["failed"] == 0 and r["rejected"] == 0 for r in reports)
    return reports


def held_attributes(braze: BrazeEmulator) -> dict[str, dict[str, Any]]:
    return {user["external_id"]: user["attributes"] for user in braze.users()}


def sent_after_the_first_run(braze: BrazeEmulator) -> list[dict[str, Any]]:
    """The attributes objects Braze took once the first run had sent its USERS (the runs go one after
    another; a run's own batches may arrive in any order), by user."""
    sent = [o["object"] for o in braze.objects() if o["array"] == "attributes"]
    return sorted(sent[USERS:], key=lambda o: str(o["external_id"]))


def test_a_later_export_sends_only_the_values_that_changed(exports: tuple[str, str], braze: BrazeEmulator) -> None:
    day_1, day_2 = exports
    changed, users_unchanged = sample_data.changes(FIRST, SECOND)
    assert 0 < changed < VALUES // 10 and 0 < users_unchanged < USERS  # the fixture changes a few values
    # When the first export, the second, and the second again are imported one after another,
    first, second, again = (r["deltas"] for r in import_in_order(braze, day_1, day_2, day_2))
    # then the first sends every value (no records yet),
    assert first["enabled"] and not first["full_send"]
    assert first["values_read"] == first["values_sent"] == VALUES and first["objects_unchanged"] == 0
    # the second only the values that really changed, and nothing for the users with no change,
    assert second["values_read"] == VALUES and second["values_sent"] == changed
    assert second["values_skipped"] == VALUES - changed and second["objects_unchanged"] == users_unchanged
    # the same export again sends no attribute at all,
    assert again["values_sent"] == 0 and again["objects_unchanged"] == USERS
    before, after = sample_data.held(FIRST), sample_data.held(SECOND)
    changed_users = [user for user, attributes in after.items() if attributes != before[user]]
    assert [o["external_id"] for o in sent_after_the_first_run(braze)] == changed_users
    assert all(r[k] == 0 for r in (first, second, again) for k in ("users_too_large", "lookup_errors", "commit_errors"))
    # Braze holds exactly the second export, and every event of every file was delivered.
    assert held_attributes(braze) == sample_data.held(SECOND)
    events = Counter(json.dumps(o["object"], sort_keys=True) for o in braze.objects() if o["array"] == "events")
    assert events == {json.dumps(e, sort_keys=True): 3 for e in EVENTS}


def test_a_file_tagged_for_a_full_send_sends_every_value(exports: tuple[str, str], braze: BrazeEmulator) -> None:
    # The first file sets the records; the tag makes the second ignore them.
    first, second = (r["deltas"] for r in import_in_order(braze, "--full", *exports))
    assert first["full_send"] and second["full_send"]
    assert second["values_read"] == second["values_sent"] == VALUES and second["objects_unchanged"] == 0
    assert sent_after_the_first_run(braze) == SECOND  # each object sent as the file has it
    assert held_attributes(braze) == sample_data.held(SECOND)


def test_without_deltas_every_value_is_sent(exports: tuple[str, str], braze: BrazeEmulator) -> None:
    reports = import_in_order(braze, "--no-deltas", *exports)
    assert [r["deltas"]["enabled"] for r in reports] == [False, False]
    assert sent_after_the_first_run(braze) == SECOND
    assert held_attributes(braze) == sample_data.held(SECOND)


def test_each_run_s_summary_says_what_was_saved(exports: tuple[str, str]) -> None:
    changed, users_unchanged = sample_data.changes(FIRST, SECOND)
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox", "import", "--in-order", *exports],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    saved = f"{(VALUES - changed) / VALUES * 100:.0f} %"
    assert f"{exports[1]}: run completed" in proc.stdout
    assert (
        f"attribute values: {VALUES:,} read, {changed:,} sent, {VALUES - changed:,} unchanged ({saved}); "
        f"{users_unchanged:,} objects not sent at all"
    ) in proc.stdout
