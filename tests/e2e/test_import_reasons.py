"""An import says why: each reject where it was and why (the first 20, then a count), each failed
batch's cause; --keep takes the run's outputs out of the sandbox before it goes."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import sample_data
from tests.e2e.conftest import ROOT, run_cli

pytestmark = pytest.mark.e2e


def test_rejects_and_failed_batches_are_explained_and_kept(tmp_path: Path) -> None:
    # Given 3,000 objects, 30 invalid, and a Braze that drops a tenth of its answers after storing
    path = sample_data.write(tmp_path / "s.json", 3000, invalid_every=100)
    kept = tmp_path / "kept"

    proc = subprocess.run(
        [sys.executable, "-m", "sandbox", "import", str(path), "--keep", str(kept), "--ambiguous", "fail",
         "--emulator", json.dumps({"rates": {"drop_after": 0.1}, "seed": 5})],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip

    assert proc.returncode == 1  # completed, with failures
    lines = proc.stdout.splitlines()
    rejects = [line for line in lines if line.startswith("  reject: element ")]
    assert len(rejects) == 20
    assert all(" at byte " in line and line.count(": ") >= 2 for line in rejects)
    positions = [int(line.split()[2].replace(",", "")) for line in rejects]
    assert positions == sorted(positions)
    rejected = next(int(line.split()[1].replace(",", "")) for line in lines if line.startswith("  rejected "))
    assert f"  and {rejected - 20} more rejects" in lines
    failed = [line for line in lines if line.startswith("  failed: ")]
    assert failed and all("objects: ambiguous_" in line for line in failed)
    # And the outputs outlive the sandbox
    reports = list(kept.glob("reports/s.json/*.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["rejected"] == rejected
    kept_rejects = [
        json.loads(x) for part in kept.glob("rejects/s.json/*/*.jsonl") for x in part.read_text().split("\n") if x
    ]
    assert len(kept_rejects) == rejected
    assert list(kept.glob("failed/s.json/*/*.jsonl"))
    assert f"kept 3 files of incoming/s.json in {kept}" in proc.stderr


def test_a_terminal_shows_the_import_progress_with_the_time_left(tmp_path: Path) -> None:
    # Given a gzipped file slow to import (one request at a time, 200 ms an answer, 2 s invocations)
    path = tmp_path / "users.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(b'{"external_id": "u%d", "n": 1}\n' % i for i in range(3_000))))
    leader, follower = pty.openpty()

    with subprocess.Popen(
        [sys.executable, "-m", "sandbox", "import", str(path), "--no-deltas", "--max-in-flight", "1",
         "--invocation-seconds", "2", "--emulator", json.dumps({"latency_ms": 200})],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=follower,
    ) as proc:  # fmt: skip
        os.close(follower)
        shown = _read_all(leader)
        assert proc.wait(timeout=240) == 0

    lines = [
        line
        for line in shown.decode().replace("\r\x1b[K", "\n").splitlines()
        if not line.startswith("invocation") and "objects read" in line
    ]
    assert len(lines) >= 2, shown
    pattern = (
        r"[\d,]+ of 3,000 objects read \(\d+ %\), [\d.]+ of 7\.\d KB, [\d,]+ objects/s, "
        r"(\d+:\d\d left|time left not known yet)"
    )
    assert all(re.fullmatch(pattern, line) for line in lines), lines
    assert any(line.endswith(" left") and "not known" not in line for line in lines), lines


def _read_all(fd: int) -> bytes:
    data = b""
    with contextlib.suppress(OSError):  # the terminal's other end closed: the command is done
        while chunk := os.read(fd, 65536):
            data += chunk
    os.close(fd)
    return data


def test_a_refused_user_delete_file_names_the_sandbox_flag_that_allows_it(tmp_path: Path) -> None:
    deletes = tmp_path / "files" / "user-deletes"
    deletes.mkdir(parents=True)
    (deletes / "gone.jsonl").write_text('{"external_id": "u1"}\n')

    proc = subprocess.run(
        [sys.executable, "-m", "sandbox", "import", str(deletes.parent)], cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip

    assert proc.returncode == 1
    assert "  in the sandbox: run it again with --allow-user-deletes (import:allowUserDeletes)" in proc.stdout


def test_json_output_keeps_the_first_rejects_with_their_positions_and_reasons(tmp_path: Path) -> None:
    path = sample_data.write(tmp_path / "s.json", 500, invalid_every=20)

    code, report, _ = run_cli("import", str(path), "--json")

    assert code == 0 and report is not None and report["rejected"] > 20
    first = report["first_rejects"]
    assert len(first) == 20 and [r["index"] for r in first] == sorted(r["index"] for r in first)
    assert all({"index", "offset", "reason"} <= set(r) for r in first)
