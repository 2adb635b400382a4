"""REQUEST authorizer: the caller's ``Authorization: Bearer <token>`` must equal a token held in
Secrets Manager. API keys identify callers for the usage plan; this is the credential check.

Rotation-safe: both the secret's AWSCURRENT and AWSPREVIOUS versions are accepted, so callers can
move to a new token one by one. The tokens are cached per container for a minute; a token that
matches neither is checked against a fresh read first (at most every few seconds), so a container
never refuses a new token for long after ``put-secret-value``.
"""

from __future__ import annotations

import hmac
import os
import time
from typing import Any

import boto3
from botocore.exceptions import ClientError
from pipeline_common.tracing import annotate, tracer

_CACHE: dict[str, Any] = {}
CACHE_SECONDS = 60
REFRESH_ON_MISS_SECONDS = 5  # how often a wrong token may make the container re-read the secret
STAGES = ("AWSCURRENT", "AWSPREVIOUS")


def _read() -> tuple[str, ...]:
    client = boto3.client("secretsmanager")
    tokens = []
    for stage in STAGES:
        try:
            secret = client.get_secret_value(SecretId=os.environ["API_TOKEN_SECRET"], VersionStage=stage)
        except ClientError as exc:
            if stage != "AWSCURRENT" and exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                continue  # no previous version yet (never rotated)
            raise
        token = str(secret.get("SecretString") or "").strip()
        if token:
            tokens.append(token)
    return tuple(dict.fromkeys(tokens))


def _tokens(*, fresh: bool = False) -> tuple[str, ...]:
    now = time.monotonic()
    stale = _CACHE.get("until", 0) < now
    may_refresh = fresh and _CACHE.get("read_at", -REFRESH_ON_MISS_SECONDS) + REFRESH_ON_MISS_SECONDS <= now
    if stale or may_refresh or "tokens" not in _CACHE:
        _CACHE.update(tokens=_read(), until=now + CACHE_SECONDS, read_at=now)
    return tuple(_CACHE["tokens"])


def presented(headers: dict[str, str] | None) -> str | None:
    given = next((v for k, v in (headers or {}).items() if k.lower() == "authorization"), "")
    scheme, _, value = given.partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def matches(token: str, accepted: tuple[str, ...]) -> bool:
    # Compare with every accepted token (no short cut), in constant time each.
    return any([hmac.compare_digest(token.encode(), t.encode()) for t in accepted])


@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    given = presented(event.get("headers"))
    ok = given is not None and (matches(given, _tokens()) or matches(given, _tokens(fresh=True)))
    effect = "Allow" if ok else "Deny"
    annotate("decision", effect)
    # Scoped to the stage's methods, so the cached decision holds for each route of this API.
    arn = event["methodArn"].split("/", 2)
    resource = f"{arn[0]}/{arn[1]}/*" if len(arn) > 2 else event["methodArn"]
    return {
        "principalId": "caller",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }
