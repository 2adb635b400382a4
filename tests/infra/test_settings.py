"""A setting synth refuses ends it with one line and exit code 2, as `cdk synth -c …` shows it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_a_misspelt_setting_ends_synth_with_one_line_naming_the_closest_key(tmp_path: Path) -> None:
    # The cdk CLI hands the app its context (cdk.json's and every -c) in CDK_CONTEXT_JSON.
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"import:maxInflight": "10"}), "CDK_OUTDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: unknown setting import:maxInflight (did you mean import:maxInFlight?)"]
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("key", "value"),
    [("import:logRetentionDays", "8"), ("project", "bad_name!"), ("import:maxInFlight", "0")],
)
def test_a_value_aws_would_refuse_ends_synth_with_one_line_naming_the_key(tmp_path: Path, key: str, value: str) -> None:
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({key: value}), "CDK_OUTDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {key} must be ") and value in errors[0]
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())
