"""One generation per user per period, from everything the user did: profiles merged across files,
a settle window, intent-free signals ignored, future times clamped, cooldown, claims, caps, failures.

The content table is the real adapter on moto (in process); the queue records what would be sent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError
from currents_personalizer.content import Content, Details, OutputPolicy
from currents_personalizer.events import (
    CUSTOM_EVENT,
    DEFAULT_EVENT_TYPES,
    EMAIL_CLICK,
    EMAIL_OPEN,
    PURCHASE,
    SESSION_START,
    UserActivity,
)
from currents_personalizer.generators import OfflineGenerator
from currents_personalizer.personalize import Outcome, Personalizer, Report, Settings, decode_message
from currents_personalizer.store import PROFILE_PREFIX, ContentTable
from moto import mock_aws

from sandbox import currents_sample
from sandbox.currents import create_content_table

NOW = 1_800_000_000.0
USER = "braze-00001"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class Queue:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send(self, messages: list[dict[str, Any]], *, delay_seconds: int = 0) -> None:
        self.sent += [(m, delay_seconds) for m in messages]

    def take(self) -> list[tuple[dict[str, Any], int]]:
        sent, self.sent = self.sent, []
        return sent


class CountingGenerator(OfflineGenerator):
    model_id = "counting"

    def __init__(self, fail: Exception | None = None, text: str | None = None) -> None:
        self.calls: list[UserActivity] = []
        self.fail = fail
        self.text = text

    def generate(self, activity: UserActivity, *, deadline: float | None = None) -> Content:
        self.calls.append(activity)
        if self.fail:
            raise self.fail
        content = super().generate(activity)
        if self.text:
            return content.model_copy(update={"details": Details(intro=self.text, episode_details="e", cta="c")})
        return content


class Budget:
    def __init__(self, left: int) -> None:
        self.left = left

    def take(self) -> bool:
        self.left -= 1
        return self.left >= 0


class Box:
    def __init__(self, db: Any, generator: CountingGenerator | None = None, **kw: Any) -> None:
        self.db = db
        self.clock = Clock()
        self.queue = Queue()
        self.table = ContentTable(db, "content", clock=self.clock)
        self.generator = generator or CountingGenerator()
        self.personalizer = Personalizer(
            table=self.table,
            generator=self.generator,
            fallback=OfflineGenerator(),
            policy=OutputPolicy(),
            settings=kw.pop("settings", Settings(cooldown_seconds=3600, settle_seconds=300)),
            queue=self.queue,
            clock=self.clock,
            **kw,
        )

    def file(self, event_type: str, records: list[dict[str, Any]]) -> Report:
        return self.personalizer.process_file(records, event_type, "file")

    def deliver(self) -> Report:
        """Deliver every queued message once its delay has passed (the clock moves to it)."""
        report = Report()
        for message, delay in self.queue.take():
            self.clock.now = max(self.clock.now, self.clock.now + delay)
            report.count(self.personalizer.generate(message["user_id"], "msg").name)
        return report

    def item(self, key: str) -> dict[str, Any]:
        return dict(self.db.get_item(TableName="content", Key={"user_id": {"S": key}}).get("Item", {}))


@pytest.fixture
def db() -> Iterator[Any]:
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with mock_aws():
            client = boto3.client("dynamodb")
            create_content_table(client, "content")
            yield client
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def event(event_type: str, n: int, *, user: str = USER, time: int = int(NOW) - 600, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": f"{event_type[-6:]}-{user}-{n}", "user_id": user, "time": time}
    if event_type == CUSTOM_EVENT:
        base |= {"name": "watched_episode", "properties": orjson.dumps({"show": "Night Shift"}).decode()}
    if event_type == PURCHASE:
        base |= {"product_id": "Ocean Lab season pass", "price": 9.99, "currency": "USD"}
    if event_type in (EMAIL_OPEN, EMAIL_CLICK):
        base |= {"campaign_name": "Q4 winback canvas v3", "email_address": "person@example.com"}
    return base | fields


def test_files_of_one_period_become_one_generation_that_mentions_the_purchase(db: Any) -> None:
    box = Box(db)
    assert box.file(SESSION_START, [event(SESSION_START, 1)]).scheduled == 0  # a session start alone
    purchase = box.file(PURCHASE, [event(PURCHASE, 1)])
    custom = box.file(CUSTOM_EVENT, [event(CUSTOM_EVENT, 1), event(CUSTOM_EVENT, 2)])
    assert (purchase.scheduled, custom.scheduled, custom.updated) == (1, 0, 1)
    assert [delay for _, delay in box.queue.sent] == [300]  # after the settle window
    outcome = box.deliver()
    assert outcome.generated == 1 and len(box.generator.calls) == 1
    seen = {e.event_type for e in box.generator.calls[0].events}
    assert seen == {SESSION_START, PURCHASE, CUSTOM_EVENT}  # everything the user did, from three files
    stored = box.table.get(USER)
    assert stored is not None and "Ocean Lab season pass" in orjson.dumps(stored.content).decode()


def test_redelivered_files_and_messages_generate_nothing(db: Any) -> None:
    box = Box(db)
    records = currents_sample.records(CUSTOM_EVENT, users=5, events=40, start=int(NOW) - 5000)
    first = box.file(CUSTOM_EVENT, records)
    assert first.users == first.scheduled == first.updated == 5
    messages = list(box.queue.sent)
    assert box.deliver().generated == 5
    box.clock.now += 7200  # past the cooldown: still nothing new
    again = box.file(CUSTOM_EVENT, records[-20:])
    assert again.unchanged == again.users and again.scheduled == 0 and not box.queue.sent
    box.queue.sent = messages  # SQS delivered the messages twice
    assert box.deliver().skipped_fresh == 5 and len(box.generator.calls) == 5


def test_new_activity_within_the_cooldown_waits_for_it_then_generates_once(db: Any) -> None:
    box = Box(db)
    box.file(PURCHASE, [event(PURCHASE, 1)])
    assert box.deliver().generated == 1
    box.clock.now += 600
    box.file(CUSTOM_EVENT, [event(CUSTOM_EVENT, 1, time=int(box.clock.now) - 10)])
    box.file(CUSTOM_EVENT, [event(CUSTOM_EVENT, 2, time=int(box.clock.now) - 5)])
    outcomes = Report()
    for _ in range(10):
        if not box.queue.sent:
            break
        outcomes.add(box.deliver())
    assert outcomes.generated == 1 and outcomes.deferred >= 1 and len(box.generator.calls) == 2
    stored = box.table.get(USER)
    assert stored is not None and stored.generated_at - NOW >= 3600  # one generation per cooldown


def test_signals_without_intent_start_no_generation(db: Any) -> None:
    box = Box(db)
    machine = box.file(EMAIL_OPEN, [event(EMAIL_OPEN, 1, machine_open="true")])
    bot = box.file(EMAIL_CLICK, [event(EMAIL_CLICK, 1, is_suspected_bot_click=True)])
    session = box.file(SESSION_START, [event(SESSION_START, 1)])
    assert (machine.no_intent, bot.no_intent) == (1, 1) and not box.queue.sent
    assert session.updated == 1 and session.scheduled == 0  # enriches the profile only
    human = box.file(EMAIL_OPEN, [event(EMAIL_OPEN, 2, machine_open=None)])
    assert human.scheduled == 1


def test_session_starts_may_trigger_when_configured(db: Any) -> None:
    box = Box(db, settings=Settings(passive_types=frozenset(), settle_seconds=60))
    assert box.file(SESSION_START, [event(SESSION_START, 1)]).scheduled == 1
    assert box.queue.sent[0][1] == 60


def test_future_event_times_are_clamped_to_the_receive_time(db: Any) -> None:
    box = Box(db)
    year_2034 = 2_020_000_000
    report = box.file(CUSTOM_EVENT, [event(CUSTOM_EVENT, 1, time=year_2034)])
    assert report.future_clamped == 1
    box.deliver()
    first = box.table.get(USER)
    assert first is not None and first.source_time == int(NOW)
    box.clock.now += 7200
    box.file(PURCHASE, [event(PURCHASE, 1, time=int(box.clock.now) - 60)])
    assert box.deliver().generated == 1  # not frozen by the 2034 event
    second = box.table.get(USER)
    assert second is not None and "Ocean Lab" in orjson.dumps(second.content).decode()


def test_a_file_merged_concurrently_loses_no_events(db: Any) -> None:
    box = Box(db)
    other = Box(db)
    save = box.table.save_profile
    raced = []

    def racing_save(profile: Any, ttl: int) -> bool:
        if not raced:  # another file's write lands between this file's read and write
            raced.append(other.file(PURCHASE, [event(PURCHASE, 1)]))
        return save(profile, ttl)

    box.table.save_profile = racing_save  # type: ignore[method-assign]
    report = box.file(CUSTOM_EVENT, [event(CUSTOM_EVENT, 1)])
    assert report.conflicts == 1 and report.updated == 1
    profile = box.table.get_profile(USER)
    assert profile is not None and set(profile.events) == {PURCHASE, CUSTOM_EVENT}


def test_the_profile_stays_small_whatever_the_events_carry(db: Any) -> None:
    box = Box(db)
    huge = orjson.dumps({f"k{i}": "x" * 5000 for i in range(100)}).decode()
    records = [event(CUSTOM_EVENT, i, properties=huge, time=int(NOW) - i) for i in range(500)]
    box.file(CUSTOM_EVENT, records)
    item = box.item(PROFILE_PREFIX + USER)
    assert len(item["profile"]["S"]) < 40_000
    assert all(len(orjson.dumps(m)) < 100 for m, _ in box.queue.sent)  # the message carries the id only


def test_only_written_content_counts_as_generated(db: Any) -> None:
    box = Box(db)
    box.file(PURCHASE, [event(PURCHASE, 1)])
    profile = box.table.get_profile(USER)
    assert profile is not None
    box.table.put(  # a newer generation was stored first
        user_id=USER, external_id=None, content={"x": 1}, source_time=0, model_id="m", event_ids=[],
        ttl_seconds=60, source_version=profile.version + 5,
    )  # fmt: skip
    box.clock.now += 7200
    assert box.deliver().superseded == 1


def test_a_failed_generation_names_the_error_and_leaves_no_item_without_ttl(db: Any) -> None:
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Converse")
    box = Box(db, CountingGenerator(fail=throttled))
    box.file(PURCHASE, [event(PURCHASE, 1)])
    message = box.queue.sent[0]
    outcome = box.personalizer.generate(message[0]["user_id"], "msg")
    assert (outcome.name, outcome.error_code) == ("failed", "ThrottlingException")
    claim = box.item(USER)
    assert "content" not in claim and int(claim["expires_at"]["N"]) > NOW
    profile = box.table.get_profile(USER)
    assert profile is not None and profile.pending_since is not None  # the retry will generate


def test_hourly_cap_switches_to_offline_content(db: Any) -> None:
    box = Box(db, budget=Budget(2))
    records = currents_sample.records(CUSTOM_EVENT, users=6, events=60, start=int(NOW) - 5000)
    box.file(CUSTOM_EVENT, records)
    report = box.deliver()
    assert (report.generated, report.capped) == (2, 4) and len(box.generator.calls) == 2


def test_policy_violations_are_replaced(db: Any) -> None:
    box = Box(db, CountingGenerator(text="visit https://x.example.com"))
    box.file(CUSTOM_EVENT, currents_sample.records(CUSTOM_EVENT, users=3, events=9, start=int(NOW) - 500))
    assert box.deliver().policy_fallbacks == 3
    for n in range(3):
        stored = box.table.get(f"braze-{n:05d}")
        assert stored is not None and "https" not in str(stored.content)


def test_a_lost_message_is_scheduled_again_by_the_next_file(db: Any) -> None:
    box = Box(db)
    box.file(PURCHASE, [event(PURCHASE, 1)])
    box.queue.take()  # lost
    box.clock.now += 60
    assert box.file(CUSTOM_EVENT, [event(CUSTOM_EVENT, 1)]).scheduled == 0  # still on its way
    box.clock.now += 3600
    assert box.file(CUSTOM_EVENT, [event(CUSTOM_EVENT, 2)]).scheduled == 1
    assert box.deliver().generated == 1


def test_a_session_start_file_an_hour_later_does_not_overwrite_the_content(db: Any) -> None:
    box = Box(db)
    box.file(PURCHASE, [event(PURCHASE, 1)])
    box.deliver()
    before = box.table.get(USER)
    box.clock.now += 3600 + 1
    report = box.file(SESSION_START, [event(SESSION_START, 9, time=int(box.clock.now) - 5)])
    assert report.updated == 1 and report.scheduled == 0 and box.deliver() == Report()
    assert box.table.get(USER) == before


def test_a_passive_event_during_a_generation_schedules_no_second_generation(db: Any) -> None:
    box = Box(db)
    box.file(PURCHASE, [event(PURCHASE, 1)])
    generate = box.generator.generate

    def while_generating(activity: UserActivity, *, deadline: float | None = None) -> Content:
        box.file(SESSION_START, [event(SESSION_START, 1)])  # a passive write lands mid-generation
        return generate(activity, deadline=deadline)

    box.generator.generate = while_generating  # type: ignore[method-assign]
    assert box.deliver().generated == 1
    assert box.queue.sent == []  # nothing of intent arrived: no second generation
    profile = box.table.get_profile(USER)
    assert profile is not None and profile.pending_since is None and SESSION_START in profile.events


def test_an_intent_event_during_a_generation_gets_its_own_generation(db: Any) -> None:
    box = Box(db)
    box.file(PURCHASE, [event(PURCHASE, 1)])
    generate = box.generator.generate

    def while_generating(activity: UserActivity, *, deadline: float | None = None) -> Content:
        box.file(CUSTOM_EVENT, [event(CUSTOM_EVENT, 1)])
        return generate(activity, deadline=deadline)

    box.generator.generate = while_generating  # type: ignore[method-assign]
    assert box.deliver().generated == 1
    assert [d for _, d in box.queue.sent] == [900]  # after the cooldown, in SQS's longest delays
    profile = box.table.get_profile(USER)
    assert profile is not None and profile.pending_since is not None


def test_the_profile_item_stays_under_a_byte_budget_with_many_types_and_multibyte_text(db: Any) -> None:
    types = frozenset(DEFAULT_EVENT_TYPES | {f"users.behaviors.x{i}" for i in range(14)})
    box = Box(db, settings=Settings(event_types=types))
    properties = orjson.dumps({str(i) + "\U0001f642" * 40: "\U0001f642" * 100 for i in range(8)}).decode()
    for event_type in sorted(types):
        records = [
            {"id": f"{event_type}-{i}-" + "\U0001f642" * 300, "user_id": USER, "time": int(NOW) - i,
             "name": "\U0001f642" * 200, "properties": properties}
            for i in range(5)
        ]  # fmt: skip
        report = box.file(event_type, records)
        assert report.updated == 1
        item = box.item(PROFILE_PREFIX + USER)
        assert len(item["profile"]["S"].encode()) <= 100_000
    redelivered = box.file(sorted(types)[-1], records)
    assert redelivered.unchanged == 1  # long event ids are still recognised


def test_a_profile_the_table_rejects_fails_that_user_only(db: Any) -> None:
    box = Box(db)
    save = box.table.save_profile

    def rejecting(profile: Any, ttl: int) -> bool:
        if profile.user_id == "bad":
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "too large"}}, "PutItem")
        return save(profile, ttl)

    box.table.save_profile = rejecting  # type: ignore[method-assign]
    report = box.file(PURCHASE, [event(PURCHASE, 1), event(PURCHASE, 2, user="bad")])
    assert report.updated == 1 and report.rejected == 1
    assert box.table.get_profile(USER) is not None


def test_long_property_keys_do_not_collide() -> None:
    from currents_personalizer.profile import _bounded

    keys = ["a" * 40 + "_first", "a" * 40 + "_second"]
    kept = _bounded({keys[0]: 1, keys[1]: 2})
    assert len(kept) == 2 and sorted(kept.values()) == [1, 2] and all(len(k) <= 40 for k in kept)


def test_a_user_id_shaped_like_a_profile_key_is_not_attributed(db: Any) -> None:
    box = Box(db)
    box.file(PURCHASE, [event(PURCHASE, 1)])
    box.deliver()
    before = box.item(PROFILE_PREFIX + USER)
    report = box.file(CUSTOM_EVENT, [event(CUSTOM_EVENT, 1, user=PROFILE_PREFIX + USER), event(CUSTOM_EVENT, 2)])
    assert report.unattributed == 1 and report.users == 1
    assert box.item(PROFILE_PREFIX + PROFILE_PREFIX + USER) == {}  # nothing written under the odd id
    assert box.table.get_profile(USER) is not None and before["profile"] != box.item(PROFILE_PREFIX + USER)["profile"]
    with pytest.raises(ValueError):
        decode_message({"user_id": PROFILE_PREFIX + USER})


def test_a_malformed_profile_item_is_replaced_not_fatal(db: Any) -> None:
    box = Box(db)
    db.put_item(
        TableName="content",
        Item={"user_id": {"S": PROFILE_PREFIX + USER}, "profile": {"S": "not json"}, "version": {"N": "3"}},
    )
    db.put_item(TableName="content", Item={"user_id": {"S": PROFILE_PREFIX + "other"}, "content": {"S": "{}"}})
    report = box.file(PURCHASE, [event(PURCHASE, 1), event(PURCHASE, 2, user="other")])
    assert report.updated == 2 and report.scheduled == 2
    profile = box.table.get_profile(USER)
    assert profile is not None and set(profile.events) == {PURCHASE}
    assert box.deliver().generated == 2


def test_a_profile_item_whose_version_is_not_a_number_is_replaced(db: Any) -> None:
    box = Box(db)
    item = {"user_id": {"S": PROFILE_PREFIX + USER}, "profile": {"S": "{broken"}, "version": {"S": "3"}}
    db.put_item(TableName="content", Item=item)
    assert box.file(PURCHASE, [event(PURCHASE, 1)]).updated == 1
    profile = box.table.get_profile(USER)
    assert profile is not None and set(profile.events) == {PURCHASE}


def test_a_duplicate_message_racing_past_the_cooldown_check_does_not_call_the_model_again(db: Any) -> None:
    box = Box(db)
    other = Box(db, generator=box.generator)
    box.file(PURCHASE, [event(PURCHASE, 1)])
    claim = box.table.claim

    def racing_claim(user_id: str, owner: str, seconds: int, **kw: Any) -> bool:
        # SQS delivered the message twice: the other copy generates between this one's cooldown
        # read and its claim.
        other.clock.now = box.clock.now
        assert other.personalizer.generate(user_id, "other") == Outcome("generated")
        return claim(user_id, owner, seconds, **kw)

    box.table.claim = racing_claim  # type: ignore[method-assign]
    assert box.deliver().skipped_claimed == 1
    assert len(box.generator.calls) == 1
