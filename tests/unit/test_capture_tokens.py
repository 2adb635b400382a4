"""The capture authorizer's token checks, with keys made here: a token is accepted only when it is
this pool's, this client's, an access token, unexpired, and signed by a key the pool publishes."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from client_capture.tokens import TokenPolicy, TokenRejected, presented, verify
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool"
CLIENT = "client-1"
POOL_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
POLICY = TokenPolicy(issuer=ISSUER, client_ids=frozenset({CLIENT}))


def signing_key(kid: str) -> Any:
    if kid != "pool-key":
        raise jwt.PyJWKClientError(f'Unable to find a signing key that matches: "{kid}"')
    return POOL_KEY.public_key()


def token(key: Any = POOL_KEY, kid: str = "pool-key", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER, "sub": "user-sub", "client_id": CLIENT, "token_use": "access", "username": "ana",
        "iat": now, "exp": now + 3600,
    }  # fmt: skip
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def reason(given: str) -> str:
    with pytest.raises(TokenRejected) as caught:
        verify(given, POLICY, signing_key)
    return caught.value.reason


def test_a_good_access_token_gives_its_claims() -> None:
    assert verify(token(), POLICY, signing_key)["username"] == "ana"


def test_a_signature_by_another_key_under_the_pools_key_id_is_refused() -> None:
    assert "signature" in reason(token(key=OTHER_KEY))


def test_a_key_the_pool_does_not_publish_is_refused() -> None:
    assert "not one of the pool's keys" in reason(token(key=OTHER_KEY, kid="attacker-key"))


def test_a_token_of_another_pool_is_refused() -> None:
    assert "another issuer" in reason(token(iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"))


def test_a_token_of_another_app_client_is_refused() -> None:
    assert "another app client" in reason(token(client_id="client-2"))


def test_an_expired_token_is_refused() -> None:
    now = int(time.time())
    assert "expired" in reason(token(iat=now - 7200, exp=now - 1))


def test_an_id_token_is_refused_where_an_access_token_is_required() -> None:
    # An id token names its client in aud and carries the user's attributes: still not an access token.
    given = token(token_use="id", client_id=None, aud=CLIENT)
    assert "'id' token where an 'access' token is required" in reason(given)


def test_a_token_without_expiry_or_token_use_is_refused() -> None:
    assert "not valid" in reason(token(exp=None))
    assert "not valid" in reason(token(token_use=None))


def test_unsigned_and_symmetric_tokens_are_refused() -> None:
    unsigned = jwt.encode({"iss": ISSUER}, None, algorithm="none", headers={"kid": "pool-key"})
    assert "algorithm" in reason(unsigned)
    hmac_token = jwt.encode({"iss": ISSUER}, "k" * 32, algorithm="HS256", headers={"kid": "pool-key"})
    assert "algorithm" in reason(hmac_token)


def test_garbage_is_refused() -> None:
    assert "not a JWT" in reason("a.b.c")


@pytest.mark.parametrize("header", ["Bearer {t}", "bearer {t}", "{t}", "  Bearer   {t}  "])
def test_the_header_may_carry_the_token_bare_or_as_bearer(header: str) -> None:
    given = token()
    assert presented({"authorization": header.format(t=given)}) == given


@pytest.mark.parametrize("headers", [None, {}, {"Authorization": ""}, {"Authorization": "Bearer "}])
def test_a_missing_header_is_refused(headers: dict[str, str] | None) -> None:
    with pytest.raises(TokenRejected, match="no Authorization"):
        presented(headers)


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer not-a-jwt", "Bearer a.b.c d"])
def test_a_header_without_a_jwt_is_refused(value: str) -> None:
    with pytest.raises(TokenRejected, match="no JWT"):
        presented({"Authorization": value})


def test_keys_that_cannot_be_fetched_are_an_error_not_a_refusal() -> None:
    def unreachable(kid: str) -> Any:
        raise jwt.PyJWKClientConnectionError("Fail to fetch data from the url, err: timed out")

    with pytest.raises(jwt.PyJWKClientConnectionError):
        verify(token(), POLICY, unreachable)
