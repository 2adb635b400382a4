"""Settings of the Currents functions, read once from the environment, validated on cold start."""

from __future__ import annotations

import os
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .content import OutputPolicy
from .events import DEFAULT_EVENT_TYPES, DEFAULT_PASSIVE_TYPES
from .personalize import Settings as PersonalizeSettings


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    content_table: str = Field(alias="CONTENT_TABLE")
    queue_url: str | None = Field(None, alias="GENERATION_QUEUE_URL")
    generator: Literal["bedrock", "offline"] = Field("offline", alias="CONTENT_GENERATOR")
    model_id: str | None = Field(None, alias="BEDROCK_MODEL_ID")
    max_tokens: int = Field(700, ge=64, le=4096, alias="BEDROCK_MAX_TOKENS")
    guardrail_id: str | None = Field(None, alias="BEDROCK_GUARDRAIL_ID")
    guardrail_version: str = Field("DRAFT", alias="BEDROCK_GUARDRAIL_VERSION")
    prompt_template: str | None = Field(None, alias="BEDROCK_PROMPT_TEMPLATE")  # overrides prompt.txt; {events}
    event_types: str = Field(",".join(sorted(DEFAULT_EVENT_TYPES)), alias="EVENT_TYPES")
    passive_event_types: str = Field(",".join(sorted(DEFAULT_PASSIVE_TYPES)), alias="PASSIVE_EVENT_TYPES")
    cooldown_seconds: int = Field(3600, ge=0, alias="COOLDOWN_SECONDS")
    settle_seconds: int = Field(300, ge=0, le=900, alias="SETTLE_SECONDS")  # SQS delays at most 15 minutes
    ttl_days: int = Field(30, ge=1, le=3650, alias="CONTENT_TTL_DAYS")
    hourly_cap: int = Field(10_000, ge=0, alias="HOURLY_GENERATION_CAP")
    allow_urls: bool = Field(False, alias="CONTENT_ALLOW_URLS")
    allow_html: bool = Field(False, alias="CONTENT_ALLOW_HTML")
    allow_liquid: bool = Field(False, alias="CONTENT_ALLOW_LIQUID")
    defaults_enabled: bool = Field(True, alias="CONTENT_DEFAULTS")

    def personalize(self) -> PersonalizeSettings:
        return PersonalizeSettings(
            event_types=_types(self.event_types),
            passive_types=_types(self.passive_event_types),
            cooldown_seconds=self.cooldown_seconds,
            settle_seconds=self.settle_seconds,
            ttl_seconds=self.ttl_days * 24 * 3600,
        )

    def policy(self) -> OutputPolicy:
        return OutputPolicy(allow_urls=self.allow_urls, allow_html=self.allow_html, allow_liquid=self.allow_liquid)


def _types(listed: str) -> frozenset[str]:
    return frozenset(t.strip() for t in listed.split(",") if t.strip())


class SettingsError(RuntimeError):
    pass


@cache
def get_settings() -> Settings:
    try:
        settings = Settings.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
        raise SettingsError(f"invalid Currents configuration: {problems}") from None
    if settings.generator == "bedrock" and not settings.model_id:
        raise SettingsError(
            "invalid Currents configuration: BEDROCK_MODEL_ID is required with CONTENT_GENERATOR=bedrock"
        )
    return settings
