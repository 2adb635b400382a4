"""``python -m sandbox import DIR`` with Braze's Cloud Data Ingestion samples, end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sandbox.services import BrazeEmulator
from tests.e2e.conftest import KEY, run_cli

pytestmark = pytest.mark.e2e
DATA = Path(__file__).parent.parent / "data"
SAMPLES = DATA / "braze-cdi"


def sample_rows(name: str) -> list[dict[str, Any]]:
    """The rows of one of Braze's JSON Lines samples, as Braze would hold them."""
    rows = [json.loads(line) for line in (SAMPLES / name).read_text().splitlines() if line.strip()]
    return [{"external_id": r["external_id"], **json.loads(r["payload"])} for r in rows]


def csv_rows(name: str) -> list[dict[str, Any]]:
    import csv

    with (SAMPLES / name).open(newline="") as f:
        return [{"external_id": r["external_id"], **json.loads(r["payload"])} for r in csv.DictReader(f)]


def test_brazes_samples_in_their_folders_land_as_braze_would_hold_them(braze: BrazeEmulator) -> None:
    code, body, stderr = run_cli("import", str(SAMPLES), "--braze-url", braze.url, "--braze-api-key", KEY, "--json")
    assert code == 0, stderr
    assert body is not None
    runs = body["runs"]
    # One file after another, in path order, each keyed by its place in the tree.
    assert [r["source"]["key"] for r in runs] == [
        "incoming/attributes/attributes_sample.csv",
        "incoming/attributes/attributes_sample.json",
        "incoming/events/custom_events_sample.json",
        "incoming/purchases/purchases_sample.json",
    ]
    assert all(r["status"] == "completed" and r["rejected"] == 0 and r["failed"] == 0 for r in runs)
    assert [r["source"]["kind"] for r in runs] == ["attributes", "attributes", "events", "purchases"]
    stored = braze.objects()
    held = {
        "attributes": [o["object"] for o in stored if o["array"] == "attributes"],
        "events": [o["object"] for o in stored if o["array"] == "events"],
        "purchases": [o["object"] for o in stored if o["array"] == "purchases"],
    }
    # Every attribute (a custom one called "name" among them), event and purchase, exactly once.
    assert held["attributes"] == csv_rows("attributes/attributes_sample.csv") + sample_rows(
        "attributes/attributes_sample.json"
    )
    assert held["events"] == sample_rows("events/custom_events_sample.json")
    assert held["purchases"] == sample_rows("purchases/purchases_sample.json")
    assert held["events"][0]["time"] == "2024-04-02T14:34:08"  # no offset: Braze reads UTC


def test_a_dry_run_of_the_samples_sends_nothing_and_says_what_it_would_send(braze: BrazeEmulator) -> None:
    code, body, stderr = run_cli(
        "import", str(SAMPLES), "--dry-run", "--braze-url", braze.url, "--braze-api-key", KEY, "--json"
    )
    assert code == 0, stderr
    assert body is not None
    runs = body["runs"]
    assert all(r["source"]["key"].startswith("incoming/dry-run/") and r["dry_run"] for r in runs)
    assert [r["would_send"]["/users/track"]["objects"] for r in runs] == [50, 7, 2, 2]
    assert all(r["would_send"]["/users/track"]["requests"] == 1 and r["accepted"] == 0 for r in runs)
    assert braze.state()["requests"] == 0 and braze.objects() == []


def test_a_folder_with_a_bad_row_and_a_catalog_reports_each_file(tmp_path: Path, braze: BrazeEmulator) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(SAMPLES / "events", tree / "events")
    shutil.copytree(DATA / "cdi-catalog" / "catalogs", tree / "catalogs" / "products")
    (tree / "events" / "more.jsonl").write_text(
        '{"EXTERNAL_ID": "u1", "PAYLOAD": "{\\"name\\": \\"x\\", \\"time\\": \\"2024-04-02T14:34:08\\"}"}\n'
        '{"EXTERNAL_ID": "u2", "PAYLOAD": "[1]"}\n'
    )
    (tree / "notes.txt").write_text("not a data file")
    code, body, stderr = run_cli("import", str(tree), "--braze-url", braze.url, "--braze-api-key", KEY, "--json")
    assert code == 1 and body is not None  # a file stopped: the command says so
    assert "skipped notes.txt" in stderr
    by_key = {r["source"]["key"]: r for r in body["runs"]}
    catalog = by_key["incoming/catalogs/products/catalog_sample.csv"]
    # The CSV is read and sent; the emulator has no catalog "products", so the run stops saying so.
    assert catalog["status"] == "stopped" and catalog["stop_reason"] == "catalog_not_found"
    assert by_key["incoming/events/more.jsonl"]["rejected"] == 1
    assert by_key["incoming/events/more.jsonl"]["accepted"] == 1
    assert len(braze.objects()) == 3  # the two sample events and the good row; nothing of the catalog


