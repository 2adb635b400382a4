"""Adapters built once per container, shared by the Currents handlers."""

from __future__ import annotations

from functools import cache

import boto3

from .bedrock import BedrockGenerator, client_config
from .generators import ContentGenerator, OfflineGenerator
from .settings import get_settings
from .store import ContentTable


@cache
def content_table() -> ContentTable:
    return ContentTable(boto3.client("dynamodb"), get_settings().content_table)


@cache
def content_generator() -> ContentGenerator:
    settings = get_settings()
    if settings.generator == "offline" or not settings.model_id:
        return OfflineGenerator()
    guardrail = (settings.guardrail_id, settings.guardrail_version) if settings.guardrail_id else None
    return BedrockGenerator(
        boto3.client("bedrock-runtime", config=client_config()),
        settings.model_id,
        fallback=OfflineGenerator(),
        policy=settings.policy(),
        max_tokens=settings.max_tokens,
        prompt=settings.prompt_template,
        guardrail=guardrail,
    )
