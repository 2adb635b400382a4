"""The CI360 bulk-connector webhook: what it must carry, where its file may go, where from.

Errors name the field and the rule, never the value: the values are pre-signed URLs.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from fnmatch import fnmatchcase
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_COMPONENT = 128
MAX_NAME = 512
MAX_DEPTH = 6
DEFAULT_PORTS = {"https": 443, "http": 80}
# Besides letters (with their combining marks) and decimal digits, the only characters a name may hold.
_NAME_PUNCTUATION = frozenset(" ._-()")
_NAME_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Nd"})
MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt) among the categories above:
# fillers and selectors that render as nothing (Hangul fillers, the combining grapheme joiner,
# variation selectors, Mongolian free variation selectors, Khmer inherent vowels...).
_INVISIBLE = tuple(
    (int(a, 16), int(b, 16))
    for a, b in (
        ("00AD", "00AD"), ("034F", "034F"), ("061C", "061C"), ("115F", "1160"), ("17B4", "17B5"),
        ("180B", "180F"), ("200B", "200F"), ("202A", "202E"), ("2060", "206F"), ("3164", "3164"),
        ("FE00", "FE0F"), ("FEFF", "FEFF"), ("FFA0", "FFA0"), ("FFF0", "FFF8"), ("1BCA0", "1BCA3"),
        ("1D173", "1D17A"), ("E0000", "E0FFF"),
    )
)  # fmt: skip


class PresignedUrls(BaseModel):
    model_config = ConfigDict(extra="ignore")

    dataFile: str = Field(min_length=1, max_length=8192)
    metadataFile: str | None = Field(None, max_length=8192)

    @field_validator("metadataFile")
    @classmethod
    def _empty_is_absent(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None  # CI360 sends "" when a task has no metadata


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
    """``s3_filename`` under the fixed prefix, in Unicode NFC (so composed and decomposed spellings
    give one key): relative, no traversal, printable letters, digits, space and ``._-()`` only (no
    control, format/bidi, invisible filler or path characters anywhere; a combining mark only on a
    visible character), and at most S3's 1,024 UTF-8 bytes with the prefix."""
    field = "sendParameters.s3_filename"
    name = unicodedata.normalize("NFC", s3_filename.strip(" "))
    if name.startswith(("/", "\\")) or re.fullmatch(r"[A-Za-z]:.*", name, flags=re.DOTALL):
        raise BadRequest(field, "must be a relative name")
    parts = name.split("/")
    if len(parts) > MAX_DEPTH:
        raise BadRequest(field, f"may have at most {MAX_DEPTH} folder levels")
    for part in parts:
        if part in ("", ".", ".."):
            raise BadRequest(field, "must not contain empty, '.' or '..' path parts")
        if not all(_name_character(c) for c in part):
            raise BadRequest(field, "may use letters, digits, spaces, '.', '_', '-', '(', ')' and '/' between folders")
        if any(_invisible(c) for c in part):
            raise BadRequest(field, "must not contain invisible characters (fillers, joiners, variation selectors)")
        if part[0] in ". " or part[-1] == " " or unicodedata.category(part[0]) in ("Mn", "Mc"):
            raise BadRequest(field, "parts must not start with '.' or a space, nor end with a space")
        if any(unicodedata.category(c) in ("Mn", "Mc") and before == " " for before, c in pairwise(part)):
            raise BadRequest(field, "combining marks need a visible character to sit on")
        if len(part) > MAX_COMPONENT:
            raise BadRequest(field, f"parts may be at most {MAX_COMPONENT} characters long")
    key = prefix + name
    if len(key.encode()) > MAX_KEY_BYTES:
        raise BadRequest(field, f"is too long: the object key may be at most {MAX_KEY_BYTES} bytes in UTF-8")
    return key


def _invisible(c: str) -> bool:
    point = ord(c)
    return any(low <= point <= high for low, high in _INVISIBLE)


def _name_character(c: str) -> bool:
    return c in _NAME_PUNCTUATION or unicodedata.category(c) in _NAME_CATEGORIES


