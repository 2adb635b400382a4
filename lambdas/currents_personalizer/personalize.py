"""From Currents files to one generation per user per period, and no more.

``process_file`` (the personalizer, one Currents file) merges the file's events into each user's
activity profile with conditional writes and, when a profile becomes pending, schedules one
generation after the settle window (a delayed queue message carrying only the user's id).
``generate`` (the generator, one message) reads the merged profile and generates once: nothing
when nothing new is pending (a redelivery), later when the cooldown has not passed, and it counts
only content that was written.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, Protocol

from botocore.exceptions import ClientError

from .content import DEFAULT_CONTENT, Content, OutputPolicy
from .events import DEFAULT_EVENT_TYPES, DEFAULT_PASSIVE_TYPES, RESERVED_USER_PREFIX, UserActivity, group_by_user
from .generators import ContentGenerator
from .profile import PER_TYPE, Profile, activity_of, merge
from .store import StoredContent

logger = logging.getLogger(__name__)

MAX_DELAY = 900  # SQS's longest message delay
CONFLICT_TRIES = 8


class Table(Protocol):
    def get(self, user_id: str) -> StoredContent | None: ...
    def claim(self, user_id: str, owner: str, seconds: int, *, generated_before: int | None = None) -> bool: ...
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
        source_version: int = 0,
    ) -> bool: ...
    def get_profile(self, user_id: str) -> Profile | None: ...
    def get_profiles(self, user_ids: Iterable[str]) -> dict[str, Profile]: ...
    def save_profile(self, profile: Profile, ttl_seconds: int) -> bool: ...
    def settle(self, user_id: str, intent: int) -> bool: ...
    def reschedule(self, user_id: str, version: int, at: int) -> bool: ...


class Budget(Protocol):
    def take(self) -> bool:
        """One generation from this hour's cap; False once it is spent."""
        ...


class Queue(Protocol):
    def send(self, messages: list[dict[str, Any]], *, delay_seconds: int = 0) -> None: ...


@dataclass(frozen=True, slots=True)
class Settings:
    event_types: frozenset[str] = DEFAULT_EVENT_TYPES
    passive_types: frozenset[str] = DEFAULT_PASSIVE_TYPES  # enrich profiles, start no generation alone
    cooldown_seconds: int = 3600
    settle_seconds: int = 300
    claim_seconds: int = 120
    ttl_seconds: int = 30 * 24 * 3600
    write_workers: int = 32  # conditional writes in flight (latency-bound, not CPU-bound)

    @property
    def overdue_seconds(self) -> int:
        """A pending profile whose message is this late lost it: the next file reschedules."""
        return self.settle_seconds + self.claim_seconds + MAX_DELAY


