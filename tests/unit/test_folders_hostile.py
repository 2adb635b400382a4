"""Folder names and rows a careless or hostile producer writes: a file meant for a dry run or for a
folder this version refuses never sends, a payload never redirects a row to another user."""

from __future__ import annotations

import pytest
from braze_importer.objects import Invalid, classify
from braze_importer.ports import ObjectRef
from braze_importer.rows import as_object, route_for
from braze_importer.service import handle_start

from tests.fakes import FakeBraze, FakeS3, make_deps

BUCKET = "imports"
LINES = b'{"external_id": "victim-1"}\n{"external_id": "u1", "name": "e", "time": "2026-01-01T00:00:00Z"}\n'


@pytest.mark.parametrize(
    "key",
    [
        "incoming//dry-run/events/d.jsonl",
        "incoming/./dry-run/events/d.jsonl",
        "incoming//user-deletes/d.jsonl",
        "incoming/User-Deletes/d.jsonl",
        "incoming/Dry-Run/events/e.jsonl",
        "incoming/dry\u2010run/events/e.jsonl",
        "incoming/CATALOGS/shoes/a.jsonl",
        "incoming/Events/e.jsonl",
        "incoming/dry-run/Catalogs/x/a.jsonl",
        # underscores, spaces, no separator, a singular: still near, so never a /users/track import
        "incoming/user_deletes/d.jsonl",
        "incoming/userdeletes/d.jsonl",
        "incoming/user deletes/d.jsonl",
        "incoming/user-delete/d.jsonl",
        "incoming/dry_run/events/e.jsonl",
        "incoming/dryrun/events/e.jsonl",
        "incoming/catalog/shoes/a.jsonl",
        "incoming/event/e.jsonl",
        # a dry-run folder below another one is no dry run: refused, not sent for real
        "incoming/user-deletes/dry-run/d.jsonl",
        "incoming/events/dry-run/e.jsonl",
    ],
)
def test_a_folder_name_near_a_reserved_one_sends_nothing(key: str) -> None:
    s3 = FakeS3()
    s3.objects[(BUCKET, key)] = LINES
    braze = FakeBraze()
    result = handle_start(ObjectRef(BUCKET, key, "v1", None), "r", make_deps(braze, s3), lambda: True)
    assert braze.requests == [], key
    assert (result.report is not None and result.report.get("dry_run")) or result.status == "stopped", key


def test_empty_and_dot_segments_route_as_the_folder_they_stand_for() -> None:
    route = route_for("/dry-run//events/d.jsonl")
    assert route.dry_run and route.kind == "events"
    assert route_for("./attributes/a.csv").kind == "attributes"


def test_a_phone_row_whose_payload_names_an_email_is_refused() -> None:
    with pytest.raises(Invalid, match="email"):
        as_object({"PHONE": "+15550001", "PAYLOAD": '{"email": "bob@example.com", "first_name": "Al"}'}, "attributes")
    assert as_object({"EMAIL": "a@example.com", "PAYLOAD": '{"phone": "+1555"}'}, "attributes") == {
        "email": "a@example.com",
        "phone": "+1555",
    }


def test_a_cdi_csv_row_with_an_empty_payload_is_a_reject_saying_so() -> None:
    for header in (b"external_id,payload", b"EXTERNAL_ID,PAYLOAD"):
        s3 = FakeS3()
        s3.objects[(BUCKET, "incoming/attributes/a.csv")] = header + b'\nu1,\nu2,"{""first_name"":""B""}"\n'
        braze = FakeBraze()
        deps = make_deps(braze, s3)
        result = handle_start(ObjectRef(BUCKET, "incoming/attributes/a.csv", "v1", None), "r", deps, lambda: True)
        assert result.report is not None and (result.report["accepted"], result.report["rejected"]) == (1, 1)
        (reject,) = deps.outputs.lines("rejects/")
        assert "PAYLOAD: is empty" in reject["reason"] and reject["line"] == 2


@pytest.mark.parametrize("when", ["2024-04-02 14:34:08", "2024-04-02", "04/02/2024", "2024-04-02T14:34:08Z"])
def test_session_dates_in_every_form_braze_documents_are_taken(when: str) -> None:
    obj = {"external_id": "u", "date_of_first_session": when, "date_of_last_session": when}
    assert classify(dict(obj)) == "attributes"
    assert as_object(dict(obj), "attributes") == obj


def test_a_plain_csv_in_the_events_or_purchases_folder_stops_clearly() -> None:
    for folder in ("events", "purchases"):
        s3 = FakeS3()
        key = f"incoming/{folder}/p.csv"
        s3.objects[(BUCKET, key)] = b"external_id,product_id,currency,price\nu1,12345,USD,9.99\n"
        braze = FakeBraze()
        result = handle_start(ObjectRef(BUCKET, key, "v1", None), "r", make_deps(braze, s3), lambda: True)
        assert result.status == "stopped" and braze.requests == []
        assert result.report is not None and "PAYLOAD" in result.report["error"]["message"]
