"""The Bedrock adapter of ``ContentGenerator``: the Converse API, validated structured output."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import orjson
from botocore.exceptions import ClientError
from pydantic import ValidationError

from .content import Content, OutputPolicy
from .events import UserActivity
from .generators import ContentGenerator
from .profile import describe


def client_config() -> Any:
    """The Bedrock runtime client's configuration: one attempt per call, bounded timeouts."""
    from botocore.config import Config

    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=ATTEMPT_SECONDS,
    )


RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "ModelTimeoutException",
        "InternalServerException",
        "ModelNotReadyException",  # the model is being loaded: retry after a pause
    }
)
# The client is built with botocore's own retries off (see ``client_config``): this loop is the only
# retry layer, so a throttling storm cannot nest retries beyond the generation's deadline.
ATTEMPT_SECONDS = 30  # the read timeout of one call: an attempt is only started with this much time left
SYSTEM = (
    "You write short, friendly marketing copy for one customer. Answer with one JSON object and nothing "
    'else, with exactly these keys: {"email_title": str, "heading": str, "details": {"intro": str, '
    '"episode_details": str, "cta": str}}. No URLs, no HTML, no template syntax.'
)


def default_prompt() -> str:
    return resources.files(__package__).joinpath("prompt.txt").read_text(encoding="utf-8")


class BedrockGenerator:
    """Asks the configured model (or inference profile) for content; falls back when it cannot."""

    def __init__(
        self,
        client: Any,
        model_id: str,
        *,
        fallback: ContentGenerator,
        policy: OutputPolicy,
        max_tokens: int = 700,
        prompt: str | None = None,
        guardrail: tuple[str, str] | None = None,
        max_attempts: int = 6,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.model_id = model_id
        self._client = client
        self._fallback = fallback
        self._policy = policy
        self._max_tokens = max_tokens
        self._prompt = prompt or default_prompt()
        self._guardrail = guardrail
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._clock = clock
        self.fallbacks = 0
        self.retries = 0
        self.calls = 0
        self.throttles = 0
        self.latencies_ms: list[float] = []  # of Converse calls not yet reported (see ``take_latencies``)

    def generate(self, activity: UserActivity, *, deadline: float | None = None) -> Content:
        request = self._request(activity)
        for malformed_tries in range(2):  # malformed or refused output gets one more try
            if malformed_tries and not self._time_left(deadline):
                break  # no time for another attempt: the offline content instead
            text = self._converse(request, deadline)
            content = _parse(text)
            if content is not None and not self._policy.violations(content):
                return content
            if malformed_tries == 0:
                self.retries += 1
        self.fallbacks += 1
        return self._fallback.generate(activity)

    def _request(self, activity: UserActivity) -> dict[str, Any]:
        prompt = self._prompt.replace("{events}", orjson.dumps(describe(activity.recent())).decode())
        request: dict[str, Any] = {
            "modelId": self.model_id,
            "system": [{"text": SYSTEM}],
            "messages": [{"role": "user", "content": [{"text": prompt}]}],
            "inferenceConfig": {"maxTokens": self._max_tokens, "temperature": 0.7},
        }
        if self._guardrail:
            request["guardrailConfig"] = {
                "guardrailIdentifier": self._guardrail[0],
                "guardrailVersion": self._guardrail[1],
            }
        return request

    def _converse(self, request: dict[str, Any], deadline: float | None) -> str:
        for attempt in range(1, self._max_attempts + 1):
            if not self._time_left(deadline):  # checked before every attempt, the first one too
                raise TimeoutError("no time left for a model call before the deadline")
            try:
                self.calls += 1
                started = self._clock()
                try:
                    response = self._client.converse(**request)
                finally:
                    self.latencies_ms.append((self._clock() - started) * 1000)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ThrottlingException":
                    self.throttles += 1
                if code not in RETRYABLE or attempt == self._max_attempts:
                    raise
                pause = min(20.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
                if deadline is not None and self._clock() + pause + ATTEMPT_SECONDS > deadline:
                    raise  # no time for another attempt inside the claim: the message is retried later
                self.retries += 1
                self._sleep(pause)
                continue
            if response.get("stopReason") == "guardrail_intervened":
                return ""
            parts = response.get("output", {}).get("message", {}).get("content", [])
            return "".join(p.get("text", "") for p in parts if isinstance(p, dict))
        raise AssertionError("unreachable")

    def take_latencies(self) -> list[float]:
        """The Converse calls' latencies since the last take, in milliseconds (then forgotten)."""
        taken, self.latencies_ms = self.latencies_ms, []
        return taken

    def _time_left(self, deadline: float | None) -> bool:
        """Whether one whole attempt (its read timeout) fits before the deadline."""
        return deadline is None or self._clock() + ATTEMPT_SECONDS <= deadline


def _parse(text: str) -> Content | None:
    """The first JSON object in the model's answer, validated against the content model."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return Content.model_validate(orjson.loads(text[start : end + 1]))
    except (orjson.JSONDecodeError, ValidationError):
        return None