def host_matches(host: str, pattern: str) -> bool:
    """Label by label: ``*`` stands for part of one label and never crosses a dot."""
    if pattern == "*":
        return ":" not in host.rsplit("]", 1)[-1]  # any host on the scheme's port
    labels, wanted = host.split("."), pattern.split(".")
    return len(labels) == len(wanted) and all(fnmatchcase(h, w) for h, w in zip(labels, wanted, strict=True))


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """Which download URLs the copier may fetch: schemes, and host patterns matched label by label
    (``*.s3.amazonaws.com``; ``host:port`` for a port other than the scheme's; ``*`` alone for any
    host, for tests). An address that is
    not globally routable is refused unless an exact entry (no ``*``) names that host."""

    schemes: tuple[str, ...] = ("https",)
    # Amazon S3's own endpoint forms: global, regional (dot and legacy dash), dual-stack, FIPS,
    # each path-style and virtual-hosted (a bucket name is one label: dotted names break TLS).
    hosts: tuple[str, ...] = (
        "s3.amazonaws.com",
        "*.s3.amazonaws.com",
        "s3.*.amazonaws.com",
        "*.s3.*.amazonaws.com",
        "s3-*.amazonaws.com",
        "*.s3-*.amazonaws.com",
        "s3.dualstack.*.amazonaws.com",
        "*.s3.dualstack.*.amazonaws.com",
        "s3-fips.*.amazonaws.com",
        "*.s3-fips.*.amazonaws.com",
        "s3-fips.dualstack.*.amazonaws.com",
        "*.s3-fips.dualstack.*.amazonaws.com",
        "s3.*.amazonaws.com.cn",
        "*.s3.*.amazonaws.com.cn",
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
        if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Zs") for c in url):
            raise BadRequest(field, "is not a URL (it holds spaces or control characters)")
        host = (parts.hostname or "").lower().rstrip(".")
        host = f"[{host}]" if ":" in host else host
        if not host or parts.username or parts.password or "@" in parts.netloc:
            raise BadRequest(field, "must name a host and carry no credentials")
        where = host if port is None or port == DEFAULT_PORTS.get(parts.scheme) else f"{host}:{port}"
        if not self.allows_host(where):
            raise BadRequest(field, "host is not allowed (S3 pre-signed URLs only)")
        if not self.exact(where) and is_internal(host):
            raise BadRequest(field, "must not point at an internal address")
        return where

    def allows_host(self, where: str) -> bool:
        return any(host_matches(where, pattern) for pattern in self.hosts)

    def exact(self, where: str) -> bool:
        """Named exactly by the configuration (then its addresses are trusted, e.g. a local test server)."""
        return where in self.hosts and "*" not in where


def is_internal(host: str) -> bool:
    """A name that only resolves inside, or an address that is not globally routable (private,
    shared 100.64/10, loopback, link-local, reserved, multicast), in any IPv6 form that carries
    an IPv4 address (mapped, 6to4, Teredo, NAT64)."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return host in ("localhost",) or host.endswith((".localhost", ".internal", ".local"))
    return not is_public_address(address)


# Special-purpose ranges (IANA registries), listed here too so the answer does not depend on
# which Python's ``is_global`` tables the runtime has.
_NOT_GLOBAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "240.0.0.0/4", "2001::/23", "2001:db8::/32", "3fff::/20", "5f00::/16", "fc00::/7",
        "fe80::/10", "fec0::/10", "100::/64",
    )
)  # fmt: skip


_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (SIIT, RFC 2765)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if not address.is_global or address.is_multicast:
        return False
    if any(address.version == n.version and address in n for n in _NOT_GLOBAL):
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    embedded: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped:
        embedded.append(address.ipv4_mapped)
    if address in _IPV4_TRANSLATED:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour:
        embedded.append(address.sixtofour)
    if address.teredo:
        embedded.extend(address.teredo)
    if any(address in network for network in _NAT64):
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address in _IPV4_COMPATIBLE:
        return False
    return all(is_public_address(inner) for inner in embedded)
