"""A Currents period at scale. Prints one JSON object.

``moto``: every file of a period through the real personalizer handler and content-table adapter on
moto server, then every scheduled generation: users/s merging a file (batched profile reads,
parallel conditional writes, batched delayed messages) against a bare BatchGetItem loop reading the
same keys from the same table in the same run. moto answers far slower than DynamoDB (and this
machine is shared), so this runs at a size that finishes; the ratio to the bare loop is the figure.

``period``: the same period for 100k users through the same ``Personalizer`` code on an in-memory
table with DynamoDB's conditional-write semantics: generations per user and model calls per user
for SessionStart, Purchase and CustomEvent files, then the CustomEvent file delivered again.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import orjson

from sandbox import currents_sample
from sandbox.currents import BUCKET, PREFIX, TABLE, CurrentsSandbox
from sandbox.importer import FakeContext

CUSTOM, PURCHASE, SESSION = (
    "users.behaviors.CustomEvent",
    "users.behaviors.Purchase",
    currents_sample.SESSION_START,
)


def period_files(out: Path, users: int, start: int) -> list[Path]:
    def rows(event_type: str, every: int, per_user: int, offset: int) -> list[dict[str, Any]]:
        rows = []
        for u in range(0, users, every):
            for n in range(per_user):
                row: dict[str, Any] = {
                    "id": f"{event_type[-5:]}-{u}-{n}",
                    "user_id": f"braze-{u:06d}",
                    "external_user_id": f"customer-{u:06d}",
                    "time": start + offset + n,
                    "app_id": "app-1",
                }
                if event_type == SESSION:
                    row["session_id"] = f"s{u}"
                elif event_type == PURCHASE:
                    row |= {"product_id": "Ocean Lab season pass", "price": 9.99, "currency": "USD"}
                else:
                    row |= {"name": "watched_episode", "properties": orjson.dumps({"show": "Ocean Lab"}).decode()}
                rows.append(row)
        return rows

    hour = time.strftime("%Y-%m-%d-%H", time.gmtime(start))
    return [
        currents_sample.write(out / currents_sample.key(t, hour, "00000"), t, rows(t, every, per_user, offset))
        for t, every, per_user, offset in ((SESSION, 1, 1, 0), (PURCHASE, 2, 1, 120), (CUSTOM, 1, 2, 240))
    ]


class Counting:
    """The offline template, counting calls as the model would be called."""

    model_id = "offline-template-v1"

    def __init__(self) -> None:
        from currents_personalizer.generators import OfflineGenerator

        self._inner = OfflineGenerator()
        self.calls = 0
        self._lock = threading.Lock()

    def generate(self, activity: Any, *, deadline: float | None = None) -> Any:
        with self._lock:
            self.calls += 1
        return self._inner.generate(activity)


def run(users: int) -> dict[str, Any]:
    out = Path(".bench/currents-period")
    files = period_files(out, users, int(time.time()) - 1800)
    with CurrentsSandbox() as box:
        from currents_personalizer import handler as personalizer_module

        counting = Counting()
        personalizer = personalizer_module._personalizer()
        personalizer.generator = counting
        keys = box.upload(files)
        merge_seconds = []
        for key in [*keys, keys[-1]]:  # the CustomEvent file is delivered twice
            event = {"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": urllib.parse.quote_plus(key)}}}]}
            start = time.perf_counter()
            personalizer_module.handler(event, FakeContext(300, "bench-currents-personalizer"))
            merge_seconds.append(time.perf_counter() - start)
        bare = bare_batch_get(users)
        start = time.perf_counter()
        outcomes = drain(box, personalizer)
        generate_seconds = time.perf_counter() - start
    generated = outcomes.get("generated", 0)
    return {
        "users": users,
        "files": len(keys) + 1,
        "session_start_file_users_per_s": users / merge_seconds[0],
        "custom_event_file_users_per_s": users / merge_seconds[2],
        "redelivered_file_users_per_s": users / merge_seconds[3],
        "file_seconds": [round(s, 1) for s in merge_seconds],
        "bare_batch_get_users_per_s": bare,
        "generations": generated,
        "generations_per_user": generated / users,
        "model_calls": counting.calls,
        "model_calls_per_user": counting.calls / users,
        "outcomes": outcomes,
        "generation_seconds": round(generate_seconds, 1),
        "prefix": PREFIX,
    }


def bare_batch_get(users: int) -> float:
    """The floor: BatchGetItem pages of 100 keys, one after another, over the same profile items."""
    db = boto3.client("dynamodb")
    keys = [{"user_id": {"S": f"#profile#braze-{u:06d}"}} for u in range(users)]
    start = time.perf_counter()
    for i in range(0, users, 100):
        page = keys[i : i + 100]
        while page:
            result = db.batch_get_item(RequestItems={TABLE: {"Keys": page, "ConsistentRead": True}})
            page = result.get("UnprocessedKeys", {}).get(TABLE, {}).get("Keys", [])
    return users / (time.perf_counter() - start)


def drain(box: CurrentsSandbox, personalizer: Any) -> dict[str, int]:
    """Every scheduled message through ``generate``, eight at a time (the generator's bounded
    concurrency), as SQS would deliver them (the sandbox's settle window is 0)."""
    outcomes: dict[str, int] = {}
    lock = threading.Lock()

    def worker(_: int) -> None:
        sqs = boto3.client("sqs")
        while True:
            messages = sqs.receive_message(QueueUrl=box.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return
            for m in messages:
                outcome = personalizer.generate(orjson.loads(m["Body"])["user_id"], m["MessageId"]).name
                with lock:
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
            sqs.delete_message_batch(
                QueueUrl=box.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(worker, range(8)))
    return outcomes


class MemoryTable:
    """The content table's contract in memory, with its conditions (version, claim, source version)."""

    def __init__(self, clock: Any) -> None:
        self.content: dict[str, Any] = {}
        self.profiles: dict[str, tuple[str, int, int | None, int | None]] = {}
        self.intents: dict[str, int] = {}
        self.claims: dict[str, tuple[str, float]] = {}
        self.clock = clock
        self.lock = threading.Lock()

    def get(self, user_id: str) -> Any:
        return self.content.get(user_id)

    def claim(self, user_id: str, owner: str, seconds: int, *, generated_before: int | None = None) -> bool:
        with self.lock:
            holder = self.claims.get(user_id)
            if holder and holder[0] != owner and holder[1] >= self.clock():
                return False
            stored = self.content.get(user_id)
            if generated_before is not None and stored is not None and stored.generated_at > generated_before:
                return False
            self.claims[user_id] = (owner, self.clock() + seconds)
            return True

    def put(self, **item: Any) -> bool:
        from currents_personalizer.store import StoredContent

        with self.lock:
            current = self.content.get(item["user_id"])
            if current is not None and current.source_time >= item["source_version"]:
                return False
            self.claims.pop(item["user_id"], None)
            self.content[item["user_id"]] = StoredContent(
                item["user_id"],
                item["external_id"],
                item["content"],
                int(self.clock()),
                item["source_version"],
                item["model_id"],
                int(self.clock()) + item["ttl_seconds"],
            )  # fmt: skip  (source_time holds the source version here)
            return True

    def get_profile(self, user_id: str) -> Any:
        from currents_personalizer.profile import Profile

        found = self.profiles.get(user_id)
        if found is None:
            return None
        text, version, pending, scheduled = found
        return Profile.from_json(
            user_id, text, version=version, pending_since=pending, scheduled_at=scheduled,
            intent=self.intents.get(user_id, 0),
        )  # fmt: skip

    def get_profiles(self, user_ids: Any) -> dict[str, Any]:
        return {u: p for u in user_ids if (p := self.get_profile(u)) is not None}

    def save_profile(self, profile: Any, ttl_seconds: int) -> bool:
        with self.lock:
            current = self.profiles.get(profile.user_id)
            if (current[1] if current else 0) != profile.version:
                return False
            profile.version += 1
            self.intents[profile.user_id] = profile.intent
            self.profiles[profile.user_id] = (
                profile.to_json(),
                profile.version,
                profile.pending_since,
                profile.scheduled_at,
            )
            return True

    def settle(self, user_id: str, intent: int) -> bool:
        with self.lock:
            text, current, _, _ = self.profiles[user_id]
            if self.intents.get(user_id, 0) != intent:
                return False
            self.profiles[user_id] = (text, current + 1, None, None)
            return True

    def reschedule(self, user_id: str, version: int, at: int) -> bool:
        with self.lock:
            text, current, pending, _ = self.profiles[user_id]
            if current != version:
                return False
            self.profiles[user_id] = (text, current, pending, at)
            return True


class MemoryQueue:
    def __init__(self) -> None:
        self.messages: list[tuple[dict[str, Any], int]] = []
        self.lock = threading.Lock()

    def send(self, messages: list[dict[str, Any]], *, delay_seconds: int = 0) -> None:
        with self.lock:
            self.messages += [(m, delay_seconds) for m in messages]


def period_in_memory(users: int) -> dict[str, Any]:
    import fastavro
    from currents_personalizer.content import OutputPolicy
    from currents_personalizer.events import event_type_from_key
    from currents_personalizer.generators import OfflineGenerator
    from currents_personalizer.personalize import Personalizer, Report, Settings

    now = [time.time()]
    clock = lambda: now[0]  # noqa: E731
    table, queue, counting = MemoryTable(clock), MemoryQueue(), Counting()
    personalizer = Personalizer(
        table=table, generator=counting, fallback=OfflineGenerator(), policy=OutputPolicy(),
        settings=Settings(), queue=queue, clock=clock,
    )  # fmt: skip
    out = Path(".bench/currents-period-memory")
    files = period_files(out, users, int(now[0]) - 1800)
    report = Report()
    start = time.perf_counter()
    for path in [*files, files[-1]]:  # the CustomEvent file is delivered twice
        with path.open("rb") as f:
            event_type = event_type_from_key(str(path.relative_to(out)))
            assert event_type is not None
            report.add(personalizer.process_file(fastavro.reader(f), event_type))  # type: ignore[arg-type]
        now[0] += 120  # Currents writes the next file minutes later
    merge_seconds = time.perf_counter() - start
    now[0] += 300  # the settle window
    messages, queue.messages = queue.messages, []
    for message, _ in messages:
        report.count(personalizer.generate(message["user_id"], "msg").name)
    generated = report.generated
    return {
        "users": users,
        "files": len(files) + 1,
        "scheduled": report.scheduled,
        "generations": generated,
        "generations_per_user": generated / users,
        "model_calls": counting.calls,
        "model_calls_per_user": counting.calls / users,
        "merge_users_per_s": users * (len(files) + 1) / merge_seconds,
    }


if __name__ == "__main__":
    moto_users = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    period_users = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    print(json.dumps({"period": period_in_memory(period_users), "moto": run(moto_users)}))
