"""Fixtures of the Braze emulator's tests: one emulator per test module, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.emulator_harness import Running, running


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with running() as braze:
        yield braze


@pytest.fixture
def braze(server: Running) -> Running:
    server.reset()
    return server
