"""The CI360 bulk-connector webhook: what it must carry, where its file may go, where from.

Errors name the field and the rule, never the value: the values are pre-signed URLs.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_NAME = 512
MAX_DEPTH = 6


class PresignedUrls(BaseModel):
    model_config = ConfigDict(extra="ignore")

    dataFile: str = Field(min_length=1, max_length=8192)
    metadataFile: str | None = Field(None, min_length=1, max_length=8192)


class SendParameters(BaseModel):
    model_config = ConfigDict(extra="allow")  # other send parameters are kept with the job

    s3_filename: str = Field(min_length=1, max_length=MAX_NAME)


class Webhook(BaseModel):
    model_config = ConfigDict(extra="allow")

    presignedUrls: PresignedUrls
    sendParameters: SendParameters


class BadRequest(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def parse(body: Any) -> Webhook:
    if not isinstance(body, dict):
        raise BadRequest("body", "must be a JSON object")
    try:
        return Webhook.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        raise BadRequest(".".join(str(p) for p in first["loc"]), first["msg"]) from None


def object_key(prefix: str, s3_filename: str) -> str:
    """``s3_filename`` under the fixed prefix: relative, no traversal, plain characters only."""
    name = s3_filename.strip()
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise BadRequest("sendParameters.s3_filename", "must be a relative name")
    parts = name.split("/")
    if len(parts) > MAX_DEPTH:
        raise BadRequest("sendParameters.s3_filename", f"may have at most {MAX_DEPTH} folder levels")
    for part in parts:
        if part in ("", ".", ".."):
            raise BadRequest("sendParameters.s3_filename", "must not contain empty, '.' or '..' path parts")
        if not _COMPONENT.match(part):
            raise BadRequest(
                "sendParameters.s3_filename",
                "may use letters, digits, '.', '_', '-' and '/' between folders, and not start with '.'",
            )
    return prefix + name


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """Which download URLs the copier may fetch: schemes, and host patterns (``*.s3.amazonaws.com``;
    ``host:port`` for a port other than the scheme's). An address in a private, loopback or
    link-local range is refused unless a pattern names that exact host."""

    schemes: tuple[str, ...] = ("https",)
    hosts: tuple[str, ...] = (
        "s3.amazonaws.com",
        "*.s3.amazonaws.com",
        "s3.*.amazonaws.com",
        "*.s3.*.amazonaws.com",
        "s3-*.amazonaws.com",
        "*.s3-*.amazonaws.com",
        "*.s3.dualstack.*.amazonaws.com",
    )

    def check(self, field: str, url: str) -> str:
        """The URL's host (``host`` or ``host:port``); raises BadRequest naming the field."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise BadRequest(field, "is not a URL") from None
        if parts.scheme not in self.schemes:
            raise BadRequest(field, f"must use {' or '.join(self.schemes)}")
        host = (parts.hostname or "").lower().rstrip(".")
        if not host or parts.username or parts.password:
            raise BadRequest(field, "must name a host and carry no credentials")
        where = f"{host}:{port}" if port else host
        explicit = where in self.hosts
        if not explicit and not any(fnmatch(where, pattern) for pattern in self.hosts):
            raise BadRequest(field, "host is not allowed (S3 pre-signed URLs only)")
        if not explicit and is_internal(host):
            raise BadRequest(field, "must not point at an internal address")
        return where


def is_internal(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host in ("localhost",) or host.endswith((".localhost", ".internal", ".local"))
    return bool(
        address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
        or address.is_reserved or address.is_unspecified
    )  # fmt: skip
