"""The Bedrock adapter against botocore's Stubber: success, throttling, malformed output, policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from currents_personalizer.bedrock import ATTEMPT_SECONDS, BedrockGenerator, client_config
from currents_personalizer.content import OutputPolicy
from currents_personalizer.events import group_by_user
from currents_personalizer.generators import OfflineGenerator

from sandbox import currents_sample

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
GOOD = {
    "email_title": "Your next watch",
    "heading": "More mysteries await",
    "details": {"intro": "You loved Night Shift.", "episode_details": "Ocean Lab is similar.", "cta": "Watch now."},
}


def reply(text: str, stop: str = "end_turn") -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop,
        "usage": {"inputTokens": 10, "outputTokens": 20, "totalTokens": 30},
        "metrics": {"latencyMs": 100},
    }


@pytest.fixture
def client() -> Iterator[Any]:
    bedrock = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(bedrock) as stub:
        bedrock.stub = stub
        yield bedrock
        stub.assert_no_pending_responses()


@pytest.fixture
def activity() -> Any:
    users, _ = group_by_user(
        currents_sample.records("users.behaviors.CustomEvent", 1, 5), "users.behaviors.CustomEvent"
    )
    return next(iter(users.values()))


def generator(client: Any, **kw: Any) -> BedrockGenerator:
    return BedrockGenerator(
        client, MODEL, fallback=OfflineGenerator(), policy=OutputPolicy(), sleep=lambda s: None, **kw
    )


def expected(max_tokens: int = 700) -> dict[str, Any]:
    return {
        "modelId": MODEL,
        "system": ANY,
        "messages": ANY,
        "inferenceConfig": {"maxTokens": max_tokens, "temperature": 0.7},
    }


def test_valid_answer_becomes_content_and_max_tokens_is_always_set(client: Any, activity: Any) -> None:
    client.stub.add_response("converse", reply("Sure!\n" + orjson.dumps(GOOD).decode()), expected(321))
    content = generator(client, max_tokens=321).generate(activity)
    assert content.heading == "More mysteries await"


def test_throttling_is_retried_with_backoff(client: Any, activity: Any) -> None:
    client.stub.add_client_error("converse", "ThrottlingException", http_status_code=429)
    client.stub.add_client_error("converse", "ModelTimeoutException", http_status_code=408)
    client.stub.add_response("converse", reply(orjson.dumps(GOOD).decode()), expected())
    gen = generator(client)
    assert gen.generate(activity).email_title == "Your next watch"
    assert gen.retries == 2 and gen.fallbacks == 0


def test_model_not_ready_is_retried(client: Any, activity: Any) -> None:
    client.stub.add_client_error("converse", "ModelNotReadyException", http_status_code=429)
    client.stub.add_response("converse", reply(orjson.dumps(GOOD).decode()), expected())
    gen = generator(client)
    assert gen.generate(activity).heading == "More mysteries await" and gen.retries == 1


def test_retries_stop_at_the_deadline(client: Any, activity: Any) -> None:
    """One retry layer, bounded by the generation's deadline (the claim, the function's time)."""
    for _ in range(2):
        client.stub.add_client_error("converse", "ThrottlingException", http_status_code=429)
    now = [1000.0]
    gen = BedrockGenerator(
        client, MODEL, fallback=OfflineGenerator(), policy=OutputPolicy(),
        sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0],
    )  # fmt: skip
    with pytest.raises(ClientError, match="Throttling"):
        gen.generate(activity, deadline=1000.0 + ATTEMPT_SECONDS + 0.6)
    assert gen.calls == 2 and now[0] < 1000.0 + ATTEMPT_SECONDS


def test_botocore_retries_are_off_so_ours_is_the_only_layer() -> None:
    config = client_config()
    assert config.retries["total_max_attempts"] == 1
    real = boto3.client("bedrock-runtime", region_name="us-east-1", config=config)
    assert real.meta.config.retries["total_max_attempts"] == 1


def test_the_model_reads_customer_terms_not_campaign_names(client: Any) -> None:
    records = [
        {"id": "o", "user_id": "u", "time": 1_700_000_000, "campaign_name": "Q4 winback canvas"},
        {"id": "p", "user_id": "u", "time": 1_700_000_100, "product_id": "Ocean Lab season pass"},
    ]
    users, _ = group_by_user(records[:1], "users.messages.email.Open")
    more, _ = group_by_user(records[1:], "users.behaviors.Purchase")
    activity = users["u"]
    activity.add(next(iter(more["u"].events)), 20)
    sent: list[Any] = []
    client.converse = lambda **request: sent.append(request) or reply(orjson.dumps(GOOD).decode())
    generator(client).generate(activity)
    prompt = sent[0]["messages"][0]["content"][0]["text"]
    assert "winback" not in prompt and "opened an email from us" in prompt and "Ocean Lab season pass" in prompt
    assert '"bought"' in prompt


def test_malformed_output_gets_one_retry_then_the_fallback(client: Any, activity: Any) -> None:
    client.stub.add_response("converse", reply("I cannot do JSON today"), expected())
    client.stub.add_response("converse", reply('{"email_title": "only this"}'), expected())
    gen = generator(client)
    content = gen.generate(activity)
    assert content == OfflineGenerator().generate(activity) and gen.fallbacks == 1


def test_policy_violations_are_not_published(client: Any, activity: Any) -> None:
    bad = {**GOOD, "heading": "Click https://win.example.com"}
    client.stub.add_response("converse", reply(orjson.dumps(bad).decode()), expected())
    client.stub.add_response("converse", reply(orjson.dumps(GOOD).decode()), expected())
    assert generator(client).generate(activity).heading == "More mysteries await"


def test_guardrail_is_applied_and_an_intervention_falls_back(client: Any, activity: Any) -> None:
    params = {**expected(), "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "2"}}
    client.stub.add_response("converse", reply("blocked", stop="guardrail_intervened"), params)
    client.stub.add_response("converse", reply("blocked", stop="guardrail_intervened"), params)
    gen = generator(client, guardrail=("gr-1", "2"))
    assert gen.generate(activity) == OfflineGenerator().generate(activity)


def test_other_errors_are_not_swallowed(client: Any, activity: Any) -> None:
    client.stub.add_client_error("converse", "AccessDeniedException", http_status_code=403)
    with pytest.raises(Exception, match="AccessDenied"):
        generator(client).generate(activity)


def test_the_retry_after_malformed_output_respects_the_deadline(client: Any, activity: Any) -> None:
    now = [1000.0]

    def slow_reply(**request: Any) -> dict[str, Any]:
        now[0] += 20.0  # the first answer took most of the time left
        return reply("I cannot do JSON today")

    client.converse = slow_reply
    gen = BedrockGenerator(
        client, MODEL, fallback=OfflineGenerator(), policy=OutputPolicy(), sleep=lambda s: None, clock=lambda: now[0]
    )
    content = gen.generate(activity, deadline=1000.0 + ATTEMPT_SECONDS + 10)
    assert gen.calls == 1 and content == OfflineGenerator().generate(activity) and gen.fallbacks == 1


def test_no_call_starts_without_an_attempts_time_left(client: Any, activity: Any) -> None:
    gen = BedrockGenerator(
        client, MODEL, fallback=OfflineGenerator(), policy=OutputPolicy(), sleep=lambda s: None, clock=lambda: 1000.0
    )
    with pytest.raises(TimeoutError):
        gen.generate(activity, deadline=1000.0 + ATTEMPT_SECONDS - 1)
    assert gen.calls == 0
