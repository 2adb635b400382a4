"""One generation per user who needs one: freshness, cooldown, claims, caps, fan-out, failures."""

from __future__ import annotations

from typing import Any

from currents_personalizer.content import Content, Details, OutputPolicy
from currents_personalizer.events import UserActivity
from currents_personalizer.generators import OfflineGenerator
from currents_personalizer.personalize import Personalizer, Settings, decode_activity, encode_activity
from currents_personalizer.store import StoredContent

from sandbox import currents_sample

CUSTOM = "users.behaviors.CustomEvent"


class MemoryTable:
    def __init__(self, clock: Any) -> None:
        self.items: dict[str, StoredContent] = {}
        self.claims: dict[str, tuple[str, float]] = {}
        self.clock = clock

    def get(self, user_id: str) -> StoredContent | None:
        return self.items.get(user_id)

    def claim(self, user_id: str, owner: str, seconds: int) -> bool:
        holder = self.claims.get(user_id)
        if holder and holder[0] != owner and holder[1] > self.clock():
            return False
        self.claims[user_id] = (owner, self.clock() + seconds)
        return True

    def put(self, **item: Any) -> bool:  # the real table's keyword arguments
        current = self.items.get(item["user_id"])
        if current and current.source_time >= item["source_time"]:
            return False
        self.claims.pop(item["user_id"], None)
        self.items[item["user_id"]] = StoredContent(
            item["user_id"], item["external_id"], item["content"], int(self.clock()), item["source_time"],
            item["model_id"], int(self.clock()) + item["ttl_seconds"],
        )  # fmt: skip
        return True


class CountingGenerator(OfflineGenerator):
    model_id = "counting"

    def __init__(self, fail: bool = False, text: str | None = None) -> None:
        self.calls = 0
        self.fail = fail
        self.text = text

    def generate(self, activity: UserActivity) -> Content:
        self.calls += 1
        if self.fail:
            raise RuntimeError("model unavailable")
        content = super().generate(activity)
        if self.text:
            return content.model_copy(update={"details": Details(intro=self.text, episode_details="e", cta="c")})
        return content


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Queue:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, messages: list[dict[str, Any]]) -> None:
        self.messages.extend(messages)


class Budget:
    def __init__(self, left: int) -> None:
        self.left = left

    def take(self) -> bool:
        self.left -= 1
        return self.left >= 0


def make(generator: Any = None, **kw: Any) -> tuple[Personalizer, MemoryTable, Clock]:
    clock = Clock()
    table = MemoryTable(clock)
    personalizer = Personalizer(
        table=table,
        generator=generator or CountingGenerator(),
        fallback=OfflineGenerator(),
        policy=OutputPolicy(),
        settings=kw.pop("settings", Settings(cooldown_seconds=600)),
        clock=clock,
        **kw,
    )
    return personalizer, table, clock


def test_one_generation_per_user_not_per_event() -> None:
    records = currents_sample.records(CUSTOM, users=7, events=200)
    personalizer, table, _ = make()
    report = personalizer.process_file(records, CUSTOM, "file-1")
    assert report.users == 7 and report.generated == 7
    assert personalizer.generator.calls == 7  # type: ignore[attr-defined]
    assert {s.source_time for s in table.items.values()} <= {r["time"] for r in records}


def test_the_same_events_again_generate_nothing() -> None:
    records = currents_sample.records(CUSTOM, users=5, events=50)
    personalizer, _, clock = make()
    personalizer.process_file(records, CUSTOM, "file-1")
    clock.now += 10_000
    again = personalizer.process_file(records[-10:], CUSTOM, "file-2")  # redelivered duplicates
    assert again.generated == 0 and again.skipped_fresh == again.users


def test_newer_events_generate_again_only_after_the_cooldown() -> None:
    records = currents_sample.records(CUSTOM, users=1, events=5)
    personalizer, _, clock = make()
    personalizer.process_file(records, CUSTOM, "file-1")
    newer = [{**r, "id": r["id"] + "-n", "time": r["time"] + 1000} for r in records]
    assert personalizer.process_file(newer, CUSTOM, "file-2").skipped_fresh == 1  # within the cooldown
    clock.now += 601
    assert personalizer.process_file(newer, CUSTOM, "file-3").generated == 1


def test_a_user_claimed_by_another_file_is_left_to_it() -> None:
    records = currents_sample.records(CUSTOM, users=1, events=3)
    personalizer, table, _ = make()
    table.claim(records[0]["user_id"], "other-file", 60)
    assert personalizer.process_file(records, CUSTOM, "file-1").skipped_claimed == 1


def test_files_with_many_users_fan_out_through_the_queue() -> None:
    records = currents_sample.records(CUSTOM, users=50, events=300)
    queue = Queue()
    personalizer, table, _ = make(queue=queue, settings=Settings(max_inline_users=10))
    report = personalizer.process_file(records, CUSTOM, "file-1")
    assert report.queued == 50 and report.generated == 0 and not table.items
    generator_side, generated_table, _ = make()
    outcomes = [generator_side.generate_one(decode_activity(m), "msg") for m in queue.messages]
    assert outcomes.count("generated") == 50 and len(generated_table.items) == 50


def test_messages_round_trip_the_activity() -> None:
    from currents_personalizer.events import group_by_user

    records = currents_sample.records(CUSTOM, users=1, events=4)
    activity = next(iter(group_by_user(records, CUSTOM)[0].values()))
    decoded = decode_activity(encode_activity(activity))
    assert decoded.recent() == activity.recent() and decoded.newest_time == activity.newest_time


def test_hourly_cap_switches_to_offline_content() -> None:
    records = currents_sample.records(CUSTOM, users=6, events=60)
    generator = CountingGenerator()
    personalizer, table, _ = make(generator, budget=Budget(2))
    report = personalizer.process_file(records, CUSTOM, "file-1")
    assert (report.generated, report.capped) == (2, 4) and generator.calls == 2
    assert sum(1 for s in table.items.values() if s.model_id == "offline-template-v1") == 4


def test_policy_violations_are_replaced_and_model_failures_store_nothing() -> None:
    records = currents_sample.records(CUSTOM, users=3, events=9)
    personalizer, table, _ = make(CountingGenerator(text="visit https://x.example.com"))
    assert personalizer.process_file(records, CUSTOM, "f").policy_fallbacks == 3
    assert all("https" not in str(s.content) for s in table.items.values())
    failing, table2, _ = make(CountingGenerator(fail=True))
    report = failing.process_file(records, CUSTOM, "f")
    assert report.failed == 3 and not table2.items and failing.errors
