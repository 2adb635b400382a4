"""Bulk upload end to end: moto server pre-signed URLs, the keyed front, the real handlers."""

from __future__ import annotations

import base64
import gzip
import json
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
from bulk_upload.copier import MIN_PART

from sandbox.bulk_upload import BulkUploadSandbox
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.e2e


def test_cli_copies_with_the_header_and_refuses_a_wrong_key(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("id-1,10\nid-2,20\n")
    meta = tmp_path / "meta.csv"
    meta.write_text("identity_id,score\n")
    code, result, _ = run_cli(
        "bulk-upload", "--data-file", str(data), "--metadata-file", str(meta), "--s3-filename", "w/a.csv", "--json"
    )
    assert code == 0 and result is not None
    assert result["http_status"] == 202 and result["job_status"] == "done" and result["s3_key"] == "ci360/w/a.csv"
    assert result["size"] == len("identity_id,score\nid-1,10\nid-2,20\n") and result["header"] == "identity_id,score"
    code, refused, _ = run_cli(
        "bulk-upload", "--data-file", str(data), "--s3-filename", "a.csv", "--api-key", "wrong", "--json"
    )
    assert code == 1 and refused is not None
    assert refused == {"http_status": 403, "response": {"message": "Forbidden"},
                       "failure_reason": "the webhook was refused (403): Forbidden"}  # fmt: skip
    code, bad, _ = run_cli("bulk-upload", "--data-file", str(data), "--s3-filename", "../x.csv", "--json")
    assert code == 1 and bad is not None and bad["http_status"] == 400


def test_a_large_file_is_copied_with_flat_memory(tmp_path: Path) -> None:
    data = tmp_path / "big.csv"
    row = b"".join(b"id-%09d,%d,segment-%d\n" % (i, i % 997, i % 7) for i in range(100_000))
    with data.open("wb") as out:
        for _ in range(int(210e6 // len(row)) + 1):
            out.write(row)
    with BulkUploadSandbox() as box:
        url = box.stage(data)
        Path("/proc/self/clear_refs").write_text("5")  # measure the copy only
        before = _peak_mb()
        status, answer = box.post({"presignedUrls": {"dataFile": url}, "sendParameters": {"s3_filename": "big.csv"}})
        box.run_copies()
        grew = _peak_mb() - before
        job = box.job(answer["job_id"])
    assert status == 202 and job["status"] == "done" and job["size"] == data.stat().st_size >= 200e6
    assert grew < 80, f"the copy grew peak memory by {grew:.0f} MB"


def _peak_mb() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024  # type: ignore[union-attr]


def test_a_copy_longer_than_one_invocation_hands_over_and_lands_whole(tmp_path: Path) -> None:
    # Given a time budget so tiny that every invocation hands over after its first part
    data = tmp_path / "big.csv"
    data.write_bytes(b"".join(b"id-%08d,%d\n" % (i, i % 97) for i in range(2_400_000)))  # ~36 MB
    meta = tmp_path / "meta.csv"
    meta.write_text("identity_id,score\n")
    with BulkUploadSandbox(invocation_seconds=1.0, function_env={"COPY_HANDOVER_SECONDS": "1"}) as box:
        urls = {"dataFile": box.stage(data), "metadataFile": box.stage(meta)}
        status, answer = box.post({"presignedUrls": urls, "sendParameters": {"s3_filename": "big.csv"}})
        # When the copier runs, each invocation copies one part and queues the next
        from bulk_upload.copier_handler import _s3

        checked = _check_sent_checksums(_s3())
        invocations = box.run_copies()
        job = box.job(answer["job_id"])
        stored = box.stored(answer["s3_key"])
        checksum = box.s3.head_object(Bucket="sandbox-uploads", Key=answer["s3_key"], ChecksumMode="ENABLED")
        uploads = box.s3.list_multipart_uploads(Bucket="sandbox-uploads").get("Uploads", [])
    # Then the object is whole and exact, in one multipart upload continued across invocations
    parts = -(-(len(b"identity_id,score\n") + data.stat().st_size) // MIN_PART)
    assert status == 202 and invocations == parts == 5 and job["status"] == "done" and "error" not in job
    assert stored == b"identity_id,score\n" + data.read_bytes() and job["size"] == len(stored)
    assert not uploads
    # And every part went with the CRC32 of its bytes, listed again at the completion (moto server
    # does not check them: S3 does), and the object's checksum is the composite of the parts
    assert checked["parts"] == parts and checked["completed"] == [str(n) for n in range(1, parts + 1)]
    crcs = b"".join(zlib.crc32(stored[i : i + MIN_PART]).to_bytes(4, "big") for i in range(0, len(stored), MIN_PART))
    expected = base64.b64encode(zlib.crc32(crcs).to_bytes(4, "big")).decode()
    assert checksum.get("ChecksumCRC32", "").split("-")[0] == expected  # of the parts, not of the whole object


def _check_sent_checksums(s3: Any) -> dict[str, Any]:
    """Check, as each request leaves, that a part's CRC32 header is its bytes' and that the
    completion lists the checksum each part was sent with."""
    sent: dict[str, str] = {}
    seen: dict[str, Any] = {"parts": 0, "completed": []}

    def part(request: Any, **_: Any) -> None:
        body = request.body
        data = body.read()
        body.seek(0)
        crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        assert request.headers["x-amz-checksum-crc32"] in (crc, crc.encode())
        number = re.search(r"partNumber=(\d+)", request.url).group(1)  # type: ignore[union-attr]
        sent[number] = crc
        seen["parts"] += 1

    def complete(request: Any, **_: Any) -> None:
        listed = re.findall(rb"<PartNumber>(\d+)</PartNumber>.*?<ChecksumCRC32>([^<]+)</ChecksumCRC32>", request.body)
        assert listed and all(sent[n.decode()] == c.decode() for n, c in listed)
        seen["completed"] = [n.decode() for n, _ in listed]

    s3.meta.events.register("before-send.s3.UploadPart", part)
    s3.meta.events.register("before-send.s3.CompleteMultipartUpload", complete)
    return seen


def test_cli_delivers_a_ci360_audience_to_braze_as_attributes(tmp_path: Path) -> None:
    rows = [f'id-{i},{i},c-{i:04d},"gold, {i % 3}"' for i in range(500)]
    rows[7] = "id-7,7,,gold"  # no identifier: a reject with its line
    data = tmp_path / "aud.csv.gz"
    data.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))  # staged gzip-encoded
    meta = tmp_path / "meta.json"
    columns = ("identity_id", "score", "external_id", "tier")
    meta.write_text(json.dumps([{"columnName": c, "dataType": "STRING"} for c in columns]))
    code, result, _ = run_cli(
        "bulk-upload", "--data-file", str(data), "--metadata-file", str(meta), "--s3-filename", "aud.csv",
        "--to-braze", "--json",
    )  # fmt: skip
    assert code == 0 and result is not None, result
    assert result["job_status"] == "done" and result["header"] == "identity_id,score,external_id,tier"
    report = result["import"]
    assert report["status"] == "completed" and report["run_id"] == result["import_run_id"]
    assert (report["accepted"], report["rejected"], report["failed"]) == (499, 1, 0)
    assert report["source"]["columns"] == {"id_column": "external_id", "ignore": ["identity_id"]}
    assert result["braze_emulator_stored"] == 499
    assert result["braze_emulator_fields"] == ["external_id", "score", "tier"]  # identity_id never sent


def test_cli_to_braze_without_the_id_column_fails_and_sends_nothing(tmp_path: Path) -> None:
    data = tmp_path / "aud.csv"
    data.write_text("id-1,5\n")
    meta = tmp_path / "meta.csv"
    meta.write_text("identity_id,score\n")
    code, result, _ = run_cli(
        "bulk-upload", "--data-file", str(data), "--metadata-file", str(meta), "--s3-filename", "a.csv",
        "--to-braze", "--json",
    )  # fmt: skip
    assert code == 1 and result is not None
    assert result["job_status"] == "failed" and "no external_id column" in result["error"]
    assert result["import"] is None and result["braze_emulator_stored"] == 0
    code, _, err = run_cli(
        "bulk-upload", "--data-file", str(data), "--s3-filename", "a.csv", "--braze-url", "http://127.0.0.1:9"
    )
    assert code == 2 and "needs --to-braze" in err
