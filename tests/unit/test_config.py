"""Settings parsing shared by every stack: misspelt keys and bad values are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stacks.config import AppConfig, ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("word", ["flase", "on", "2", ""])
def test_a_misspelt_boolean_setting_is_refused_not_read_as_false(word: str) -> None:
    context = {"apiGateway:manageAccountRole": word}
    with pytest.raises(ConfigError, match=r"apiGateway:manageAccountRole must be true or false"):
        AppConfig.from_context(context.get)


@pytest.mark.parametrize(("word", "expected"), [("true", True), ("Yes", True), ("1", True), ("false", False),
                                                 ("no", False), ("0", False), (False, False)])  # fmt: skip
def test_boolean_settings_read_the_usual_words(word: object, expected: bool) -> None:
    config = AppConfig.from_context({"apiGateway:manageAccountRole": word}.get)
    assert config.manage_api_gateway_account_role is expected


CONTEXT = json.loads((ROOT / "cdk.json").read_text())["context"]


def refusal(context: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as refused:
        AppConfig.from_settings(context)
    return str(refused.value)


def test_every_key_of_cdk_json_is_a_known_setting() -> None:
    assert AppConfig.from_settings(CONTEXT) == AppConfig.from_context(CONTEXT.get)


@pytest.mark.parametrize(
    ("key", "closest"),
    [
        ("import:maxInflight", "import:maxInFlight"),
        ("import:maxinflight", "import:maxInFlight"),
        ("Import:maxInFlight", "import:maxInFlight"),
        ("currents:modelId", "currents:bedrockModelId"),
        ("bulkUpload:deliverToBrazee", "bulkUpload:deliverToBraze"),
        ("capture:corsOrigin", "capture:corsOrigins"),
        ("alarms:mail", "alarms:email"),
        ("tracing:enable", "tracing:enabled"),
        ("apiGateway:manageRole", "apiGateway:manageAccountRole"),
    ],
)
def test_a_misspelt_key_fails_naming_the_closest_known_key(key: str, closest: str) -> None:
    assert refusal({**CONTEXT, key: "10"}) == f"unknown setting {key} (did you mean {closest}?)"


@pytest.mark.parametrize(
    ("key", "closest"),
    [
        ("imprt:maxInFlight", "import:maxInFlight"),  # a misspelt namespace
        ("bulk_upload:deliverToBraze", "bulkUpload:deliverToBraze"),
        ("current:prefix", "currents:prefix"),
        ("import.maxInFlight", "import:maxInFlight"),  # a dot for the colon
        ("projct", "project"),  # no namespace
        ("alarmemail", "alarmEmail"),
        ("maxInFlight", "import:maxInFlight"),  # the namespace left out
        ("deltas", "import:deltas"),
        (
            "logRetentionDays",
            "import:logRetentionDays, currents:logRetentionDays, bulkUpload:logRetentionDays"
            " or capture:logRetentionDays",
        ),
    ],
)
def test_a_key_like_a_known_one_outside_its_namespace_fails_naming_it(key: str, closest: str) -> None:
    assert refusal({**CONTEXT, key: "10"}) == f"unknown setting {key} (did you mean {closest}?)"


def test_every_misspelt_key_is_named_on_one_line() -> None:
    message = refusal({**CONTEXT, "import:maxInflight": "10", "capture:bufferMB": "1"})
    assert message == (
        "unknown setting capture:bufferMB (did you mean capture:bufferMb?); "
        "unknown setting import:maxInflight (did you mean import:maxInFlight?)"
    )


def test_keys_of_namespaces_the_app_does_not_read_are_left_to_cdk() -> None:
    cdks = {
        "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
        "aws:cdk:bundling-stacks": [],
        "availability-zones:account=123456789012:region=eu-west-1": ["eu-west-1a"],
        "somethingElse": 1,
        "stage": "prod",  # a user's own key, like no setting
        "cli-telemetry": False,
        "acknowledged-issue-numbers": [32775],
    }
    assert AppConfig.from_settings({**CONTEXT, **cdks}) == AppConfig()


# Every number and true/false setting, given a word: the answer is one line naming the key.
TYPED = [k for k, v in CONTEXT.items() if ":" in k and not k.startswith("@") and isinstance(v, bool | int)]


@pytest.mark.parametrize("key", TYPED)
def test_a_value_of_the_wrong_type_is_refused_on_one_line_naming_the_key(key: str) -> None:
    message = refusal({**CONTEXT, key: "lots"})
    assert message.startswith(f"{key} must be ") and message.endswith("not 'lots'") and "\n" not in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("import:batchRule", "per_object"),
        ("import:incomingPrefix", "incoming"),
        ("import:reportsPrefix", "incoming/reports/"),
        ("import:brazeRestEndpoint", "http://rest.iad-01.braze.com"),
        ("import:maxConcurrentRuns", "0"),
        ("currents:generator", "gpt"),
        ("currents:bedrockModelId", "anthropic.claude-v2"),
        ("currents:brazeWriterPrincipal", "arn:aws:iam::123456789012:root"),
        ("bulkUpload:brazeIdColumn", "identity_id"),
        ("capture:errorPrefix", "incoming/errors/"),
        ("capture:bufferMb", "0"),
        ("alarms:email", "oncall"),
    ],
)
def test_a_value_that_cannot_work_is_refused_on_one_line_naming_the_key(key: str, value: str) -> None:
    message = refusal({**CONTEXT, key: value})
    assert key in message and "\n" not in message
