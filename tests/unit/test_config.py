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
        ("projectName", "project"),
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
        ("currents:brazeWriterPrincipal", "nobody"),
        ("currents:bedrockModelId", "claude"),
        ("currents:bedrockModelId", "anthropic claude haiku"),
        ("import:brazeRestEndpoint", "https://"),
        ("import:brazeRestEndpoint", "https://rest.iad-01.braze.com/users/track"),
        ("bulkUpload:brazeIdColumn", "identity_id"),
        ("capture:errorPrefix", "incoming/errors/"),
        ("capture:bufferMb", "0"),
        ("alarms:email", "oncall"),
    ],
)
def test_a_value_that_cannot_work_is_refused_on_one_line_naming_the_key(key: str, value: str) -> None:
    message = refusal({**CONTEXT, key: value})
    assert key in message and "\n" not in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("import:maxInFlight", "0", "must be between 1 and 256, not 0"),
        ("import:maxInFlight", "-5", "must be between 1 and 256, not -5"),
        ("import:maxInFlight", "300", "must be between 1 and 256, not 300"),
        ("import:maxAttempts", "0", "must be between 1 and 20, not 0"),
        ("import:maxHops", "0", "must be at least 1, not 0"),
        ("import:memoryMb", "99999", "must be between 128 and 10240 (Lambda's memory sizes), not 99999"),
        ("import:outputRetentionDays", "0", "must be at least 1, not 0"),
        ("import:workspaceRequestsPerSecond", "0", "must be above 0 and at most 100000, not 0"),
        ("bulkUpload:copierMemoryMb", "50", "must be between 128 and 10240 (Lambda's memory sizes), not 50"),
        ("currents:apiRateLimit", "-1", "must be at least 1, not -1"),
        ("currents:bedrockMaxTokens", "0", "must be between 64 and 4096, not 0"),
        ("currents:cooldownSeconds", "-1", "must be at least 0, not -1"),
        ("currents:contentTtlDays", "0", "must be between 1 and 3650, not 0"),
    ],
)
def test_a_number_out_of_bounds_is_refused_naming_the_key_and_the_bounds(key: str, value: str, expected: str) -> None:
    assert refusal({**CONTEXT, key: value}) == f"{key} {expected}"


NUMBERS = [k for k, v in CONTEXT.items() if ":" in k and isinstance(v, int) and not isinstance(v, bool)]


@pytest.mark.parametrize("key", NUMBERS)
def test_every_number_setting_has_bounds(key: str) -> None:
    message = refusal({**CONTEXT, key: "-1000000000"})
    assert message.startswith(f"{key} must be ") and message.endswith(", not -1000000000") and "\n" not in message


@pytest.mark.parametrize("key", [k for k in NUMBERS if k.endswith(("apiRateLimit", "apiBurstLimit"))])
def test_api_throttling_refuses_zero(key: str) -> None:
    assert refusal({**CONTEXT, key: "0"}) == f"{key} must be at least 1, not 0"


LOG_RETENTIONS = [k for k in CONTEXT if k.endswith(":logRetentionDays")]


@pytest.mark.parametrize("key", LOG_RETENTIONS)
def test_a_log_retention_cloudwatch_does_not_offer_is_refused_naming_those_it_does(key: str) -> None:
    assert refusal({**CONTEXT, key: "8"}) == (
        f"{key} must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, "
        "2557, 2922, 3288, 3653 (CloudWatch Logs' retention periods), not 8"
    )


def test_every_log_retention_cloudwatch_offers_is_accepted_and_built_as_that_many_days() -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_logs as logs
    from aws_cdk.assertions import Template

    from stacks.config import LOG_RETENTION_DAYS
    from stacks.constructs.braze_importer import retention_days

    assert AppConfig.from_settings({**CONTEXT, **dict.fromkeys(LOG_RETENTIONS, 3653)})
    stack = cdk.Stack(cdk.App())
    for days in LOG_RETENTION_DAYS:
        logs.LogGroup(stack, f"Keep{days}", retention=retention_days(days))
    groups = Template.from_stack(stack).find_resources("AWS::Logs::LogGroup").values()
    assert sorted(group["Properties"]["RetentionInDays"] for group in groups) == list(LOG_RETENTION_DAYS)


@pytest.mark.parametrize("project", ["bad_name!", "1Pipelines", "-x", "Braze Pipelines", "P" * 111])
def test_a_project_that_cannot_prefix_a_stack_name_is_refused(project: str) -> None:
    message = refusal({**CONTEXT, "project": project})
    assert message.startswith("project must be ") and message.endswith(f"not {project!r}") and "\n" not in message


