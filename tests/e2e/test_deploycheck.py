"""`make check-deploy` against the sandbox: green when everything answers, non-zero and specific
when something a person must fix is wrong."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest

from deploycheck.__main__ import check_sandbox
from deploycheck.bedrock import FakeBedrock
from sandbox.deployment import SandboxDeployment
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e


def test_make_check_deploy_runs_this_module() -> None:
    recipe = re.search(r"^check-deploy:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe and "-m deploycheck" in recipe.group(1)


def test_check_deploy_passes_against_the_sandbox() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "deploycheck", "--sandbox"], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = [line for line in lines if line.startswith(("PASS", "FAIL", "SKIP"))]
    assert all(line.startswith("PASS") for line in checks), checks
    for expected in (
        "import bucket accepts a write",
        "content API answers an unknown user with default content: HTTP 200",
        "content API refuses a wrong API key",
        "content API refuses a wrong token",
        "bulk-upload API refuses a wrong API key",
        "bulk-upload API refuses an invalid body",
        "Bedrock model answers",
    ):
        assert any(expected in line for line in checks), expected
    assert sum("reach a person" in line for line in checks) == 3
    assert lines[-1] == f"{len(checks)} passed, 0 failed, 0 skipped"


def test_check_deploy_fails_and_says_what_to_fix() -> None:
    refusing = FakeBedrock(
        error=(
            "AccessDeniedException",
            "Model use case details have not been submitted for this account. Fill out the Anthropic use case "
            "details form before using the model.",
        )
    )
    out = io.StringIO()
    broken = SandboxDeployment(alarm_email=None, check_api_keys=False, bedrock=refusing)
    assert check_sandbox(broken, out) == 1
    failed = [line for line in out.getvalue().splitlines() if line.startswith("FAIL")]
    assert sum("reach a person: nobody is subscribed: deploy with -c alarms:email=" in f for f in failed) == 3
    assert any(f.startswith("FAIL  content API refuses a wrong API key: HTTP 200") for f in failed)
    assert any(f.startswith("FAIL  bulk-upload API refuses a wrong API key: HTTP 400") for f in failed)
    assert any("Bedrock model answers" in f and "use-case form" in f for f in failed)
    assert refusing.requests and refusing.requests[0]["inferenceConfig"]["maxTokens"] <= 10
    passed = [line for line in out.getvalue().splitlines() if line.startswith("PASS")]
    assert any("content API refuses a wrong token" in p for p in passed), "the token check still holds"


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ("import:maxInflight=10", "error: unknown setting import:maxInflight (did you mean import:maxInFlight?)"),
        ("projct=X", "error: unknown setting projct (did you mean project?)"),
        ("import:maxInFlight=abc", "error: import:maxInFlight must be a whole number, not 'abc'"),
        ("import:maxInFlight=0", "error: import:maxInFlight must be between 1 and 256, not 0"),
        ("import:maxInFlight", "error: -c takes key=value, not 'import:maxInFlight'"),
        ("=5", "error: -c takes key=value, not '=5'"),
        (
            "--project=bad_name",
            "error: project must be letters, digits and hyphens, starting with a letter, at most "
            "110 characters (it starts every stack's name), not 'bad_name'",
        ),
    ],
)
def test_check_deploy_refuses_a_setting_synth_refuses_in_one_line(setting: str, error: str) -> None:
    flags = [setting] if setting.startswith("--") else ["-c", setting]
    proc = subprocess.run(
        [sys.executable, "-m", "deploycheck", "--sandbox", *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", error + "\n")


def test_make_refuses_a_setting_without_a_value_before_anything_runs() -> None:
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", "check-deploy",
         "SETTINGS=alarms:email=a@example.com import:maxInFlight"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert "SETTINGS: import:maxInFlight is not key=value" in line
