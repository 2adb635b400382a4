"""Personalize one Currents file: one generation per user who needs one, and no more.

A user needs content when nothing is stored, or what is stored was built from older events and
is older than the cooldown. Files with more such users than one invocation should serve hand
them to a queue; the generator function serves them at the pace the model's quota allows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .content import DEFAULT_CONTENT, Content, OutputPolicy
from .events import DEFAULT_EVENT_TYPES, CurrentsEvent, UserActivity, group_by_user
from .generators import ContentGenerator
from .store import StoredContent


class Table(Protocol):
    def get(self, user_id: str) -> StoredContent | None: ...
    def claim(self, user_id: str, owner: str, seconds: int) -> bool: ...
    def put(
        self,
        *,
        user_id: str,
        external_id: str | None,
        content: dict[str, Any],
        source_time: int,
        model_id: str,
        event_ids: list[str],
        ttl_seconds: int,
    ) -> bool: ...


class Budget(Protocol):
    def take(self) -> bool:
        """One generation from this hour's cap; False once it is spent."""
        ...


class Queue(Protocol):
    def send(self, messages: list[dict[str, Any]]) -> None: ...


@dataclass(frozen=True, slots=True)
class Settings:
    event_types: frozenset[str] = DEFAULT_EVENT_TYPES
    cooldown_seconds: int = 3600
    claim_seconds: int = 120
    ttl_seconds: int = 30 * 24 * 3600
    max_inline_users: int = 200
    concurrency: int = 8
    keep_last_events: int = 20


@dataclass(slots=True)
class Report:
    files: int = 0
    records: int = 0
    kept: int = 0
    duplicates: int = 0
    users: int = 0
    generated: int = 0
    skipped_fresh: int = 0
    skipped_claimed: int = 0
    queued: int = 0
    capped: int = 0
    failed: int = 0
    policy_fallbacks: int = 0

    def add(self, other: Report) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass(slots=True)
class Personalizer:
    table: Table
    generator: ContentGenerator
    fallback: ContentGenerator
    policy: OutputPolicy
    settings: Settings
    budget: Budget | None = None
    queue: Queue | None = None
    clock: Callable[[], float] = time.time
    errors: list[str] = field(default_factory=list)

    def process_file(self, records: Iterable[dict[str, Any]], event_type: str, owner: str) -> Report:
        users, summary = group_by_user(
            records, event_type, keep_types=self.settings.event_types, keep_last=self.settings.keep_last_events
        )
        report = Report(files=1, records=summary.records, kept=summary.kept, duplicates=summary.duplicates)
        report.users = len(users)
        due = [a for a in users.values() if self._due(a, report)]
        if self.queue is not None and len(due) > self.settings.max_inline_users:
            self.queue.send([encode_activity(a) for a in due])
            report.queued = len(due)
            return report
        report.add(self.generate_all(due, owner))
        return report

    def generate_all(self, due: list[UserActivity], owner: str) -> Report:
        report = Report()
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            for outcome in pool.map(lambda a: self.generate_one(a, owner), due):
                setattr(report, outcome, getattr(report, outcome) + 1)
        return report

    def generate_one(self, activity: UserActivity, owner: str) -> str:
        """Generate and store content for one user; returns the Report field it counts in."""
        stored = self.table.get(activity.user_id)
        if stored is not None and not self._stale(activity, stored):
            return "skipped_fresh"  # a duplicated message, or another file was faster
        if not self.table.claim(activity.user_id, owner, self.settings.claim_seconds):
            return "skipped_claimed"
        outcome = "generated"
        if self.budget is not None and not self.budget.take():
            content, model_id, outcome = self.fallback.generate(activity), self.fallback.model_id, "capped"
        else:
            try:
                content, model_id = self.generator.generate(activity), self.generator.model_id
            except Exception as exc:  # the model is down for longer than its retries: say so, store nothing
                self.errors.append(f"{activity.user_id[:8]}…: {type(exc).__name__}")
                return "failed"
        if self.policy.violations(content):
            content, model_id, outcome = (
                _safe_default(self.fallback, activity, self.policy),
                "default",
                "policy_fallbacks",
            )
        self.table.put(
            user_id=activity.user_id,
            external_id=activity.external_id,
            content=content.model_dump(),
            source_time=activity.newest_time,
            model_id=model_id,
            event_ids=activity.event_ids,
            ttl_seconds=self.settings.ttl_seconds,
        )
        return outcome

    def _due(self, activity: UserActivity, report: Report) -> bool:
        stored = self.table.get(activity.user_id)
        if stored is None or self._stale(activity, stored):
            return True
        report.skipped_fresh += 1
        return False

    def _stale(self, activity: UserActivity, stored: StoredContent) -> bool:
        newer_events = activity.newest_time > stored.source_time
        cooled_down = self.clock() - stored.generated_at >= self.settings.cooldown_seconds
        return newer_events and cooled_down


def _safe_default(fallback: ContentGenerator, activity: UserActivity, policy: OutputPolicy) -> Content:
    content = fallback.generate(activity)
    return content if not policy.violations(content) else DEFAULT_CONTENT


def encode_activity(activity: UserActivity) -> dict[str, Any]:
    """A queue message: everything a generation needs, nothing more."""
    return {
        "user_id": activity.user_id,
        "external_id": activity.external_id,
        "newest_time": activity.newest_time,
        "event_ids": activity.event_ids[-100:],
        "events": [asdict(e) for e in activity.recent()],
    }


def decode_activity(message: dict[str, Any]) -> UserActivity:
    activity = UserActivity(message["user_id"], message.get("external_id"))
    for event in sorted(message.get("events", []), key=lambda e: e["time"]):
        activity.events.append(CurrentsEvent(**event))
    activity.event_ids = list(message.get("event_ids", []))
    activity.newest_time = int(message["newest_time"])
    return activity
