"""The emulator's settings: a value it could not honour is refused, naming the setting."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.braze_emulator import Config


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"batch_rule": "nope"}, "batch_rule must be one of combined, combined_50, per_array"),
        ({"latency_ms": -1}, "latency_ms must be a number, at least 0"),
        ({"max_objects": 0}, "max_objects must be a number, at least 1"),
        ({"rates": {"503": 2}}, "rates must be numbers from 0 to 1"),
        ({"rates": {"503": 0.6, "429": 0.6}}, "rates must add up to at most 1"),
        ({"rates": {"504": 0.1}}, "unknown outcome '504'"),
        ({"latency": 5}, "unknown setting 'latency'"),
    ],
)
def test_a_setting_the_emulator_cannot_honour_is_refused(settings: dict[str, Any], said: str) -> None:
    config = Config()
    with pytest.raises(ValueError, match=said):
        config.update(settings)
    assert config == Config()  # nothing taken from a refused update


def test_good_settings_are_taken() -> None:
    config = Config()
    config.update({"batch_rule": "per_array", "latency_ms": 0, "rates": {"503": 0.5, "drop_after": 0.5}})
    assert (config.batch_rule, config.rates) == ("per_array", {"503": 0.5, "drop_after": 0.5})
