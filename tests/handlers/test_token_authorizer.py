"""The token authorizer through a rotation: new token in, callers move, old token out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

pytestmark = pytest.mark.usefixtures("aws_env")
ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/v1/POST/bulk-upload"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    from token_authorizer import handler as authorizer

    now = [1000.0]
    monkeypatch.setattr(authorizer.time, "monotonic", lambda: now[0])
    authorizer._CACHE.clear()
    with mock_aws():
        secret = boto3.client("secretsmanager").create_secret(Name="api-token", SecretString="old-token")
        monkeypatch.setenv("API_TOKEN_SECRET", secret["ARN"])
        yield now
    authorizer._CACHE.clear()


def effect(token: str) -> str:
    from token_authorizer.handler import handler

    decision: dict[str, Any] = handler({"headers": {"Authorization": f"Bearer {token}"}, "methodArn": ARN}, None)
    return str(decision["policyDocument"]["Statement"][0]["Effect"])


def test_a_rotation_locks_no_caller_out_and_the_old_token_retires(clock: list[float]) -> None:
    sm = boto3.client("secretsmanager")
    assert effect("old-token") == "Allow"  # a warm container with the old token cached
    # Step 1: the new token becomes AWSCURRENT; the old one is AWSPREVIOUS.
    sm.put_secret_value(SecretId="api-token", SecretString="new-token")
    clock[0] += 5
    assert effect("new-token") == "Allow"  # within seconds, not after the container's cache expires
    assert effect("old-token") == "Allow"  # callers not yet moved keep working
    # Step 2: every caller sends the new token; the old one is retired.
    versions = sm.list_secret_version_ids(SecretId="api-token")["Versions"]
    previous = next(v["VersionId"] for v in versions if "AWSPREVIOUS" in v["VersionStages"])
    sm.update_secret_version_stage(SecretId="api-token", VersionStage="AWSPREVIOUS", RemoveFromVersionId=previous)
    clock[0] += 61  # the container's cache (a minute) runs out
    assert effect("old-token") == "Deny" and effect("new-token") == "Allow"


def test_wrong_tokens_re_read_the_secret_at_most_every_few_seconds(
    clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    from token_authorizer import handler as authorizer

    reads = []
    real = authorizer._read
    monkeypatch.setattr(authorizer, "_read", lambda: reads.append(1) or real())
    for _ in range(20):
        assert effect("guess") == "Deny"
    assert len(reads) == 1
    clock[0] += authorizer.REFRESH_ON_MISS_SECONDS
    assert effect("guess") == "Deny" and len(reads) == 2
    assert effect("old-token") == "Allow" and len(reads) == 2