def test_the_folders_demo_step_dry_runs_then_imports_the_same_counts() -> None:
    import io

    from sandbox.__main__ import _demo_folders

    out = io.StringIO()
    assert _demo_folders(out), out.getvalue()
    assert "would send 119 objects in 2 requests, 1 rejected; sent 0" in out.getvalue()


def test_user_deletes_stop_unless_allowed_and_a_dry_run_says_so(tmp_path: Path, braze: BrazeEmulator) -> None:
    tree = tmp_path / "tree"
    (tree / "user-deletes").mkdir(parents=True)
    rows = [{"external_id": f"u{i}"} for i in range(60)] + [{"EMAIL": "a@example.com", "PAYLOAD": ""}]
    (tree / "user-deletes" / "churned.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ("--braze-url", braze.url, "--braze-api-key", KEY, "--json")
    code, body, stderr = run_cli("import", str(tree), *common)
    assert code == 1 and body is not None, stderr
    (refused,) = body["runs"]
    assert refused["status"] == "stopped" and refused["stop_reason"] == "user_deletes_not_allowed"
    assert "import:allowUserDeletes" in refused["error"]["message"]
    for flags, refused_for_real in (((), True), (("--allow-user-deletes",), False)):
        code, body, stderr = run_cli("import", str(tree), "--dry-run", *flags, *common)
        assert code == 0 and body is not None, stderr
        (dry,) = body["runs"]
        assert dry["would_send"] == {"/users/delete": {"requests": 3, "objects": 61}}
        assert dry["real_run"]["refused"] is refused_for_real
    assert braze.state()["requests"] == 0


def test_brazes_samples_as_parquet_and_avro_land_as_the_json_ones_do(tmp_path: Path, braze: BrazeEmulator) -> None:
    """Braze's attribute and event samples written as a warehouse would (Parquet, one of them
    without a suffix, as Athena and Redshift UNLOAD name their files; Avro with a record payload)."""
    import fastavro
    import pyarrow as pa
    import pyarrow.parquet as pq

    attributes = [json.loads(line) for line in (SAMPLES / "attributes/attributes_sample.json").read_text().splitlines()]
    events = [json.loads(line) for line in (SAMPLES / "events/custom_events_sample.json").read_text().splitlines()]
    tree = tmp_path / "tree"
    (tree / "attributes").mkdir(parents=True)
    (tree / "events").mkdir()
    ids, payloads = [r["external_id"] for r in attributes], [r["payload"] for r in attributes]
    table = pa.table({"EXTERNAL_ID": ids, "PAYLOAD": payloads})
    pq.write_table(table, tree / "attributes" / "0000_part_00", row_group_size=3)
    schema = {
        "type": "record", "name": "Row",
        "fields": [
            {"name": "external_id", "type": "string"},
            {"name": "payload", "type": {"type": "map", "values": [
                "string", "long", "double", "boolean", {"type": "map", "values": ["string", "long", "boolean"]},
            ]}},
        ],
    }  # fmt: skip
    with (tree / "events" / "views.avro").open("wb") as f:
        fastavro.writer(
            f, schema, [{"external_id": r["external_id"], "payload": json.loads(r["payload"])} for r in events],
            codec="deflate", sync_interval=64,
        )  # fmt: skip
    code, body, stderr = run_cli("import", str(tree), "--braze-url", braze.url, "--braze-api-key", KEY, "--json")
    assert code == 0 and body is not None, stderr
    runs = body["runs"]
    assert [(r["source"]["key"], r["source"]["format"]) for r in runs] == [
        ("incoming/attributes/0000_part_00", "parquet"),
        ("incoming/events/views.avro", "avro"),
    ]
    assert all(r["status"] == "completed" and r["rejected"] == 0 and r["failed"] == 0 for r in runs), runs
    stored = braze.objects()
    held = {kind: [o["object"] for o in stored if o["array"] == kind] for kind in ("attributes", "events")}
    assert held["attributes"] == sample_rows("attributes/attributes_sample.json")
    assert held["events"] == sample_rows("events/custom_events_sample.json")


PRODUCTS = {"fields": [{"name": "id", "type": "string"}, {"name": "product_name", "type": "string"},
                       {"name": "price", "type": "number"}]}  # fmt: skip


def test_every_sample_lands_in_braze_as_braze_would_hold_it_and_deletes_remove_exactly_their_users(
    tmp_path: Path, braze: BrazeEmulator
) -> None:
    """Braze's CDI samples (attributes, events, purchases, the catalog) in their folders, then a
    user-deletes file: the emulator's profiles and catalog are what Braze would hold."""
    braze.configure(catalogs={"products": PRODUCTS})
    tree = tmp_path / "tree"
    shutil.copytree(SAMPLES, tree)
    shutil.copytree(DATA / "cdi-catalog" / "catalogs", tree / "catalogs" / "products")
    common = ("--braze-url", braze.url, "--braze-api-key", KEY, "--json")
    code, body, stderr = run_cli("import", str(tree), *common)
    assert code == 0 and body is not None, stderr
    assert all(r["status"] == "completed" and r["rejected"] == 0 and r["failed"] == 0 for r in body["runs"])

    # Every user with every attribute of the last file that set it, every event and purchase.
    expected: dict[str, dict[str, Any]] = {}
    for row in csv_rows("attributes/attributes_sample.csv") + sample_rows("attributes/attributes_sample.json"):
        expected.setdefault(row["external_id"], {}).update({k: v for k, v in row.items() if k != "external_id"})
    users = {u["external_id"]: u for u in braze.users()}
    for external_id, attributes in expected.items():
        held = users[external_id]["attributes"]
        assert {k: held.get(k) for k in attributes} == attributes, external_id
    events, purchases = sample_rows("events/custom_events_sample.json"), sample_rows("purchases/purchases_sample.json")
    for sent, field in ((events, "events"), (purchases, "purchases")):
        for external_id in {r["external_id"] for r in sent}:
            mine = [r for r in sent if r["external_id"] == external_id]
            assert len(users[external_id][field]) == len(mine), (external_id, field)
    catalog = braze.catalog("products")
    assert catalog["items"] == [
        {"id": "1", "product_name": "Product 1", "price": 1.01},
        {"id": "85", "product_name": "Product 85", "price": 85.85},
    ]
    assert catalog["failures"] == []

    # Deleting two users: refused (nothing deleted) until allowed, then exactly those two go.
    doomed = sorted(expected)[:2]
    deletes = tmp_path / "deletes"
    (deletes / "user-deletes").mkdir(parents=True)
    (deletes / "user-deletes" / "gone.csv").write_text("EXTERNAL_ID\n" + "\n".join(doomed) + "\n")
    code, body, stderr = run_cli("import", str(deletes), *common)
    assert code == 1 and body is not None and body["runs"][0]["stop_reason"] == "user_deletes_not_allowed", stderr
    assert {u["external_id"] for u in braze.users()} == set(users)
    code, body, stderr = run_cli("import", str(deletes), "--allow-user-deletes", *common)
    assert code == 0 and body is not None, stderr
    assert body["runs"][0]["endpoints"]["/users/delete"] == {"requests": 1, "objects": 2}
    assert {u["external_id"] for u in braze.users()} == set(users) - set(doomed)


def test_the_catalog_demo_step_dry_runs_then_leaves_the_catalog_as_the_file_says() -> None:
    import io

    from sandbox.__main__ import _demo_catalog

    out = io.StringIO()
    assert _demo_catalog(out), out.getvalue()
    assert "would send 130 items in 3 requests to PUT /catalogs/products/items" in out.getvalue()
    assert "catalog holds 129 items" in out.getvalue()
