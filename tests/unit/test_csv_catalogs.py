"""CSV files in catalogs/<name>/ and user-deletes/: the same rows, rejects and sends as JSON files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from braze_importer.csv_reader import iter_rows
from braze_importer.endpoints import CATALOG_UPSERT
from braze_importer.engine import SendPolicy
from braze_importer.ports import Group, ObjectRef
from braze_importer.reader import START

from tests.fakes import FakeBraze, FakeS3, gz, make_deps, run_chain

BUCKET = "imports"
SAMPLE = Path(__file__).parent.parent / "data" / "cdi-catalog" / "catalogs" / "catalog_sample.csv"


def quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def as_csv(
    columns: list[str], rows: list[dict[str, Any]], newline: str = "\n", header: list[str] | None = None
) -> bytes:
    """Rows as a CSV of ``columns`` (named ``header`` in the file, if given): a missing key is an
    empty cell, a cell with a quote or comma is quoted."""
    lines = [",".join(header or columns)]
    for r in rows:
        cells = [str(r.get(c, "")) for c in columns]
        lines.append(",".join(quoted(c) if any(x in c for x in '",\n') else c for c in cells))
    return (newline.join(lines) + newline).encode()


def as_jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in rows) + b"\n"


def run(data: bytes, key: str, policy: SendPolicy | None = None, **kw: Any) -> tuple[dict[str, Any], FakeBraze, Any]:
    s3 = FakeS3(chunk=kw.pop("chunk", 1 << 20))
    per_invocation = kw.pop("per_invocation", 1 << 30)
    s3.objects[(BUCKET, key)] = data
    braze = FakeBraze()
    deps = make_deps(braze, s3, policy or SendPolicy(max_in_flight=2), **kw)
    statuses = run_chain(deps, ObjectRef(BUCKET, key, "v1", "etag"), per_invocation)
    reports = sorted(k for k in deps.outputs.files if k.startswith("reports/"))
    report = orjson.loads(deps.outputs.files[reports[-1]])
    report["statuses"] = statuses
    return report, braze, deps


def report_of(data: bytes, key: str, **kw: Any) -> tuple[dict[str, Any], FakeBraze, Any]:
    return run(data, key, **kw)


# -- spaces after a closing quote -------------------------------------------------------------


def test_spaces_after_a_closing_quote_are_outside_the_field_and_other_bytes_there_stay_malformed() -> None:
    data = (
        b"external_id,note,city\n"
        b'u1,"a ""b"" c" \t,"x" \n'  # spaces and a tab after two closing quotes: dropped
        b'u2," kept ", "y"\n'  # spaces inside the quotes stay; a space before an opening quote: malformed
        b'u3,"two\nlines"  ,z\r\n'  # a quoted line break, then spaces
        b'u4,"a" b,z\n'  # a letter after the closing quote: malformed
    )
    read = [(e.line, e.value, e.error) for e in iter_rows([data], START)]
    assert read[0] == (None, {"external_id": "u1", "note": 'a "b" c', "city": "x"}, None)
    assert read[1][0] == 3 and "malformed quoting" in str(read[1][2])
    assert read[2] == (None, {"external_id": "u3", "note": "two\nlines", "city": "z"}, None)
    assert read[3][0] == 6 and "malformed quoting" in str(read[3][2])


def test_a_large_file_with_spaces_after_its_quotes_reads_every_row_across_chunks() -> None:
    body = b"".join(b'%d,"{""n"": %d}" \n' % (i, i) for i in range(20000))
    data = b"ID,PAYLOAD \n" + body
    read = list(iter_rows([data[i : i + 4093] for i in range(0, len(data), 4093)], START, group=Group.CATALOG))
    assert [e.value for e in read] == [{"id": str(i), "n": i} for i in range(20000)]
    assert all(e.error is None and e.kind == CATALOG_UPSERT for e in read)


# -- catalogs ------------------------------------------------------------------------------------


def test_brazes_catalog_sample_imports_every_item_as_braze_would_hold_it() -> None:
    data = SAMPLE.read_bytes()
    assert b'}" \n' in data  # Braze's sample ends each row with a space after the closing quote
    report, braze, _ = report_of(data, "incoming/catalogs/products/catalog_sample.csv")
    assert report["status"] == "completed", report
    assert report["rejected"] == 0 and report["accepted"] == 2
    assert braze.catalogs == {
        "products": {
            "85": {"id": "85", "product_name": "Product 85", "price": 85.85},
            "1": {"id": "1", "product_name": "Product 1", "price": 1.01},
        }
    }
    assert report["endpoints"] == {"PUT /catalogs/products/items": {"requests": 1, "objects": 2}}


def cdi_catalog_rows() -> list[dict[str, Any]]:
    """CDI catalog rows, good and bad, each with all of ID, PAYLOAD, DELETED as strings."""
    rows: list[dict[str, Any]] = []
    for i in range(260):
        payload = orjson.dumps({"name": f"shoe {i}", "size": i % 13, "tags": ["a", "b"]}).decode()
        rows.append({"ID": f"item-{i}", "PAYLOAD": payload, "DELETED": ["", "false", "0", "No"][i % 4]})
        if i % 9 == 4:
            rows.append({"ID": f"item-{i - 2}", "PAYLOAD": "", "DELETED": ["TRUE", "1", "yes", "true"][i % 4]})
        if i % 37 == 6:
            rows.extend(
                [
                    {"ID": "", "PAYLOAD": "{}"},  # no id
                    {"ID": "no good", "PAYLOAD": "{}"},  # not a Braze item id
                    {"ID": f"item-{i}", "PAYLOAD": "[1]"},  # not an object
                    {"ID": f"item-{i}", "PAYLOAD": "{nope"},  # not JSON
                    {"ID": f"item-{i}", "PAYLOAD": ""},  # empty, not deleted
                    {"ID": f"item-{i}", "PAYLOAD": '{"id": "other"}'},  # names another item
                    {"ID": f"item-{i}", "PAYLOAD": "{}", "DELETED": "maybe"},  # not a boolean
                ]
            )
    return rows


@pytest.mark.parametrize("shape", ["csv", "csv.gz"])
def test_a_cdi_catalog_csv_sends_and_rejects_exactly_what_the_same_rows_in_json_lines_do(shape: str) -> None:
    rows = cdi_catalog_rows()
    header = {"ID": "Id", "PAYLOAD": "payload", "DELETED": "Deleted", "UPDATED_AT": "updated_at"}  # any letter case
    csv = as_csv(list(header), rows, "\r\n", list(header.values()))
    data = gz(csv) if shape.endswith(".gz") else csv
    by_csv, csv_braze, csv_deps = report_of(data, f"incoming/catalogs/shoes/a.{shape}")
    by_json, json_braze, json_deps = report_of(
        as_jsonl([{header[k]: v for k, v in r.items()} for r in rows]), "incoming/catalogs/shoes/a.jsonl"
    )
    assert by_csv["status"] == by_json["status"] == "completed"
    assert csv_braze.sent == json_braze.sent and csv_braze.catalogs == json_braze.catalogs
    assert len(csv_braze.catalogs["shoes"]) > 200 and "item-2" not in csv_braze.catalogs["shoes"]  # DELETED deletes
    assert csv_braze.catalogs["shoes"]["item-3"] == {"id": "item-3", "name": "shoe 3", "size": 3, "tags": ["a", "b"]}
    csv_rejects, json_rejects = csv_deps.outputs.lines("rejects/"), json_deps.outputs.lines("rejects/")
    assert len(csv_rejects) == 7 * 7
    assert [(r["index"], r["reason"]) for r in csv_rejects] == [(r["index"], r["reason"]) for r in json_rejects]
    assert all(r["line"] == r["index"] + 2 for r in csv_rejects)  # the header is line 1
    for reason in ("Id: missing", "letters, digits", "PAYLOAD: is a JSON array", "not valid JSON",
                   "PAYLOAD: is empty", "name different items", "Deleted: must be true or false"):  # fmt: skip
        assert any(reason in r["reason"] for r in csv_rejects), reason
    for name in ("endpoints", "accepted", "rejected", "objects_read"):
        assert by_csv[name] == by_json[name], name


def test_a_catalog_csv_resumes_exactly_across_invocations() -> None:
    rows = cdi_catalog_rows()
    data = as_csv(["ID", "PAYLOAD", "DELETED"], rows)
    report, braze, deps = run(gz(data), "incoming/catalogs/shoes/a.csv.gz", SendPolicy(max_in_flight=3), chunk=997,
                              per_invocation=1)  # fmt: skip
    assert report["status"] == "completed" and len(report["statuses"]) > 3
    whole, once, _ = run(data, "incoming/catalogs/shoes/b.csv")
    sent = sorted((e.method, i["id"]) for e, p in braze.sent for i in p["items"])
    assert sent == sorted((e.method, i["id"]) for e, p in once.sent for i in p["items"])  # each row once
    assert braze.catalogs == once.catalogs
    rejects = deps.outputs.lines("rejects/")
    assert [r["line"] for r in rejects] == [r["index"] + 2 for r in rejects]
    assert report["rejected"] == whole["rejected"] == 49


def test_a_catalog_csv_with_only_id_and_deleted_deletes_its_items() -> None:
    data = b"id,deleted\nitem-1,true\nitem-2,TRUE\nitem-3,false\n"
    _, braze, deps = report_of(data, "incoming/catalogs/shoes/gone.csv")
    assert [(e.method, [i["id"] for i in p["items"]]) for e, p in braze.sent] == [("DELETE", ["item-1", "item-2"])]
    [reject] = deps.outputs.lines("rejects/")
    assert reject["line"] == 4 and reject["reason"].startswith("PAYLOAD: is empty")


def test_a_plain_catalog_csv_types_its_fields_as_attributes_and_keeps_the_id_a_string() -> None:
    data = (
        b"ID,name,price,in_stock,sizes,code,note,external_id\n"
        b'007,Runner,12.5,true,"[40, 41]",0042,,\n'
        b"8,Walker,3,FALSE,[],17,null,e8\n"
        b",Nameless,1,true,[],1,,\n"
        b"9\n"
    )
    _, braze, deps = report_of(data, "incoming/catalogs/shoes/plain.csv",
                               csv_type_cast={"code": "string"})  # fmt: skip
    assert braze.catalogs["shoes"] == {
        "007": {"id": "007", "name": "Runner", "price": 12.5, "in_stock": True, "sizes": [40, 41], "code": "0042"},
        "8": {
            "id": "8",
            "name": "Walker",
            "price": 3,
            "in_stock": False,
            "sizes": [],
            "code": "17",
            "note": None,
            "external_id": "e8",
        },  # a field like any other
    }
    assert [(r["line"], r["reason"]) for r in deps.outputs.lines("rejects/")] == [
        (4, "id: missing; every catalog item needs an id"),
        (5, "row has 1 fields, the header has 8"),
    ]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"name,price", "no ID column"),
        (b"ID,PAYLOAD,name", "put the item's fields inside PAYLOAD"),
        (b"ID,price,deleted", "holds only ID, PAYLOAD, DELETED and UPDATED_AT"),
        (b"ID,PAYLOAD,payload", "appears twice"),
        (b"ID,,PAYLOAD", "column 2 of the header has no name"),
    ],
)
def test_a_catalog_csv_with_a_bad_header_stops_clearly_and_sends_nothing(header: bytes, message: str) -> None:
    report, braze, _ = report_of(header + b'\nitem-1,"{}",x\n', "incoming/catalogs/shoes/bad.csv")
    assert report["status"] == "stopped" and report["stop_reason"] == "unreadable_file"
    assert message in report["error"]["message"] and "resume" not in report
    assert braze.sent == []


def test_a_dry_run_of_a_catalog_csv_counts_what_it_would_send() -> None:
    report, braze, _ = report_of(SAMPLE.read_bytes(), "incoming/dry-run/catalogs/products/catalog_sample.csv")
    assert report["status"] == "completed" and braze.sent == []
    assert report["would_send"] == {"PUT /catalogs/products/items": {"requests": 1, "objects": 2}}


# -- user deletes ------------------------------------------------------------------------------------


def delete_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(130):
        rows.append(
            [
                {"EXTERNAL_ID": f"u{i}"},
                {"Email": f"p{i}@example.com", "PAYLOAD": ""},
                {"braze_id": f"b{i}"},
                {"ALIAS_NAME": f"n{i}", "alias_label": "crm"},
                {"phone": f"+1555555{i:04d}"},
            ][i % 5]
        )
        if i % 40 == 11:
            rows.append({"EXTERNAL_ID": f"x{i}", "PAYLOAD": '{"first_name": "A"}'})  # a payload: not a delete
            rows.append({"EXTERNAL_ID": f"y{i}", "Email": "y@example.com"})  # two identifiers
            rows.append({})  # none
            rows.append({"ALIAS_NAME": f"half{i}"})  # half an alias
    return rows


DELETE_COLUMNS = ["EXTERNAL_ID", "Email", "braze_id", "ALIAS_NAME", "alias_label", "phone", "PAYLOAD"]


def test_a_user_deletes_csv_batches_by_identifier_type_and_rejects_as_json_does() -> None:
    rows = delete_rows()
    by_csv, braze, deps = report_of(as_csv(DELETE_COLUMNS, rows), "incoming/user-deletes/churned.csv",
                                    allow_user_deletes=True)  # fmt: skip
    assert by_csv["status"] == "completed", by_csv
    assert all(len(p) == 1 and len(next(iter(p.values()))) <= 50 for _, p in braze.sent)
    sizes = sorted((next(iter(p)), len(next(iter(p.values())))) for _, p in braze.sent)
    assert sizes == sorted(
        [(a, 26) for a in ("external_ids", "email_addresses", "braze_ids", "user_aliases", "phone_numbers")]
    )
    assert ("user_aliases", {"alias_name": "n3", "alias_label": "crm"}) in braze.deleted
    assert ("phone_numbers", "+15555550004") in braze.deleted  # a phone stays the string as written
    rejects = deps.outputs.lines("rejects/")
    assert len(rejects) == 12 and all(r["line"] == r["index"] + 2 for r in rejects)
    json_rows = [{k: v for k, v in r.items() if v != ""} for r in rows]
    _, json_braze, json_deps = report_of(as_jsonl(json_rows), "incoming/user-deletes/churned.jsonl",
                                         allow_user_deletes=True)  # fmt: skip
    assert json_braze.sent == braze.sent
    assert [(r["index"], r["reason"]) for r in json_deps.outputs.lines("rejects/")] == [
        (r["index"], r["reason"]) for r in rejects
    ]


def test_a_user_deletes_csv_is_refused_unless_allowed_and_resumes_exactly() -> None:
    data = as_csv(DELETE_COLUMNS, delete_rows() * 3)
    refused, braze, _ = report_of(data, "incoming/user-deletes/a.csv")
    assert refused["stop_reason"] == "user_deletes_not_allowed" and braze.sent == []
    report, braze, _ = run(gz(data), "incoming/user-deletes/a.csv.gz", chunk=997, per_invocation=1,
                           allow_user_deletes=True)  # fmt: skip
    assert report["status"] == "completed" and len(report["statuses"]) > 3
    _, once, _ = run(data, "incoming/user-deletes/b.csv", allow_user_deletes=True)
    # Each row's identifier once (the file holds each three times), none resent by a continuation.
    assert sorted(map(orjson.dumps, braze.deleted)) == sorted(map(orjson.dumps, once.deleted))
    assert len(braze.deleted) == 390
    assert report["rejected"] == 36


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"external_id,first_name", "holds only identifier columns"),
        (b"PAYLOAD", "no identifier column"),
        (b"alias_name,email", "needs both ALIAS_NAME and ALIAS_LABEL"),
        (b"email,EMAIL", "appears twice"),
    ],
)
def test_a_user_deletes_csv_with_a_bad_header_stops_clearly_and_sends_nothing(header: bytes, message: str) -> None:
    report, braze, _ = report_of(header + b"\nu1,\n", "incoming/user-deletes/bad.csv", allow_user_deletes=True)
    assert report["status"] == "stopped" and message in report["error"]["message"]
    assert braze.sent == []


def test_a_dry_run_of_a_user_deletes_csv_counts_what_it_would_delete_and_sends_nothing() -> None:
    report, braze, _ = report_of(as_csv(DELETE_COLUMNS, delete_rows()), "incoming/dry-run/user-deletes/a.csv")
    assert report["status"] == "completed" and braze.sent == []
    assert report["would_send"] == {"/users/delete": {"requests": 5, "objects": 130}}
    assert report["rejected"] == 12 and report["real_run"]["refused"] is True
