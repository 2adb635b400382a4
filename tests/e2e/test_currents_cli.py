"""The Currents sandbox end to end: sample files, the real handlers, the Content API front."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sandbox import currents_sample
from sandbox.currents import CurrentsSandbox
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("currents")
    code, _, _ = run_cli("currents-sample", "--users", "30", "--events", "240", "--out", str(out))
    assert code == 0
    return out


def test_cli_personalizes_once_per_user_and_serves_both_shapes(sample: Path) -> None:
    code, result, _ = run_cli(
        "currents", str(sample), "--json", "--content", "braze-00000", "--content", "nobody", "--format", "dynamodb"
    )
    assert code == 0 and result is not None
    report = result["report"]
    assert set(report) == {
        "files", "records", "kept", "duplicates", "no_intent", "users", "scheduled", "generated", "skipped_fresh",
        "failed", "files_failed",
    }  # fmt: skip
    assert report["files"] == 6 and report["generated"] == report["scheduled"] == 30 and report["failed"] == 0
    assert report["no_intent"] > 0  # machine opens merged nowhere
    hit = result["content"]["braze-00000"]
    assert hit["status"] == 200 and hit["body"]["Item"]["data"]["M"]["heading"]["S"]
    assert hit["body"]["Item"]["external_id"] == {"S": "ユーザー-ü-0"}
    miss = result["content"]["nobody"]
    assert miss["status"] == 200 and miss["body"]["Item"]["default"] == {"BOOL": True}


def test_one_period_of_files_is_one_generation_about_the_purchase(tmp_path: Path) -> None:
    with CurrentsSandbox() as box:
        files = currents_sample.period(tmp_path, "braze-demo", start=int(time.time()) - 900)
        report = box.process(box.upload(files))  # SessionStart, then Purchase, then CustomEvent
        assert (report["files"], report["scheduled"], report["generated"]) == (3, 1, 1)
        status, body = box.get_content("braze-demo")
        assert status == 200 and "Ocean Lab season pass" in json.dumps(body["content"])


def test_credentials_and_lookups(sample: Path) -> None:
    with CurrentsSandbox() as box:
        report = box.process(box.upload([sample]))
        assert report["generated"] == 30 and report["failed"] == 0  # through the queue and the generator
        assert report["users"] == 30  # each once, though their events lie in 6 files
        status, body = box.get_content(None, {"external_id": "ユーザー-ü-0"})
        assert status == 200 and body["user_id"] == "braze-00000" and body["default"] is False
        assert box.get_content("braze-00000", api_key="wrong")[0] == 403
        assert box.get_content("braze-00000", token="wrong")[0] == 403
        assert box.get_content("braze-00000", token="")[0] == 403
        assert box.get_content("braze-00000", authorization=False)[0] == 401  # no header: API Gateway's 401
        assert box.get_content(None, None)[0] == 400
        again = box.process(box.upload([sample]))  # the same files delivered again
        assert again["generated"] == 0 and again["users"] == 0  # nothing new merged into any profile
