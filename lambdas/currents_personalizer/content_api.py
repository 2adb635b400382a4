"""The Connected Content API's answers, free of AWS types: lookup, defaults, the two shapes.

Braze renders nothing when Connected Content gets a 404 (and aborts the message with
``:retry``), so a miss answers the default content with 200 and ``"default": true`` unless
defaults are switched off; so does an empty ``?external_id=`` (an anonymous user).
``?format=dynamodb`` returns the DynamoDB-typed ``{"Item": …}`` shape that snippets written for
the original sample read (``{{result.Item.data.M.heading.S}}``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from .content import DEFAULT_CONTENT
from .store import StoredContent

MAX_ID = 512


class ContentLookup(Protocol):
    def get(self, user_id: str) -> StoredContent | None: ...
    def get_by_external_id(self, external_id: str) -> StoredContent | None: ...


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]


def respond(
    path_id: str | None,
    query: Mapping[str, str] | None,
    lookup: ContentLookup,
    *,
    defaults: bool = True,
) -> Answer:
    query = query or {}
    shape = query.get("format", "json")
    if shape not in ("json", "dynamodb"):
        return Answer(400, {"message": "format must be json or dynamodb"})
    given = [
        (k, v)
        for k, v in (
            ("braze_id", path_id),
            ("user_id", query.get("user_id")),
            ("external_id", query.get("external_id")),
        )
        if v is not None
    ]
    if len(given) != 1:
        return Answer(400, {"message": "give exactly one of /content/{braze_id}, ?user_id= or ?external_id="})
    field, value = given[0]
    anonymous = field == "external_id" and not value.strip()
    problem = None if anonymous else _id_problem(value)
    if problem:
        return Answer(400, {"message": f"{field}: {problem}"})
    if anonymous:
        # Anonymous users have no external id, so Braze renders ``?external_id=`` empty: answer
        # like any miss, so the message renders its default rather than failing.
        stored, value = None, ""
    else:
        stored = lookup.get_by_external_id(value) if field == "external_id" else lookup.get(value)
    if stored is None and not defaults:
        return Answer(404, {"message": "no content for this user"})
    user_id = stored.user_id if stored else (None if field == "external_id" else value)
    external_id = stored.external_id if stored else (value if field == "external_id" and value else None)
    content = stored.content if stored else DEFAULT_CONTENT.model_dump()
    generated_at = _iso(stored.generated_at) if stored else None
    if shape == "dynamodb":
        item: dict[str, Any] = {"data": {"M": _typed(content)["M"]}, "default": {"BOOL": stored is None}}
        if user_id:
            item["user_id"] = {"S": user_id}
        if external_id:
            item["external_id"] = {"S": external_id}
        if generated_at:
            item["generated_at"] = {"S": generated_at}
        return Answer(200, {"Item": item})
    return Answer(
        200,
        {
            "user_id": user_id,
            "external_id": external_id,
            "content": content,
            "generated_at": generated_at,
            "default": stored is None,
        },
    )


def _id_problem(value: str) -> str | None:
    if not value or not value.strip():
        return "must not be empty"
    if len(value) > MAX_ID:
        return f"must be at most {MAX_ID} characters"
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        return "must not contain control characters"
    return None


def _typed(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {"M": {k: _typed(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"L": [_typed(v) for v in value]}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if value is None:
        return {"NULL": True}
    return {"S": str(value)}


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
