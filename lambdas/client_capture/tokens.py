"""Verifying a Cognito access token as API Gateway's own authorizers would, locally: the RS256
signature against the pool's published keys, the issuer (this pool), the app client, that it is an
access token, and that it has not expired. The keys are fetched once per container and again only
when a token names a key not seen yet (Cognito's keys rotate rarely)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHMS = ["RS256"]
TOKEN_USE = "access"  # noqa: S105 - the kind of token the API takes, not a secret


class TokenRejected(Exception):
    """The caller is not authenticated; ``reason`` is for logs, never for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TokenPolicy:
    issuer: str
    client_ids: frozenset[str]


def presented(headers: Mapping[str, Any] | None) -> str:
    """The token in ``Authorization``: ``Bearer <token>``, or the bare token as the capture client
    sends it. Raises :class:`TokenRejected` when there is none."""
    given = next((str(v) for k, v in (headers or {}).items() if k.lower() == "authorization" and v), "").strip()
    scheme, _, rest = given.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else given
    if not token:
        raise TokenRejected("no Authorization header")
    if " " in token or token.count(".") != 2:
        raise TokenRejected("the Authorization header holds no JWT")
    return token


def verify(token: str, policy: TokenPolicy, signing_key: Callable[[str], Any]) -> dict[str, Any]:
    """The token's claims, or :class:`TokenRejected`. ``signing_key(kid)`` returns the public key."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRejected("the token is not a JWT") from None
    if header.get("alg") not in ALGORITHMS:
        raise TokenRejected(f"algorithm {header.get('alg')!r} is not accepted")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise TokenRejected("the token names no key")
    try:
        key = signing_key(kid)
    except jwt.PyJWKClientConnectionError:
        raise  # the keys could not be fetched: an error (500, the client retries), not a refusal (401)
    except jwt.PyJWKClientError:
        raise TokenRejected("the token's key is not one of the pool's keys") from None
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            issuer=policy.issuer,
            options={"require": ["exp", "iss", "sub", "token_use"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRejected("the token has expired") from None
    except jwt.InvalidIssuerError:
        raise TokenRejected("the token is from another issuer") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected("the token's signature does not verify") from None
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"the token is not valid ({type(exc).__name__})") from None
    if claims.get("token_use") != TOKEN_USE:
        raise TokenRejected(f"a {claims.get('token_use')!r} token where an {TOKEN_USE!r} token is required")
    if claims.get("client_id") not in policy.client_ids:  # access tokens name their app client here
        raise TokenRejected("the token was issued to another app client")
    return claims
