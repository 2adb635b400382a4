from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import sample_data
from sandbox.services import BrazeEmulator, braze_emulator

ROOT = Path(__file__).resolve().parents[2]
KEY = "sandbox-braze-key"


@pytest.fixture
def braze() -> Iterator[BrazeEmulator]:
    """An emulator of the test's own, so it can inspect what was stored."""
    with braze_emulator() as running:
        yield running


@pytest.fixture(scope="session")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_data.write(tmp_path_factory.mktemp("data") / "sample.json", 3000, invalid_every=250)


def run_cli(*args: str, timeout: float = 240) -> tuple[int, dict[str, Any] | None, str]:
    """Run ``python -m sandbox`` and parse stdout as the one JSON object it must be."""
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    body = json.loads(proc.stdout) if "--json" in args and proc.stdout.strip() else None
    return proc.returncode, body, proc.stderr


def identities(objects: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(o["object"], sort_keys=True) for o in objects)
