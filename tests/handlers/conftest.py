from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sandbox.services import BrazeEmulator, braze_emulator


@pytest.fixture(scope="session")
def emulator() -> Iterator[BrazeEmulator]:
    with braze_emulator() as running:
        yield running


@pytest.fixture
def braze(emulator: BrazeEmulator) -> BrazeEmulator:
    emulator.reset()
    return emulator


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
