"""The emulator as its own process, as the sandbox starts it: settings given at start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from sandbox.services import braze_emulator

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": "Bearer sandbox-braze-key"}


def test_catalogs_and_limits_given_at_start_are_served() -> None:
    catalogs = {"shop": {"fields": [{"name": "id", "type": "string"}, {"name": "price", "type": "number"}]}}
    with braze_emulator(catalogs=catalogs, catalog_rate_limit=100) as braze:
        item = {"id": "1", "price": 1.01}
        answer = httpx.put(f"{braze.url}/catalogs/shop/items", json={"items": [item]}, headers=AUTH)
        assert answer.status_code == 202 and answer.headers["X-RateLimit-Limit"] == "100"
        assert httpx.get(f"{braze.url}/_emulator/catalogs/shop").json()["items"] == [item]
        assert braze.state()["catalog_items"] == {"shop": 1}


def test_a_bad_setting_at_start_stops_with_a_clear_reason() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox.braze_emulator", "--config", '{"catalogs": {"shop": {"fields": []}}}'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "--config: catalog 'shop': fields must be a non-empty list" in proc.stderr
    assert "Traceback" not in proc.stderr
