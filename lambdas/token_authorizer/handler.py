"""REQUEST authorizer: the caller's ``Authorization: Bearer <token>`` must equal the token held in
Secrets Manager. API keys identify callers for the usage plan; this is the credential check."""

from __future__ import annotations

import hmac
import os
import time
from typing import Any

import boto3

_CACHE: dict[str, Any] = {}
CACHE_SECONDS = 300


def _token() -> str:
    if _CACHE.get("until", 0) < time.monotonic():
        secret = boto3.client("secretsmanager").get_secret_value(SecretId=os.environ["API_TOKEN_SECRET"])
        _CACHE.update(token=secret["SecretString"].strip(), until=time.monotonic() + CACHE_SECONDS)
    return str(_CACHE["token"])


def allowed(headers: dict[str, str] | None, token: str) -> bool:
    given = next((v for k, v in (headers or {}).items() if k.lower() == "authorization"), "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and bool(value) and hmac.compare_digest(value.strip().encode(), token.encode())


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    effect = "Allow" if allowed(event.get("headers"), _token()) else "Deny"
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
