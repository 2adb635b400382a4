"""The personalized content: a fixed shape, and a policy for text that goes into customers' messages.

The shape is the one the original Liquid snippets read (``heading``, ``details.intro`` …), so
``{{result.Item.data.M.heading.S}}`` keeps rendering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

MAX_FIELD = 600


class Details(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    intro: str = Field(min_length=1, max_length=MAX_FIELD)
    episode_details: str = Field(min_length=1, max_length=MAX_FIELD)
    cta: str = Field(min_length=1, max_length=MAX_FIELD)


class Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    email_title: str = Field(min_length=1, max_length=200)
    heading: str = Field(min_length=1, max_length=200)
    details: Details


DEFAULT_CONTENT = Content(
    email_title="New for you this week",
    heading="Picked for you",
    details=Details(
        intro="We've gathered a few things we think you'll enjoy.",
        episode_details="Take a look at what's new since your last visit.",
        cta="Come back and see what's waiting for you.",
    ),
)

_URL = re.compile(
    r"(?i)\b(?:https?://|ftp://|www\.)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|ly|app|info|biz|me)\b(?:/\S*)?"
)
_HTML = re.compile(r"<\s*/?\s*[a-zA-Z!][^>]*>|&(?:[a-zA-Z]+|#\d+);")
_LIQUID = re.compile(r"\{\{|\}\}|\{%|%\}")


@dataclass(frozen=True, slots=True)
class OutputPolicy:
    """What generated text may contain; everything it refuses is named, never quoted."""

    allow_urls: bool = False
    allow_html: bool = False
    allow_liquid: bool = False

    def violations(self, content: Content) -> list[str]:
        found = []
        for name, text in _fields(content):
            if not self.allow_urls and _URL.search(text):
                found.append(f"{name}: contains a URL")
            if not self.allow_html and _HTML.search(text):
                found.append(f"{name}: contains HTML")
            if not self.allow_liquid and _LIQUID.search(text):
                found.append(f"{name}: contains Liquid")
        return found


def _fields(content: Content) -> list[tuple[str, str]]:
    return [
        ("email_title", content.email_title),
        ("heading", content.heading),
        ("details.intro", content.details.intro),
        ("details.episode_details", content.details.episode_details),
        ("details.cta", content.details.cta),
    ]
