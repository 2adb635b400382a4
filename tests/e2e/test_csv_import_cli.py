"""CSV through the sandbox CLI: the real handler, moto server and the Braze emulator."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from sandbox.services import BrazeEmulator
from tests.e2e.conftest import KEY, run_cli

pytestmark = pytest.mark.e2e

CSV = (
    "\ufeffexternal_id,zip,level,vip,tags,note\r\n"
    '00123,02134,3.7,TRUE,"[\'a\', \'b\']","said ""hi"",\r\nthen left"\r\n'
    "u2,,,,,\r\n"  # nothing but the identifier: skipped
    ",1,1,1,,x\r\n"  # no identifier: a reject
    "u3,99,2,false,,null"  # the last line without a line break
)


@pytest.mark.parametrize("gz", [False, True])
def test_a_csv_becomes_typed_attributes_in_braze(tmp_path: Path, braze: BrazeEmulator, gz: bool) -> None:
    path = tmp_path / ("audience.csv.gz" if gz else "audience.csv")
    data = CSV.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    code, report, err = run_cli(
        "import", str(path), "--braze-url", braze.url, "--braze-api-key", KEY, "--json",
        "--csv-type-cast", "zip=string,level=integer",
    )  # fmt: skip
    assert report is not None, err
    assert code == 0  # completed, nothing failed (a reject is reported, as for JSON)
    assert report["status"] == "completed" and report["source"]["format"] == "csv"
    assert (report["objects_read"], report["accepted"], report["rejected"], report["skipped"]) == (4, 2, 1, 1)
    stored = sorted((o["object"] for o in braze.objects()), key=lambda o: o["external_id"])
    assert stored == [
        {
            "external_id": "00123",
            "zip": "02134",
            "level": 3,
            "vip": True,
            "tags": ["a", "b"],
            "note": 'said "hi",\r\nthen left',
        },
        {"external_id": "u3", "zip": "99", "level": 2, "vip": False, "note": None},
    ]


def test_a_csv_without_an_identifier_column_fails_at_once_and_sends_nothing(
    tmp_path: Path, braze: BrazeEmulator
) -> None:
    path = tmp_path / "people.csv"
    path.write_text("name,age\nann,3\n")
    code, report, _ = run_cli("import", str(path), "--braze-url", braze.url, "--braze-api-key", KEY, "--json")
    assert code == 1 and report is not None
    assert report["status"] == "stopped" and "no identifier column" in report["error"]["message"]
    assert braze.objects() == []


def test_a_bad_type_cast_is_refused_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("external_id,age\nu1,3\n")
    code, _, err = run_cli("import", str(path), "--csv-type-cast", "age=date")
    assert code != 0 and "must be one of" in err
