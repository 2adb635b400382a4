"""Settings of the capture functions, read once from the environment, validated on cold start."""

from __future__ import annotations

import os
from functools import cache
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .tokens import TokenPolicy

T = TypeVar("T", bound=BaseModel)


class SettingsError(RuntimeError):
    pass


class AuthorizerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    region: str = Field(alias="AWS_REGION")
    user_pool_id: str = Field(min_length=1, alias="USER_POOL_ID")
    app_client_ids: str = Field(min_length=1, alias="APP_CLIENT_IDS")  # comma-separated
    external_id_attribute: str = Field("custom:external_id", alias="EXTERNAL_ID_ATTRIBUTE")
    jwks_url: str = Field("", alias="JWKS_URL")  # empty: the pool's own, derived from the issuer
    external_id_cache_seconds: int = Field(300, ge=0, alias="EXTERNAL_ID_CACHE_SECONDS")

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    @property
    def keys_url(self) -> str:
        return self.jwks_url or f"{self.issuer}/.well-known/jwks.json"

    def policy(self) -> TokenPolicy:
        clients = frozenset(c.strip() for c in self.app_client_ids.split(",") if c.strip())
        return TokenPolicy(issuer=self.issuer, client_ids=clients)


class ApiSettings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    event_bus_name: str = Field(min_length=1, alias="EVENT_BUS_NAME")
    cors_origins: str = Field("", alias="CORS_ORIGINS")  # comma-separated; "*": any; empty: no CORS headers

    def allowed_origin(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for a request from ``origin``, if any."""
        allowed = {o.strip() for o in self.cors_origins.split(",") if o.strip()}
        if "*" in allowed:
            return "*"
        return origin if origin and origin in allowed else None


class ConfirmationSettings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    external_id_attribute: str = Field("custom:external_id", alias="EXTERNAL_ID_ATTRIBUTE")


def _load(kind: type[T]) -> T:
    try:
        return kind.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
        raise SettingsError(f"invalid client-capture configuration: {problems}") from None


@cache
def authorizer_settings() -> AuthorizerSettings:
    return _load(AuthorizerSettings)


@cache
def api_settings() -> ApiSettings:
    return _load(ApiSettings)


@cache
def confirmation_settings() -> ConfirmationSettings:
    return _load(ConfirmationSettings)
