"""Settings parsing shared by every stack."""

from __future__ import annotations

import pytest

from stacks.config import AppConfig, ConfigError


@pytest.mark.parametrize("word", ["flase", "on", "2", ""])
def test_a_misspelt_boolean_setting_is_refused_not_read_as_false(word: str) -> None:
    context = {"apiGateway:manageAccountRole": word}
    with pytest.raises(ConfigError, match=r"apiGateway:manageAccountRole: must be true or false"):
        AppConfig.from_context(context.get)


@pytest.mark.parametrize(("word", "expected"), [("true", True), ("Yes", True), ("1", True), ("false", False),
                                                 ("no", False), ("0", False), (False, False)])  # fmt: skip
def test_boolean_settings_read_the_usual_words(word: object, expected: bool) -> None:
    config = AppConfig.from_context({"apiGateway:manageAccountRole": word}.get)
    assert config.manage_api_gateway_account_role is expected
