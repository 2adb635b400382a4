"""A stopped run resumes from its checkpoint once the cause is fixed: no re-upload, no duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import sample_data
from sandbox.importer import ImportSandbox
from tests.e2e.conftest import identities

pytestmark = pytest.mark.e2e


def test_resume_after_the_key_is_fixed(tmp_path: Path) -> None:
    path = sample_data.write(tmp_path / "resume.jsonl", 2000)
    with ImportSandbox(braze_api_key="sandbox-braze-key", emulator_settings={"script": ["ok"] * 5 + ["401"]}) as box:
        stopped = box.import_file(path)
        assert stopped["status"] == "stopped" and stopped["stop_reason"] == "braze_auth_401"
        resumed = box.resume(stopped["run_id"])
        assert box.emulator is not None
        stored = identities(box.emulator.objects())
    assert resumed["status"] == "completed"
    assert resumed["accepted"] == 2000 and max(stored.values()) == 1 and sum(stored.values()) == 2000


def test_resume_in_a_warm_container_uses_the_fixed_key(tmp_path: Path) -> None:
    path = sample_data.write(tmp_path / "rotated.jsonl", 1000)
    with ImportSandbox(braze_api_key="revoked-key") as box:
        stopped = box.import_file(path)
        assert stopped["status"] == "stopped" and stopped["stop_reason"] == "braze_auth_401"
        box.set_api_key("sandbox-braze-key")  # the operator fixes the secret; the container stays warm
        resumed = box.resume(stopped["run_id"])
        assert box.emulator is not None
        stored = identities(box.emulator.objects())
    assert resumed["status"] == "completed" and resumed["accepted"] == 1000 and sum(stored.values()) == 1000
