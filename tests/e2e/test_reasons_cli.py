"""Currents and bulk upload say why: each failed file by name and reason, the users that have
content; a bulk upload's failure reason."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox.__main__ import _bulk_field, _currents_summary
from sandbox.currents import CurrentsSandbox
from tests.e2e.conftest import ROOT, run_cli

pytestmark = pytest.mark.e2e


def test_currents_names_each_failed_file_and_the_users_with_content(tmp_path: Path) -> None:
    # Given Braze's layout with one file that is not Avro among good ones
    code, _, _ = run_cli("currents-sample", "--users", "5", "--events", "20", "--out", str(tmp_path))
    assert code == 0
    good = next(tmp_path.rglob("*.avro"))
    broken = good.with_name("broken.avro")
    shutil.copyfile(good, broken)
    broken.write_bytes(b"\xff\xfe not avro at all")

    (tmp_path / "notes.txt").write_text("not Currents")

    code, result, stderr = run_cli("currents", str(tmp_path), "--json")

    assert f"skipped {tmp_path / 'notes.txt'}: not an .avro file" in stderr
    assert code == 1 and result is not None  # the run failed: a file was not taken
    assert result["report"]["files_failed"] == 1 and result["report"]["generated"] == 5
    (key, reason), *others = result["failed_files"].items()
    assert not others and key.endswith("/broken.avro") and "avro" in reason
    assert result["users_with_content"] == [f"braze-{i:05d}" for i in range(5)]


def test_currents_text_lists_the_ids_to_read(tmp_path: Path) -> None:
    assert run_cli("currents-sample", "--users", "3", "--events", "10", "--out", str(tmp_path))[0] == 0
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox", "currents", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
        timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0
    assert "content for 3 users: braze-00000, braze-00001, braze-00002 (read one with --content ID)" in proc.stdout
    assert "file 6 of 6 delivered: currents/" in proc.stderr  # a line a file, as it goes
    assert "  users                  3   with events merged into their profile\n" in proc.stdout


def test_currents_counts_each_user_once_and_says_why_each_generation_failed(tmp_path: Path) -> None:
    # Given 4 users whose events lie in 6 files, and a model that cannot be reached
    assert run_cli("currents-sample", "--users", "4", "--events", "40", "--out", str(tmp_path))[0] == 0
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    box = CurrentsSandbox(function_env={
        "CONTENT_GENERATOR": "bedrock", "BEDROCK_MODEL_ID": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": f"http://127.0.0.1:{port}",
    })  # fmt: skip

    with box:
        report = box.process(box.upload([tmp_path]))

    assert report["files"] == 6 and report["users"] == 4  # each user once, not once per file
    assert report["failed"] == 4 and report["generated"] == 0
    assert box.failed_generations == dict.fromkeys(
        [f"braze-{i:05d}" for i in range(4)],
        "the model call failed (EndpointConnectionError); the message will be retried",
    )
    summary = _currents_summary(report)
    assert "  users                  4   with events merged into their profile\n" in summary
    assert "scheduled: 0 generated, 0 skipped (nothing new), 4 failed (SQS would retry them)" in summary


def test_a_batch_where_some_generations_fail_counts_each_failure_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError
    from currents_personalizer.generators import OfflineGenerator

    class HalfDown(OfflineGenerator):
        def generate(self, activity: Any, *, deadline: float | None = None) -> Any:
            if int(activity.user_id[-1]) % 2:
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "x"}}, "Converse")
            return super().generate(activity, deadline=deadline)

    assert run_cli("currents-sample", "--users", "4", "--events", "40", "--out", str(tmp_path))[0] == 0
    monkeypatch.setattr("currents_personalizer.handler.content_generator", HalfDown)

    with CurrentsSandbox() as box:
        report = box.process(box.upload([tmp_path]))

    assert (report["generated"], report["failed"]) == (2, 2)
    assert sorted(box.failed_generations) == ["braze-00001", "braze-00003"]


def test_a_failed_bulk_upload_says_why(tmp_path: Path) -> None:
    data = tmp_path / "audience.csv"
    data.write_text("c-1,1\nc-2,2\n")
    metadata = tmp_path / "metadata.json"
    metadata.write_text(" " * (1024 * 1024 + 1))  # over the copier's limit for a metadata file

    code, result, _ = run_cli("bulk-upload", "--data-file", str(data), "--metadata-file", str(metadata),
                              "--s3-filename", "a.csv", "--json")  # fmt: skip

    assert code == 1 and result is not None and result["job_status"] == "failed"
    assert result["failure_reason"] == "the copy job ended failed: the metadata file is larger than 1048576 bytes"


def test_a_bulk_uploads_counts_carry_their_units() -> None:
    assert _bulk_field("size", 5_380_026) == "size: 5,380,026 bytes"
    assert _bulk_field("copier_invocations", 3) == "copier_invocations: 3 invocations"
    assert _bulk_field("response", {"job_id": "j"}) == 'response: {"job_id": "j"}'
    assert _bulk_field("header", None) == "header: None"
