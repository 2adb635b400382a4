"""The ``ContentGenerator`` port and its offline adapter (the sandbox default and the fallback)."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from .content import Content, Details
from .events import UserActivity

_WHAT = {
    "users.behaviors.CustomEvent": "activity",
    "users.behaviors.Purchase": "purchase",
    "users.messages.email.Open": "email",
    "users.messages.email.Click": "email",
    "users.messages.pushnotification.Open": "notification",
    "users.behaviors.app.SessionStart": "visit",
}


class ContentGenerator(Protocol):
    model_id: str

    def generate(self, activity: UserActivity) -> Content:
        """Content for one user from their recent events; raises only on unexpected errors."""
        ...


class OfflineGenerator:
    """Deterministic template content from the user's events: same events, same words."""

    model_id = "offline-template-v1"

    def generate(self, activity: UserActivity) -> Content:
        events = activity.recent()
        names = Counter(e.name for e in events if e.name)
        favourite = names.most_common(1)[0][0] if names else None
        kinds = Counter(_WHAT.get(e.event_type, "activity") for e in events)
        main_kind = kinds.most_common(1)[0][0] if kinds else "activity"
        count = len(events)
        topic = _clean(favourite) if favourite else "what you like"
        return Content(
            email_title=f"More {topic} picked for you",
            heading=f"Because you enjoyed {topic}",
            details=Details(
                intro=f"We noticed your recent {main_kind} ({count} {'event' if count == 1 else 'events'}).",
                episode_details=f"Here is what's new around {topic}, chosen from what you did most.",
                cta=f"Open the app to continue with {topic}.",
            ),
        )


def _clean(text: str) -> str:
    """A name from event data, made safe for a sentence: no markup, no Liquid, bounded length."""
    kept = "".join(ch for ch in text if ch.isalnum() or ch in " -_'&").strip().replace("_", " ")
    return kept[:60] or "what you like"
