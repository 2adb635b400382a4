"""The sandbox CLI end to end: the real handler, moto server and the Braze emulator, with faults."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest

from sandbox import sample_data
from sandbox.services import BrazeEmulator
from tests.e2e.conftest import KEY, identities, run_cli

pytestmark = pytest.mark.e2e
REPORT_KEYS = {"status", "objects_read", "accepted", "rejected", "failed", "ambiguous", "requests", "retries"}
REPORT_KEYS |= {"throttled", "invocations", "seconds"}


def test_clean_import_through_the_built_in_emulator(sample_file: Path) -> None:
    code, report, _ = run_cli("import", str(sample_file), "--json")
    assert code == 0 and report is not None
    assert report.keys() >= REPORT_KEYS
    assert report["status"] == "completed" and report["objects_read"] == 3000
    assert report["accepted"] + report["rejected"] == 3000 and report["failed"] == 0


def test_drops_before_storing_are_delivered_exactly_once(sample_file: Path, braze: BrazeEmulator) -> None:
    braze.configure(rates={"drop_before": 0.15, "500": 0.05}, seed=3)
    code, report, _ = run_cli(
        "import", str(sample_file), "--braze-url", braze.url, "--braze-api-key", KEY, "--json", "--max-in-flight", "8"
    )
    assert code == 0 and report is not None and report["ambiguous"] > 0
    stored = identities(braze.objects())
    assert max(stored.values()) == 1  # exactly once, although every drop was resent
    assert sum(stored.values()) == report["accepted"]


def test_drops_after_storing_duplicate_only_the_ambiguous_batches(sample_file: Path, braze: BrazeEmulator) -> None:
    braze.configure(rates={"drop_after": 0.1}, seed=5)
    code, report, _ = run_cli("import", str(sample_file), "--braze-url", braze.url, "--braze-api-key", KEY, "--json")
    assert code == 0 and report is not None
    stored = identities(braze.objects())
    duplicates = sum(n - 1 for n in stored.values())
    assert 0 < duplicates <= report["ambiguous"]


def test_at_most_once_setting_never_duplicates(sample_file: Path, braze: BrazeEmulator) -> None:
    braze.configure(rates={"drop_after": 0.1}, seed=5)
    code, report, _ = run_cli(
        "import", str(sample_file), "--braze-url", braze.url, "--braze-api-key", KEY, "--json", "--ambiguous", "fail"
    )
    assert code == 1 and report is not None  # completed, with failures
    stored = identities(braze.objects())
    assert max(stored.values()) == 1
    assert report["failed"] == report["ambiguous"] > 0


def test_short_invocations_continue_exactly_where_they_stopped(sample_file: Path, braze: BrazeEmulator) -> None:
    braze.configure(latency_ms=150)
    code, report, _ = run_cli(
        "import", str(sample_file), "--braze-url", braze.url, "--braze-api-key", KEY, "--json",
        "--invocation-seconds", "1", "--max-in-flight", "2",
    )  # fmt: skip
    assert code == 0 and report is not None and report["invocations"] > 2
    stored = identities(braze.objects())
    assert max(stored.values()) == 1 and sum(stored.values()) == report["accepted"]
    assert report["objects_read"] == 3000


def test_rate_limit_that_binds_is_respected(sample_file: Path, braze: BrazeEmulator) -> None:
    braze.configure(rate_limit=10, rate_window_seconds=1.0)
    code, report, _ = run_cli("import", str(sample_file), "--braze-url", braze.url, "--braze-api-key", KEY, "--json")
    assert code == 0 and report is not None
    # 40+ requests at 10 per aligned 1 s window: the first window may be partial, two more are whole.
    assert report["requests"] >= 40 and report["seconds"] >= 2
    assert report["throttled"] <= 2  # the headers keep it under the limit


def test_wrong_key_stops_the_run(sample_file: Path) -> None:
    code, report, _ = run_cli("import", str(sample_file), "--braze-api-key", "wrong", "--json")
    assert code == 1 and report is not None
    assert report["status"] == "stopped" and report["stop_reason"] == "braze_auth_401"
    assert report["accepted"] == 0 and report["resume"]["action"] == "resume"


def test_outage_sends_batches_to_the_failed_file(sample_file: Path) -> None:
    code, report, _ = run_cli("import", str(sample_file), "--json", "--emulator", json.dumps({"rates": {"503": 1.0}}))
    assert code == 1 and report is not None
    assert report["status"] == "completed" and report["failed"] > 0 and report["accepted"] == 0
    assert report["failure_reasons"] == {"http_503": report["failed"]}


def test_body_limit_splits_requests_and_per_array_limit_is_honoured(tmp_path: Path) -> None:
    path = sample_data.write(tmp_path / "small.jsonl.gz", 500)
    code, report, _ = run_cli("import", str(path), "--json", "--emulator", json.dumps({"max_body_bytes": 6000}))
    assert code == 0 and report is not None and report["splits"] > 0 and report["accepted"] == 500
    code, report, _ = run_cli(
        "import", str(path), "--json", "--batch-rule", "per_array", "--emulator", json.dumps({"batch_rule": "combined"})
    )
    assert code == 0 and report is not None and report["splits"] > 0 and report["accepted"] == 500


def test_invalid_json_reports_the_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json.gz"
    with gzip.open(path, "wb") as out:
        out.write(b'[{"external_id": "a", "name": "e", "time": "2026-01-01"}, {"external_id": ')
    code, report, _ = run_cli("import", str(path), "--json")
    assert code == 1 and report is not None
    assert report["stop_reason"] == "invalid_json" and report["error"]["offset"] == 74
    assert report["accepted"] == 1


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli("import")[0] == 2
    assert run_cli("import", str(tmp_path / "missing.json"), "--json")[0] == 2
    (tmp_path / "data.tsv").write_text("a,b\n")
    assert run_cli("import", str(tmp_path / "data.tsv"), "--json")[0] == 2


def test_a_per_run_ceiling_of_zero_means_none(sample_file: Path) -> None:
    code, body, err = run_cli("import", str(sample_file), "--requests-per-second", "0", "--json")
    assert code == 0, err
    assert body is not None and body["status"] == "completed" and body["failed"] == 0


def test_stdout_is_only_the_report(sample_file: Path) -> None:
    code, report, _ = run_cli("import", str(sample_file), "--json", "--invocation-seconds", "2")
    assert code == 0 and report is not None  # json.loads of all of stdout succeeded: logs went elsewhere


def test_a_truncated_gzip_file_is_not_reported_complete(tmp_path: Path) -> None:
    whole = sample_data.write(tmp_path / "whole.jsonl.gz", 2000).read_bytes()
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    code, report, _ = run_cli("import", str(path), "--json")
    assert code == 1 and report is not None
    assert report["status"] == "stopped" and report["stop_reason"] == "unreadable_file"
    assert 0 < report["accepted"] < 2000 and "resume" not in report


@pytest.mark.parametrize("header", ["Retry-After", "X-Ratelimit-Retry-After"])
def test_429_answered_with_a_retry_after_header_is_honoured(
    sample_file: Path, braze: BrazeEmulator, header: str
) -> None:
    braze.configure(rate_limit=10, rate_window_seconds=1.0, retry_after_header=header)
    code, report, _ = run_cli("import", str(sample_file), "--braze-url", braze.url, "--braze-api-key", KEY, "--json")
    assert code == 0 and report is not None
    assert report["failed"] == 0 and report["accepted"] + report["rejected"] == report["objects_read"]
    assert report["waits_capped"] == 0


def test_the_50_object_rule_keeps_every_request_within_50(tmp_path: Path) -> None:
    path = sample_data.write(tmp_path / "fifty.jsonl", 500)
    code, report, _ = run_cli(
        "import",
        str(path),
        "--json",
        "--batch-rule",
        "combined_50",
        "--emulator",
        json.dumps({"batch_rule": "combined_50"}),
    )
    assert code == 0 and report is not None
    assert report["accepted"] == 500 and report["requests"] == 10 and report["splits"] == 0


def test_several_files_run_at_once_and_share_the_workspace_limit(tmp_path: Path, braze: BrazeEmulator) -> None:
    # Given two files and a workspace limit of 20 requests per second (the emulator's window),
    first = sample_data.write(tmp_path / "first.json", 3000, seed=1)
    second = sample_data.write(tmp_path / "second.jsonl.gz", 3000, seed=2)
    braze.configure(rate_limit=20, rate_window_seconds=1.0)
    # when both are dropped at once (deltas off: their records' look-ups and writes on moto would slow
    # each run below its share, and the share is what this measures),
    code, body, _ = run_cli(
        "import", str(first), str(second), "--braze-url", braze.url, "--braze-api-key", KEY, "--json",
        "--workspace-requests-per-second", "20", "--no-deltas",
    )  # fmt: skip
    # then both complete, in the order given, every object stored once (no request went unanswered),
    assert code == 0 and body is not None and len(body["runs"]) == 2
    reports = body["runs"]
    assert [r["source"]["key"] for r in reports] == ["incoming/first.json", "incoming/second.jsonl.gz"]
    assert all(r["status"] == "completed" and r["accepted"] == 3000 and r["failed"] == 0 for r in reports)
    assert sum(r["ambiguous"] for r in reports) == 0 and len(braze.objects()) == 6000
    # with no storm of 429s, each taking about half of the limit while both ran.
    requests = sum(r["requests"] for r in reports)
    assert sum(r["throttled"] for r in reports) <= max(2, requests // 100)
    rates = [r["requests"] / r["seconds"] for r in reports]
    assert all(0.3 * 20 <= rate <= 0.75 * 20 for rate in rates), rates


def test_one_failing_file_among_several_makes_the_exit_code_1(tmp_path: Path) -> None:
    good = sample_data.write(tmp_path / "good.jsonl", 300)
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'[{"external_id": "a", "name": "e", "time": "2026-01-01"}, {"external_id": ')
    code, body, _ = run_cli("import", str(good), str(broken), "--json")
    assert code == 1 and body is not None
    assert [r["status"] for r in body["runs"]] == ["completed", "stopped"]
    assert body["runs"][1]["stop_reason"] == "invalid_json"


def test_another_sender_in_the_workspace_slows_the_run_down_without_a_storm_of_429s(tmp_path: Path) -> None:
    path = sample_data.write(tmp_path / "shared.jsonl", 75 * 40)
    emulator = {"rate_limit": 20, "rate_window_seconds": 1.0, "foreign_share": 0.5}
    code, report, _ = run_cli(
        "import", str(path), "--json", "--workspace-requests-per-second", "20", "--emulator", json.dumps(emulator)
    )
    assert code == 0 and report is not None and report["accepted"] == 3000
    assert report["throttled"] <= 2
    # Half of every window is someone else's: the run gets about the other half, not the whole.
    assert report["requests"] / report["seconds"] <= 0.75 * 20


def test_in_order_runs_the_files_one_after_another_in_one_sandbox(tmp_path: Path, braze: BrazeEmulator) -> None:
    first = sample_data.write(tmp_path / "first.jsonl", 300, seed=1)
    second = sample_data.write(tmp_path / "second.json", 300, seed=2)
    code, body, _ = run_cli(
        "import", "--in-order", str(first), str(second), str(first), "--braze-url", braze.url, "--braze-api-key", KEY,
        "--json",
    )  # fmt: skip
    assert code == 0 and body is not None
    reports = body["runs"]
    keys = ["incoming/first.jsonl", "incoming/second.json", "incoming/first.jsonl"]
    assert [r["source"]["key"] for r in reports] == keys
    assert reports[0]["source"]["version_id"] != reports[2]["source"]["version_id"]  # the same file, uploaded again
    assert all(earlier["updated_at"] <= later["started_at"] for earlier, later in itertools.pairwise(reports))
    assert [r["objects_read"] for r in reports] == [300, 300, 300]
    assert len(braze.objects()) == sum(r["accepted"] for r in reports)
    code, body, _ = run_cli("import", "--in-order", str(first), "--json")
    assert code == 0 and body is not None and len(body["runs"]) == 1  # the shape of --in-order, even for one file
