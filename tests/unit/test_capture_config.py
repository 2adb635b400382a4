"""The capture settings: read from context, and refused when they would lose or misroute events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stacks.config import AppConfig, CaptureConfig, ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_every_capture_key_in_cdk_json_is_read_and_documented() -> None:
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    keys = [k for k in context if k.startswith("capture:")]
    assert AppConfig.from_context(context.get).capture == CaptureConfig()
    assert len(keys) == len(CaptureConfig.__dataclass_fields__)
    readme = (ROOT / "README.md").read_text()
    assert [k for k in keys if f"`{k}`" not in readme] == []


def test_context_values_override_the_defaults() -> None:
    context: dict[str, Any] = {"capture:bufferSeconds": "30", "capture:selfSignUp": "false", "capture:prefix": "web/"}
    capture = AppConfig.from_context(context.get).capture
    assert (capture.buffer_seconds, capture.self_sign_up, capture.prefix) == (30, False, "web/")


def test_an_error_prefix_under_the_incoming_prefix_is_refused() -> None:
    with pytest.raises(ConfigError, match="outside the import incoming prefix"):
        AppConfig(capture=CaptureConfig(error_prefix="incoming/capture-errors/"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"prefix": "/abs/"}, "relative"),
        ({"prefix": "no-slash"}, "relative"),
        ({"buffer_seconds": 901}, "bufferSeconds"),
        ({"buffer_mb": 0}, "bufferMb"),
        ({"authorizer_cache_seconds": 3600, "access_token_minutes": 30}, "outlive an access token"),
        ({"cors_origins": "https://ok.example, shop.example.com"}, "corsOrigins"),
        ({"cors_origins": "https://ok.example/path"}, "corsOrigins"),
        ({"forward_event_types": "loyaltypurchase"}, "forwardEndpoint"),
        ({"forward_event_types": "a", "forward_endpoint": "http://x"}, "forwardEndpoint"),
        ({"forward_event_types": "a", "forward_endpoint": "https://x"}, "forwardSecretName"),
    ],
)
def test_settings_that_cannot_work_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CaptureConfig(**settings)


def test_forwarded_types_are_a_trimmed_list() -> None:
    config = CaptureConfig(forward_event_types=" a, b ,", forward_endpoint="https://x", forward_secret_name="s")
    assert config.forwarded_types == ["a", "b"]
