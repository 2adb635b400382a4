"""The ``ContentGenerator`` port and its offline adapter (the sandbox default and the fallback)."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from .content import Content, Details
from .events import CUSTOM_EVENT, EMAIL_CLICK, EMAIL_OPEN, PURCHASE, PUSH_OPEN, SESSION_START, UserActivity

# What a kind of activity is called in a sentence to the customer.
_NOTICED = {
    PURCHASE: "your recent purchase",
    CUSTOM_EVENT: "what you've been up to",
    EMAIL_OPEN: "that you read our emails",
    EMAIL_CLICK: "what caught your eye in our emails",
    PUSH_OPEN: "that you opened our notifications",
    SESSION_START: "your recent visits",
}


class ContentGenerator(Protocol):
    model_id: str

    def generate(self, activity: UserActivity, *, deadline: float | None = None) -> Content:
        """Content for one user from their recent events; raises only on unexpected errors.
        ``deadline`` (a ``time.time()`` value) bounds any waiting and retrying."""
        ...


class OfflineGenerator:
    """Deterministic template content from the user's events: same events, same words.

    It speaks of what the customer did (bought, watched, opened), never of campaign or canvas
    names, which are the sender's labels."""

    model_id = "offline-template-v1"

    def generate(self, activity: UserActivity, *, deadline: float | None = None) -> Content:
        events = activity.recent()
        bought = [_clean(e.name) for e in events if e.event_type == PURCHASE and e.name]
        if bought:
            item = bought[0]
            return Content(
                email_title=f"More to enjoy with {item}",
                heading=f"Thanks for buying {item}",
                details=Details(
                    intro=f"We hope you're enjoying {item}.",
                    episode_details=f"Here is what goes well with {item}, picked from what you did recently.",
                    cta=f"Open the app to get the most out of {item}.",
                ),
            )
        topic = _favourite(activity)
        if topic:
            return Content(
                email_title=f"More {topic} picked for you",
                heading=f"Because you enjoyed {topic}",
                details=Details(
                    intro=f"We noticed you've been spending time with {topic}.",
                    episode_details=f"Here is what's new around {topic}, chosen from what you did most.",
                    cta=f"Open the app to continue with {topic}.",
                ),
            )
        kinds = Counter(e.event_type for e in events)
        noticed = _NOTICED.get(kinds.most_common(1)[0][0], "your recent activity") if kinds else "your recent activity"
        return Content(
            email_title="New for you this week",
            heading="Picked for you",
            details=Details(
                intro=f"Thanks for {noticed}." if noticed.startswith("your") else f"We noticed {noticed}.",
                episode_details="We've gathered a few things we think you'll like.",
                cta="Come back and see what's waiting for you.",
            ),
        )


def _favourite(activity: UserActivity) -> str | None:
    """The thing the customer did most with: a custom event's first text property (a show, a
    product), else the custom event's own name."""
    things: Counter[str] = Counter()
    for event in activity.recent():
        if event.event_type != CUSTOM_EVENT:
            continue
        value = next((v for v in event.properties().values() if isinstance(v, str) and v.strip()), None)
        if value or event.name:
            things[_clean(value or event.name or "")] += 1
    return things.most_common(1)[0][0] if things else None


def _clean(text: str) -> str:
    """A name from event data, made safe for a sentence: no markup, no Liquid, bounded length."""
    kept = "".join(ch for ch in text if ch.isalnum() or ch in " -_'&").strip().replace("_", " ")
    return kept[:60] or "what you like"
