"""Currents settings checked at synth: a retired model is refused, Bedrock grants derived for any
model form, the Braze writer role's grants, and one list of default event types."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from currents_personalizer.events import DEFAULT_EVENT_TYPES

from stacks.config import AppConfig, ConfigError, CurrentsConfig, bedrock_base_model
from stacks.constructs.currents_personalizer import bedrock_grants
from stacks.currents_stack import braze_writer_grants

ROOT = Path(__file__).resolve().parents[2]
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.mark.parametrize(
    "model",
    [
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0",
    ],
)
def test_synth_refuses_a_retired_model_and_names_a_replacement(model: str) -> None:
    context = {"currents:bedrockModelId": model}
    with pytest.raises(ConfigError, match=r"end of life.*us\.anthropic\.claude-haiku-4-5-20251001-v1:0"):
        AppConfig.from_context(context.get)


def test_the_default_model_is_a_current_inference_profile() -> None:
    config = CurrentsConfig()
    assert config.bedrock_model_id == f"us.{HAIKU}" and config.marketplace_product_id == "prod-xdkflymybwmvi"
    assert CurrentsConfig(generator="offline", bedrock_model_id="anthropic.claude-v2").generator == "offline"


@pytest.mark.parametrize(
    ("model", "base"),
    [
        (HAIKU, HAIKU),
        (f"us.{HAIKU}", HAIKU),
        (f"jp.{HAIKU}", HAIKU),
        (f"global.{HAIKU}", HAIKU),
        (f"arn:aws:bedrock:ap-northeast-1:123456789012:inference-profile/au.{HAIKU}", HAIKU),
        (f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}", HAIKU),
    ],
)
def test_the_base_model_of_any_form(model: str, base: str) -> None:
    assert bedrock_base_model(model) == base


def test_grants_for_a_foundation_model_name_it_in_this_region() -> None:
    assert bedrock_grants("aws", "us-east-1", "111", HAIKU) == [
        ([f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"], None)
    ]


@pytest.mark.parametrize("prefix", ["us", "eu", "apac", "jp", "au", "global", "ca"])
def test_grants_for_any_profile_prefix_name_the_profile_and_its_model_everywhere_it_routes(prefix: str) -> None:
    profile = f"arn:aws:bedrock:ap-northeast-1:111:inference-profile/{prefix}.{HAIKU}"
    assert bedrock_grants("aws", "ap-northeast-1", "111", f"{prefix}.{HAIKU}") == [
        ([profile], None),
        ([f"arn:aws:bedrock:*::foundation-model/{HAIKU}"], {"StringEquals": {"bedrock:InferenceProfileArn": profile}}),
    ]


def test_grants_for_a_profile_arn_include_the_foundation_model() -> None:
    arn = f"arn:aws:bedrock:eu-west-1:111:inference-profile/eu.{HAIKU}"
    grants = bedrock_grants("aws", "eu-west-1", "111", arn)
    assert grants[0] == ([arn], None)
    assert grants[1][0] == [f"arn:aws:bedrock:*::foundation-model/{HAIKU}"]


def test_grants_for_an_application_profile_allow_models_only_through_it() -> None:
    arn = "arn:aws:bedrock:us-east-1:111:application-inference-profile/abc123"
    grants = bedrock_grants("aws", "us-east-1", "111", arn)
    assert grants == [
        ([arn], None),
        (["arn:aws:bedrock:*::foundation-model/*"], {"StringEquals": {"bedrock:InferenceProfileArn": arn}}),
    ]


def test_the_braze_writer_role_grants_what_brazes_connection_needs() -> None:
    assert braze_writer_grants("arn:aws:s3:::b", "currents/") == [
        (["s3:ListBucket", "s3:GetBucketLocation"], ["arn:aws:s3:::b"]),
        (["s3:PutObject", "s3:GetObject"], ["arn:aws:s3:::b/currents/*"]),
    ]


def test_one_list_of_default_event_types() -> None:
    configured = set(CurrentsConfig().event_types.split(","))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("<!-- currents-event-types -->") : readme.index("<!-- /currents-event-types -->")]
    assert configured == set(DEFAULT_EVENT_TYPES) == set(re.findall(r"`(users\.[A-Za-z.]+)`", section))


def test_settle_window_is_bounded_by_sqs_delays() -> None:
    with pytest.raises(ConfigError, match="settleSeconds"):
        CurrentsConfig(settle_seconds=901)