@dataclass(slots=True)
class Report:
    files: int = 0
    records: int = 0
    kept: int = 0
    duplicates: int = 0
    no_intent: int = 0
    future_clamped: int = 0
    unattributed: int = 0  # records without an event id or a usable Braze user id
    users: int = 0
    updated: int = 0  # profiles written
    unchanged: int = 0  # nothing new for the user (redelivered events)
    conflicts: int = 0  # conditional writes lost to another file, merged again
    rejected: int = 0  # profiles the table refused (ValidationException): that user's events are lost
    scheduled: int = 0  # generations scheduled after the settle window
    generated: int = 0  # content written by the model
    capped: int = 0  # content written by the offline template: hourly cap reached
    policy_fallbacks: int = 0  # content written by the template: the model's text broke the policy
    superseded: int = 0  # generated but not written: newer content was stored first
    skipped_fresh: int = 0  # nothing pending (a redelivered message)
    deferred: int = 0  # within the cooldown: scheduled again for when it ends
    skipped_claimed: int = 0
    failed: int = 0

    def add(self, other: Report) -> None:
        for f in fields(other):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str  # a Report field
    error_code: str | None = None  # for failures: the service's error code or the exception type


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

    # -- the personalizer: one Currents file -----------------------------------------------------

    def process_file(self, records: Iterable[dict[str, Any]], event_type: str, owner: str = "") -> Report:
        now = int(self.clock())
        users, summary = group_by_user(
            records, event_type, keep_types=self.settings.event_types, keep_last=PER_TYPE * 4, now=now
        )
        report = Report(
            files=1,
            records=summary.records,
            kept=summary.kept,
            duplicates=summary.duplicates,
            no_intent=summary.no_intent,
            future_clamped=summary.future_clamped,
            unattributed=summary.unattributed,
            users=len(users),
        )
        if not users:
            return report
        stored = self.table.get_profiles(users)
        with ThreadPoolExecutor(max_workers=self.settings.write_workers) as pool:
            for counts in pool.map(lambda a: self._merge_user(a, stored.get(a.user_id), now), users.values()):
                report.add(counts)
        return report

    def _merge_user(self, activity: UserActivity, profile: Profile | None, now: int) -> Report:
        report = Report()
        for _ in range(CONFLICT_TRIES):
            profile = profile or Profile(activity.user_id)
            result = merge(
                profile,
                activity,
                now=now,
                passive_types=self.settings.passive_types,
                overdue_seconds=self.settings.overdue_seconds,
            )
            if not result.new_events and not result.schedule:
                report.unchanged += 1
                return report
            if result.schedule:
                # Sent before the write: if the write is lost, the message finds nothing pending and
                # the file's retry schedules again; the other order could strand a pending profile.
                self._schedule([activity.user_id], self.settings.settle_seconds)
                report.scheduled += 1
            try:
                saved = self.table.save_profile(profile, self.settings.ttl_seconds)
            except ClientError as exc:
                if error_code(exc) != "ValidationException":
                    raise
                # This user's profile cannot be stored (the table refused the item): the other
                # users of the file are not held back by it, and a retry would fail the same way.
                logger.error("a profile was rejected by the table", extra={"error_code": "ValidationException"})
                report.rejected += 1
                return report
            if saved:
                report.updated += 1
                return report
            report.conflicts += 1
            profile = self.table.get_profile(activity.user_id)
        raise RuntimeError("a user's profile kept changing under this file; the file will be retried")

    def _schedule(self, user_ids: list[str], delay: int) -> None:
        if self.queue is None:
            raise RuntimeError("no generation queue configured")
        self.queue.send([{"user_id": u} for u in user_ids], delay_seconds=max(0, min(MAX_DELAY, delay)))

    # -- the generator: one scheduled user -------------------------------------------------------

    def generate(self, user_id: str, owner: str, *, deadline: float | None = None) -> Outcome:
        """Generate once from the user's merged profile; the outcome names the Report field."""
        profile = self.table.get_profile(user_id)
        if profile is None or profile.pending_since is None:
            return Outcome("skipped_fresh")
        now = self.clock()
        stored = self.table.get(user_id)
        if stored is not None and now - stored.generated_at < self.settings.cooldown_seconds:
            wait = math.ceil(self.settings.cooldown_seconds - (now - stored.generated_at))
            self._schedule([user_id], wait)
            self.table.reschedule(user_id, profile.version, int(now) + min(wait, MAX_DELAY))
            return Outcome("deferred")
        # The claim holds only if no content was generated since the cooldown read (a duplicate
        # message generating meanwhile): the model is not called twice for one period.
        cutoff = int(now) - self.settings.cooldown_seconds
        if not self.table.claim(user_id, owner, self.settings.claim_seconds, generated_before=cutoff):
            return Outcome("skipped_claimed")
        # One retry layer, bounded by the claim (another generation may take the user after it)
        # and by the caller's deadline (the function's remaining time).
        limit = now + self.settings.claim_seconds - 5
        deadline = min(limit, deadline) if deadline is not None else limit
        activity = activity_of(profile)
        outcome = "generated"
        if self.budget is not None and not self.budget.take():
            content, model_id, outcome = self.fallback.generate(activity), self.fallback.model_id, "capped"
        else:
            try:
                content, model_id = self.generator.generate(activity, deadline=deadline), self.generator.model_id
            except Exception as exc:  # the model is down past its retries: nothing is stored
                return Outcome("failed", error_code(exc))
        if self.policy.violations(content):
            content = _safe_default(self.fallback, activity, self.policy)
            model_id, outcome = "default", "policy_fallbacks"
        written = self.table.put(
            user_id=user_id,
            external_id=profile.external_id,
            content=content.model_dump(),
            source_time=profile.newest_time,
            model_id=model_id,
            event_ids=[e["id"] for e in profile.recent()],
            ttl_seconds=self.settings.ttl_seconds,
            source_version=profile.version,
        )
        if not self.table.settle(user_id, profile.intent):
            # Events of intent arrived while generating: they get their own generation after the cooldown.
            self._schedule([user_id], self.settings.cooldown_seconds)
        return Outcome(outcome if written else "superseded")


def error_code(exc: Exception) -> str:
    """What failed, without user data: AWS's error code, or the exception's type."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    return type(exc).__name__


def _safe_default(fallback: ContentGenerator, activity: UserActivity, policy: OutputPolicy) -> Content:
    content = fallback.generate(activity)
    return content if not policy.violations(content) else DEFAULT_CONTENT


def decode_message(body: dict[str, Any]) -> str:
    """A generation message carries the user's Braze id and nothing else."""
    user_id = body.get("user_id")
    if not isinstance(user_id, str) or not user_id or user_id.startswith(RESERVED_USER_PREFIX):
        raise ValueError("a generation message needs a user_id")
    return user_id
