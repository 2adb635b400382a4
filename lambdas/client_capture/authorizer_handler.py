"""REQUEST authorizer of ``POST /event``: verifies the caller's Cognito access token and hands the
user's Braze external id to the API function in the authorizer context.

401 (raise ``Unauthorized``) for a missing, malformed, forged, expired or foreign token; 403 (Deny)
for a valid token whose user has no external id, is disabled, or is not the token's user any more
(the username was reused after the token's user was deleted: the ``sub`` differs). API Gateway
caches each decision per token, so Cognito is asked for a user's external id at most once per token
and cache period, not per request; the container also remembers external ids for a few minutes. A
token carrying the attribute as a claim (a pre-token-generation trigger can add it) needs no lookup.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

import boto3
import jwt
from aws_lambda_powertools import Logger
from pipeline_common.tracing import annotate, tracer

from .settings import authorizer_settings
from .tokens import TokenRejected, presented, verify

logger = Logger(service="client-capture-authorizer")
_EXTERNAL_IDS: dict[tuple[str, str], tuple[float, str | None]] = {}


@cache
def _keys() -> jwt.PyJWKClient:
    return jwt.PyJWKClient(authorizer_settings().keys_url, cache_jwk_set=True, lifespan=3600, timeout=5)


@cache
def _cognito() -> Any:
    return boto3.client("cognito-idp")


def _signing_key(kid: str) -> Any:
    return _keys().get_signing_key(kid).key


def external_id_of(username: str, sub: str) -> str | None:
    """The external id of the pool's user ``username`` if that user is the token's (same ``sub``:
    a username can be reused after its user is deleted) and is enabled; else None."""
    settings = authorizer_settings()
    now = time.monotonic()
    cached = _EXTERNAL_IDS.get((username, sub))
    if cached and cached[0] > now:
        return cached[1]
    try:
        user = _cognito().admin_get_user(UserPoolId=settings.user_pool_id, Username=username)
    except _cognito().exceptions.UserNotFoundException:
        value = None
    else:
        attributes = {a["Name"]: a["Value"] for a in user.get("UserAttributes", [])}
        if attributes.get("sub") != sub:
            logger.info("the token's user no longer exists under its username")
            value = None
        elif user.get("Enabled") is False:
            logger.info("the token's user is disabled")
            value = None
        else:
            value = attributes.get(settings.external_id_attribute) or None
    _EXTERNAL_IDS[(username, sub)] = (now + settings.external_id_cache_seconds, value)
    return value


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # the answer holds the user's external id
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = authorizer_settings()
    try:
        claims = verify(presented(event.get("headers")), settings.policy(), _signing_key)
    except TokenRejected as exc:
        logger.info("token refused", extra={"reason": exc.reason})
        annotate("decision", "Unauthorized")
        raise Exception("Unauthorized") from None  # API Gateway answers 401 for exactly this message
    username = str(claims.get("username") or claims["sub"])
    external_id = claims.get(settings.external_id_attribute) or external_id_of(username, str(claims["sub"]))
    # Scoped to the stage's methods, so the cached decision holds for each route of this API.
    arn = event["methodArn"].split("/", 2)
    resource = f"{arn[0]}/{arn[1]}/*" if len(arn) > 2 else event["methodArn"]
    annotate("decision", "Allow" if external_id else "Deny")
    if not external_id:
        logger.info("user has no external id")  # no identifier in logs
        return _policy(claims["sub"], "Deny", resource, {})
    return _policy(claims["sub"], "Allow", resource, {"external_id": str(external_id)})


def _policy(principal: str, effect: str, resource: str, context: dict[str, str]) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": context,
    }