@pytest.mark.parametrize("project", ["BrazePipelines", "b", "Braze-Pipelines-2", "P" * 110])
def test_a_project_of_letters_digits_and_hyphens_is_accepted(project: str) -> None:
    assert AppConfig.from_settings({**CONTEXT, "project": project}).project == project


def test_cdk_json_holds_every_setting_with_its_default() -> None:
    read: set[str] = set()
    AppConfig.from_context(lambda key: read.add(key))
    assert read - {"alarmEmail"} <= set(CONTEXT)  # alarmEmail: the older key, read when alarms:email is empty
    assert AppConfig.from_settings(CONTEXT) == AppConfig()


@pytest.mark.parametrize("value", [1.5, True, "1.5", float("nan")])
def test_a_whole_number_setting_is_not_truncated_from_a_fraction_or_read_from_a_boolean(value: object) -> None:
    message = refusal({**CONTEXT, "import:maxInFlight": value})
    assert message == f"import:maxInFlight must be a whole number, not {value!r}"


PREFIXES = [k for k in CONTEXT if k.endswith(("prefix", "Prefix"))]


@pytest.mark.parametrize("value", ["in coming/", "incoming", "/incoming/", "a//", "a+b/", "a*/"])
@pytest.mark.parametrize("key", PREFIXES)
def test_a_prefix_s3_or_iam_would_read_otherwise_is_refused_naming_the_key(key: str, value: str) -> None:
    assert refusal({**CONTEXT, key: value}) == (
        f"{key} must be relative, end with '/' and hold only letters, digits and ! - _ . ' ( ) "
        f"(S3's safe characters), not {value!r}"
    )


@pytest.mark.parametrize("value", ["a!(c)/", "x'y/", "dt.2024_a-b/sub/"])
def test_a_prefix_of_safe_characters_is_accepted(value: str) -> None:
    assert AppConfig.from_settings({**CONTEXT, "currents:prefix": value}).currents.prefix == value


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ({"currents:guardrailId": "arn:aws:bedrock:us-east-1:123456789012:guardrail/abc"}, "currents:guardrailId"),
        ({"currents:guardrailId": "abc", "currents:guardrailVersion": ""}, "currents:guardrailVersion"),
        ({"currents:guardrailVersion": "v1"}, "currents:guardrailVersion"),
    ],
)
def test_a_guardrail_bedrock_would_refuse_is_refused_naming_the_key(setting: dict[str, str], expected: str) -> None:
    message = refusal({**CONTEXT, **setting})
    assert message.startswith(f"{expected} must be ") and "\n" not in message


def test_a_guardrail_by_id_and_version_is_accepted() -> None:
    currents = AppConfig.from_settings({**CONTEXT, "currents:guardrailId": "gr0abc1", "currents:guardrailVersion": "3"})
    assert (currents.currents.guardrail_id, currents.currents.guardrail_version) == ("gr0abc1", "3")


@pytest.mark.parametrize(
    "model",
    [
        "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "global.anthropic.claude-haiku-4-5-20251001-v1:0",
        "amazon.nova-lite-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
        "arn:aws:bedrock:eu-west-1::foundation-model/amazon.nova-lite-v1:0",
    ],
)
def test_every_shape_of_bedrock_model_id_is_taken(model: str) -> None:
    assert AppConfig.from_settings({**CONTEXT, "currents:bedrockModelId": model}).currents.bedrock_model_id == model


def test_brazes_writer_principal_is_taken_as_an_iam_arn() -> None:
    settings = {
        "currents:brazeWriterPrincipal": "arn:aws:iam::123456789012:user/braze-s3",
        "currents:brazeExternalId": "x",
    }
    assert AppConfig.from_settings({**CONTEXT, **settings}).currents.braze_writer_principal.endswith("user/braze-s3")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("alarms:email", ["ops@example.com"]),
        ("alarms:email", True),
        ("alarmEmail", ["ops@example.com"]),
        ("currents:eventTypes", ["users.behaviors.CustomEvent", "users.behaviors.Purchase"]),
        ("bulkUpload:allowedUrlHosts", ["a.example.com"]),
        ("capture:forwardEventTypes", True),
        ("currents:bedrockModelId", "arn:aws:bedrock:us-east-1:123:foo/bar"),
    ],
)
def test_a_json_value_of_the_wrong_shape_for_a_text_setting_is_refused_naming_it(key: str, value: object) -> None:
    message = refusal({**CONTEXT, key: value})
    assert ("alarms:email" if key == "alarmEmail" else key) in message and "\n" not in message
