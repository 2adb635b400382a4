"""CSV of another pipeline's columns: a configured identifier column and columns never sent (a
CI360 audience, imported where the bulk-upload copier landed it)."""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest
from braze_importer.csv_types import HeaderError, Schema
from braze_importer.ports import ObjectRef
from braze_importer.reader import Format
from braze_importer.runs import run_id_for
from braze_importer.service import handle_continue, handle_start
from bulk_upload.delivery import import_request, run_id

from tests.fakes import FakeBraze, FakeS3, make_deps

CI360 = {"id_column": "customer_id", "ignore": ["identity_id"]}


@pytest.mark.parametrize(
    ("header", "row", "want"),
    [
        # the identifier column anywhere; identity_id never sent
        (["identity_id", "customer_id", "score"], ["i-1", "00123", "7"], {"external_id": "00123", "score": 7}),
        (["score", "identity_id", "customer_id"], ["7", "i-1", "c-1"], {"external_id": "c-1", "score": 7}),
        (["tier", "customer_id", "identity_id"], ["", "c-1", "i-1"], None),  # nothing but the identifier
    ],
)
def test_the_configured_column_identifies_and_identity_id_is_never_an_attribute(
    header: list[str], row: list[str], want: dict[str, Any] | None
) -> None:
    schema = Schema.from_header(header, id_column="customer_id", ignore=("identity_id",))
    assert schema.row(row) == want


@pytest.mark.parametrize("column", ["external_id", "braze_id", "email", "phone"])
def test_a_configured_column_named_like_an_identifier_sends_as_that_identifier(column: str) -> None:
    schema = Schema.from_header(["identity_id", column, "email_opt_in"], id_column=column, ignore=("identity_id",))
    assert schema.row(["i-1", "v-1", "true"]) == {column: "v-1", "email_opt_in": True}


def test_other_identifier_kinds_beside_the_configured_one_are_refused_and_email_is_an_attribute() -> None:
    with pytest.raises(HeaderError, match="both customer_id and external_id"):
        Schema.from_header(["customer_id", "external_id"], id_column="customer_id")
    schema = Schema.from_header(["customer_id", "email", "phone"], id_column="customer_id")
    assert schema.row(["c", "a@b.c", "0123"]) == {"external_id": "c", "email": "a@b.c", "phone": "0123"}


def test_a_header_without_the_configured_column_names_it() -> None:
    with pytest.raises(HeaderError, match="no customer_id column, the configured identifier column"):
        Schema.from_header(["identity_id", "external_id", "score"], id_column="customer_id", ignore=("identity_id",))


def test_an_ignored_column_that_is_not_there_changes_nothing() -> None:
    schema = Schema.from_header(["external_id", "score"], ignore=("identity_id",))
    assert schema.row(["e", "1"]) == {"external_id": "e", "score": 1}


def test_the_bulk_uploads_run_id_is_the_importers() -> None:
    request = import_request("uploads", "ci360/a b+c.csv", "v9", "external_id")
    assert run_id("uploads", "ci360/a b+c.csv", "v9") == run_id_for("uploads", "ci360/a b+c.csv", "v9", None)
    assert request["csv"] == {"id_column": "external_id", "ignore": ["identity_id"]}


def test_an_import_of_a_landed_audience_continued_many_times_sends_each_row_once_and_never_identity_id() -> None:
    rows = [b"identity_id,score,customer_id,tier"]
    want = []
    for i in range(300):
        rows.append(f'id-{i},{i},{i:05d},"gold, {i % 3}"'.encode())
        want.append({"external_id": f"{i:05d}", "score": i, "tier": f"gold, {i % 3}"})
    s3 = FakeS3(chunk=97)
    s3.objects[("uploads", "ci360/aud.csv")] = b"\n".join(rows) + b"\n"
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    ref = ObjectRef("uploads", "ci360/aud.csv", "v1", None)
    ticks = count()

    def budget() -> bool:
        return next(ticks) % 3 != 2

    statuses = [handle_start(ref, "a", deps, budget, fmt=Format.CSV, csv_options=CI360).status]
    while deps.continuer.payloads:
        payload = deps.continuer.payloads.pop(0)
        statuses.append(handle_continue(payload["run_id"], payload["seq"], "b", deps, budget).status)
    assert statuses[-1] == "completed" and len(statuses) > 2
    assert braze.stored == want
    again = handle_start(ref, "c", deps, lambda: True, fmt=Format.CSV, csv_options=CI360)
    assert again.status == "duplicate" and braze.stored == want
    report = next(iter(deps.store.items.values()))
    assert report.csv_options == CI360


@pytest.mark.parametrize("written", ["Identity_ID", "IDENTITY_ID", " identity_id", "identity_id\u200b", "IdentityId"])
def test_ci360s_key_is_never_sent_however_its_name_is_written(written: str) -> None:
    schema = Schema.from_header([written, "external_id", "tier"], id_column="external_id", ignore=("identity_id",))
    assert schema.row(["SECRET-1", "u1", "gold"]) == {"external_id": "u1", "tier": "gold"}


HEADERS = [
    ["identity_id", "external_id", "tier"],
    ["identity_id", "external_id", "external_id"],
    ["identity_id", "external_id", "braze_id"],
    ["identity_id", "external_id", "user_alias"],
    ["identity_id", "external_id", "user_alias_name", "user_alias_label"],
    ["identity_id", "customer_id", "external_id"],
    ["identity_id", "customer_id", "email", "phone"],
    ["identity_id", "customer_id", ""],
    ["identity_id", " customer_id ", "tier"],
    ["identity_id", "tier"],
    ["IDENTITY_ID", "customer_id", "identity_id"],
    ["customer_id"],
]


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("id_column", ["external_id", "customer_id", "email"])
def test_the_copier_refuses_exactly_the_headers_the_importer_would_stop_on(header: list[str], id_column: str) -> None:
    from bulk_upload.copier import PermanentFailure
    from bulk_upload.delivery import check_columns

    try:
        Schema.from_header([c.strip() for c in header], id_column=id_column, ignore=("identity_id",))
        importer_refuses = False
    except HeaderError:
        importer_refuses = True
    try:
        check_columns(header, id_column)
        copier_refuses = False
    except PermanentFailure:
        copier_refuses = True
    assert copier_refuses == importer_refuses
