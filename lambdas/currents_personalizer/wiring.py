"""Adapters built once per container, shared by the Currents handlers."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from .bedrock import BedrockGenerator, client_config
from .generators import ContentGenerator, OfflineGenerator
from .settings import get_settings
from .store import ContentTable

POOL = 40  # HTTP connections per client: the merge runs 32 writes and 8 batch reads at once


@cache
def content_table() -> ContentTable:
    return ContentTable(
        boto3.client("dynamodb", config=Config(max_pool_connections=POOL)), get_settings().content_table
    )


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


def sqs_client() -> Any:
    """Generation messages go out 16 batches at a time: a pool that holds them."""
    return boto3.client("sqs", config=Config(max_pool_connections=POOL))
