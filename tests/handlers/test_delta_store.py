"""The per-user delta records in DynamoDB (moto) and in memory: same promises from both stores."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from braze_importer.delta_store import (
    DeltaStore,
    DeltaStoreUnavailable,
    DynamoDeltaStore,
    MemoryDeltaStore,
    record_from_item,
)
from braze_importer.deltas import NEVER, UNKNOWN, Changes, Record, apply, diff, digest, unanswered, user_key
from moto import mock_aws

pytestmark = pytest.mark.usefixtures("aws_env")

TTL = 40 * 86400.0
MAX_AGE = 30 * 86400.0
T0 = 1_800_000_000.0


def create_deltas_table(client: Any, name: str = "deltas") -> None:
    """The table the CDK construct must create: pk string, TTL on expires_at, on demand."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})


@pytest.fixture
def dynamo(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb")
        create_deltas_table(client)
        yield client


@pytest.fixture(params=["dynamodb", "memory"])
def store(request: pytest.FixtureRequest, aws_env: None) -> Iterator[DeltaStore]:
    if request.param == "memory":
        yield MemoryDeltaStore()
        return
    with mock_aws():
        client = boto3.client("dynamodb")
        create_deltas_table(client)
        yield DynamoDeltaStore(client, "deltas", ttl_seconds=TTL)


USER = {
    "external_id": "u1",
    "first_name": "Ada",
    "age": 36,
    "vip": True,
    "tags": ["b", "a", "a"],
    "scores": [1, 2, 3],
    "orders": [{"id": 1, "total": 9.5}],
    "address": {"city": "Paris", "geo": {"lat": 48.8, "lon": 2.3}, "empty": {}},
}


def send(store: DeltaStore, obj: dict[str, Any], now: float, *, full: bool = False) -> dict[str, Any] | None:
    """What the engine will do: read, diff, (Braze accepts), commit."""
    key = user_key(obj)
    assert key is not None
    record = store.get_many([key]).get(key)
    delta = diff(obj, record, now=now, max_age_seconds=MAX_AGE, full=full)
    if delta.changes is not None:
        store.commit(key, delta.changes, now)
    return delta.send


def test_a_record_reads_back_as_it_was_committed(store: DeltaStore) -> None:
    send(store, USER, T0)
    record = store.get_many(["e:u1"])["e:u1"]
    assert record.updated_at == T0
    assert record.values["first_name"] == digest("Ada")
    assert record.values["tags"] == frozenset({"a", "b"})
    assert record.values["scores"] == digest([1, 2, 3])
    assert record.values["address"] == {
        '["city"]': digest("Paris"),
        '["geo","lat"]': digest(48.8),
        '["geo","lon"]': digest(2.3),
        '["empty"]': digest({}),
        "*": digest(USER["address"]),
    }
    assert send(store, USER, T0 + 60) is None  # the same snapshot again: nothing to send
    assert store.get_many(["e:nobody"]) == {}


def test_the_item_layout(dynamo: Any) -> None:
    store = DynamoDeltaStore(dynamo, "deltas", ttl_seconds=TTL)
    send(store, USER, T0)
    item = dynamo.get_item(TableName="deltas", Key={"pk": {"S": "e:u1"}})["Item"]
    assert set(item) == {"pk", "updated_at", "v", "expires_at"} | {f"a.{n}" for n in USER if n != "external_id"}
    assert item["v"] == {"N": "1"}
    assert item["expires_at"] == {"N": str(int(T0 + TTL))}
    assert item["a.age"] == {"B": digest(36)}
    assert item["a.tags"] == {"L": [{"S": "a"}, {"S": "b"}]}
    assert item["a.address"]["M"]['["geo","lat"]'] == {"B": digest(48.8)}
    assert record_from_item(item) == store.get_many(["e:u1"])["e:u1"]


def test_a_change_writes_only_what_changed_and_keeps_the_refresh_time(dynamo: Any) -> None:
    store = DynamoDeltaStore(dynamo, "deltas", ttl_seconds=TTL)
    send(store, USER, T0)
    changed = {**USER, "age": 37, "tags": ["a", "c"], "address": {"city": "Lyon", "geo": {"lat": 48.8}}}
    sent = send(store, changed, T0 + 3600)
    assert sent == {
        "external_id": "u1",
        "age": 37,
        "tags": {"add": ["c"], "remove": ["b"]},
        "address": {"city": "Lyon", "geo": {"lon": None}, "empty": None},
        "_merge_objects": True,
    }
    item = dynamo.get_item(TableName="deltas", Key={"pk": {"S": "e:u1"}})["Item"]
    assert item["updated_at"] == {"N": repr(T0)}  # only a whole rewrite moves it (the maximum age counts from it)
    assert item["expires_at"] == {"N": str(int(T0 + TTL))}
    assert item["a.first_name"] == {"B": digest("Ada")}
    record = store.get_many(["e:u1"])["e:u1"]
    assert record.values["address"] == {
        '["city"]': digest("Lyon"),
        '["geo","lat"]': digest(48.8),
        "*": digest(changed["address"]),
    }
    assert send(store, changed, T0 + 7200) is None


def test_concurrent_runs_on_one_user_leave_what_the_later_write_set_unknown(store: DeltaStore) -> None:
    send(store, USER, T0)
    record = store.get_many(["e:u1"])["e:u1"]
    one = diff({**USER, "age": 40}, record, now=T0 + 1, max_age_seconds=MAX_AGE)
    two = diff({**USER, "first_name": "Grace", "tags": ["z"]}, record, now=T0 + 1, max_age_seconds=MAX_AGE)
    assert one.changes is not None and two.changes is not None
    store.commit("e:u1", one.changes, T0 + 2)
    store.commit("e:u1", two.changes, T0 + 2)  # read before the first write: conditional on the version
    after = store.get_many(["e:u1"])["e:u1"]
    assert after.values["age"] == digest(40)
    assert after.values["first_name"] == UNKNOWN and after.values["tags"] == UNKNOWN  # resent next time
    assert after.values["address"] == record.values["address"]


@pytest.mark.parametrize("many", [False, True])
def test_a_rewrite_that_puts_the_same_value_back_still_fails_a_delta_read_before_it(
    store: DeltaStore, many: bool
) -> None:
    # Braze got the rewrite (age 36) after the delta (age 40), or before: which is unknown. The record
    # must not claim 40 because the value it expected (36) is back.
    send(store, USER, T0)
    record = store.get_many(["e:u1"])["e:u1"]
    delta = diff({**USER, "age": 40}, record, now=T0 + 1, max_age_seconds=MAX_AGE)
    rewrite = diff(USER, record, now=T0 + 1, max_age_seconds=MAX_AGE, full=True)
    assert delta.changes is not None and rewrite.changes is not None
    commit = (
        (lambda key, changes: store.commit_many([(key, changes)], T0 + 2))
        if many
        else (lambda key, changes: store.commit(key, changes, T0 + 2))
    )
    commit("e:u1", rewrite.changes)
    commit("e:u1", delta.changes)
    assert store.get_many(["e:u1"])["e:u1"].values["age"] == UNKNOWN


def test_concurrent_runs_changing_the_same_attribute_leave_it_unrecorded(store: DeltaStore) -> None:
    """Which value Braze kept depends on which request it applied last: the record must not guess."""
    send(store, USER, T0)
    record = store.get_many(["e:u1"])["e:u1"]
    one = diff({**USER, "age": 40, "address": {"city": "Rome"}}, record, now=T0 + 1, max_age_seconds=MAX_AGE)
    two = diff({**USER, "age": 41, "address": {"city": "Oslo"}}, record, now=T0 + 1, max_age_seconds=MAX_AGE)
    assert one.changes is not None and two.changes is not None
    store.commit("e:u1", one.changes, T0 + 2)
    store.commit("e:u1", two.changes, T0 + 2)
    after = store.get_many(["e:u1"])["e:u1"]
    assert after.values["age"] == UNKNOWN
    assert after.values["address"] == UNKNOWN
    assert after.values["first_name"] == digest("Ada")
    assert send(store, {"external_id": "u1", "age": 41}, T0 + 3) == {"external_id": "u1", "age": 41}


def test_concurrent_first_sightings_forget_what_the_second_one_set(store: DeltaStore) -> None:
    one = diff({"external_id": "u1", "a": 1, "b": 1}, None, now=T0, max_age_seconds=MAX_AGE)
    two = diff({"external_id": "u1", "b": 2, "c": None}, None, now=T0, max_age_seconds=MAX_AGE)
    assert one.changes is not None and two.changes is not None
    store.commit("e:u1", one.changes, T0)
    store.commit("e:u1", two.changes, T0)
    after = store.get_many(["e:u1"])["e:u1"]
    assert after.values == {"a": digest(1), "b": UNKNOWN, "c": UNKNOWN}


def test_a_stale_record_is_rewritten_whole(store: DeltaStore) -> None:
    send(store, USER, T0)
    later = T0 + MAX_AGE + 1
    assert send(store, {"external_id": "u1", "age": 36}, later) == {"external_id": "u1", "age": 36}
    record = store.get_many(["e:u1"])["e:u1"]
    assert record.values == {"age": digest(36)}
    assert record.updated_at == later


def test_a_full_send_refreshes_the_record(store: DeltaStore) -> None:
    send(store, USER, T0)
    assert send(store, USER, T0 + 10, full=True) == USER
    assert store.get_many(["e:u1"])["e:u1"].updated_at == T0 + 10


def test_a_user_too_large_to_record_is_forgotten(store: DeltaStore) -> None:
    send(store, USER, T0)
    huge = {"external_id": "u1", "many": [f"item-{i:06d}-{'x' * 40}" for i in range(8000)]}
    assert send(store, huge, T0 + 1) == huge
    stale = store.get_many(["e:u1"])["e:u1"]
    assert stale.updated_at == NEVER
    assert stale.values == {}
    assert send(store, USER, T0 + 2) == USER  # a stale record is ignored: everything is sent, and recorded
    assert store.get_many(["e:u1"])["e:u1"].updated_at == T0 + 2


def test_attribute_names_that_look_like_expression_syntax(store: DeltaStore) -> None:
    odd = {"external_id": "u1", "a.b": 1, "#x": 2, ":y": 3, "pk": 4, "updated_at": 5, "größe 🙂": 6, "SET": 7}
    send(store, odd, T0)
    record = store.get_many(["e:u1"])["e:u1"]
    assert record.updated_at == T0
    assert record.values == {name: digest(v) for name, v in odd.items() if name != "external_id"}
    changed = {**odd, "pk": 40, "updated_at": 50}
    assert send(store, changed, T0 + 1) == {"external_id": "u1", "pk": 40, "updated_at": 50}
    assert store.get_many(["e:u1"])["e:u1"].values["pk"] == digest(40)


def test_a_change_to_many_attributes_is_split_across_updates(dynamo: Any) -> None:
    store = DynamoDeltaStore(dynamo, "deltas", ttl_seconds=TTL)
    first = {"external_id": "u1", **{f"attribute_with_a_long_name_{i:04d}": i for i in range(300)}}
    send(store, first, T0)
    second = {"external_id": "u1", **{f"attribute_with_a_long_name_{i:04d}": -i for i in range(300)}}
    sent = send(store, second, T0 + 1)
    assert sent is not None and len(sent) == 300  # attribute 0 is unchanged (-0 == 0)
    record = store.get_many(["e:u1"])["e:u1"]
    assert record.values == {name: digest(v) for name, v in second.items() if name != "external_id"}


def test_reads_of_more_keys_than_one_batch(store: DeltaStore) -> None:
    for i in range(250):
        send(store, {"external_id": f"u{i}", "n": i}, T0)
    keys = [f"e:u{i}" for i in range(260)] + ["e:u1"]
    found = store.get_many(keys)
    assert set(found) == {f"e:u{i}" for i in range(250)}
    assert found["e:u7"].values == {"n": digest(7)}


class Unprocessing:
    """A DynamoDB client answering BatchGetItem with part of the keys unprocessed, ``rounds`` times."""

    def __init__(self, client: Any, rounds: int) -> None:
        self.client = client
        self.rounds = rounds
        self.calls: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        self.calls.append(len(keys))
        if self.rounds <= 0 or len(keys) < 2:
            answer: dict[str, Any] = self.client.batch_get_item(RequestItems=RequestItems)
            return answer
        self.rounds -= 1
        half = len(keys) // 2
        answer = self.client.batch_get_item(RequestItems={table: {**request, "Keys": keys[:half]}})
        answer["UnprocessedKeys"] = {table: {**request, "Keys": keys[half:]}}
        return answer


def test_unprocessed_keys_are_read_again_after_a_backoff(dynamo: Any) -> None:
    writer = DynamoDeltaStore(dynamo, "deltas", ttl_seconds=TTL)
    for i in range(8):
        send(writer, {"external_id": f"u{i}", "n": i}, T0)
    flaky = Unprocessing(dynamo, rounds=2)
    pauses: list[float] = []
    store = DynamoDeltaStore(flaky, "deltas", ttl_seconds=TTL, sleep=pauses.append)
    found = store.get_many([f"e:u{i}" for i in range(8)])
    assert set(found) == {f"e:u{i}" for i in range(8)}
    assert flaky.calls == [8, 4, 2]
    assert len(pauses) == 2
    assert all(0 <= p <= 2.0 for p in pauses)


def test_keys_left_unprocessed_through_every_try_are_an_error(dynamo: Any) -> None:
    flaky = Unprocessing(dynamo, rounds=100)
    store = DynamoDeltaStore(flaky, "deltas", ttl_seconds=TTL, sleep=lambda _: None, attempts=3)
    with pytest.raises(DeltaStoreUnavailable, match="unprocessed after 3 tries"):
        store.get_many([f"e:u{i}" for i in range(64)])


def test_the_memory_store_is_what_apply_gives_without_concurrency() -> None:
    store = MemoryDeltaStore()
    record: Record | None = None
    for now, obj in enumerate([USER, {**USER, "age": 1, "tags": []}, {**USER, "address": None, "vip": None}]):
        delta = diff(obj, record, now=T0 + now, max_age_seconds=MAX_AGE)
        if delta.changes is not None:
            record = apply(record, delta.changes)
            store.commit("e:u1", delta.changes, T0 + now)
        assert store.get_many(["e:u1"]).get("e:u1") == record


def test_an_unanswered_object_leaves_its_attributes_unknown(store: DeltaStore) -> None:
    send(store, USER, T0)
    record = store.get_many(["e:u1"])["e:u1"]
    delta = diff({**USER, "age": 50}, record, now=T0 + 1, max_age_seconds=MAX_AGE)
    changes = unanswered(delta)
    assert changes is not None
    store.commit("e:u1", changes, T0 + 1)
    after = store.get_many(["e:u1"])["e:u1"]
    assert after.values["age"] == UNKNOWN
    assert after.values["first_name"] == digest("Ada")
    # Braze may hold 36 or 50: whichever the next file says is sent.
    assert send(store, USER, T0 + 2) == {"external_id": "u1", "age": 36}


def test_a_rewrite_whole_does_not_erase_what_another_run_left_unknown(store: DeltaStore) -> None:
    one = diff({"external_id": "u1", "a": 1}, None, now=T0, max_age_seconds=MAX_AGE)
    two = diff({"external_id": "u1", "a": 2}, None, now=T0, max_age_seconds=MAX_AGE)
    lost = unanswered(two)
    assert one.changes is not None and lost is not None
    store.commit("e:u1", lost, T0)  # Braze may have applied a=2 after a=1
    store.commit("e:u1", one.changes, T0)
    assert store.get_many(["e:u1"])["e:u1"].values == {"a": UNKNOWN}


def _random_attributes(rng: random.Random) -> dict[str, Any]:
    def value(depth: int) -> Any:
        kind = rng.randrange(7 if depth < 2 else 5)
        if kind == 0:
            return None
        if kind == 1:
            return rng.choice([0, 1, "a", "b", True, 2.5])
        if kind == 2:
            return [rng.choice("xyzw") for _ in range(rng.randrange(4))]
        if kind == 3:
            return [rng.randrange(3) for _ in range(1 + rng.randrange(3))]
        if kind == 4:
            return {"inc": 1}
        return {k: value(depth + 1) for k in rng.sample(["k1", "k2", "k3"], rng.randrange(4))}

    return {name: value(0) for name in rng.sample(["a", "b", "c", "d", "e"], rng.randrange(6))}


def claims(store: DeltaStore, key: str) -> tuple[dict[str, Any], float] | None:
    """A record without its version (DynamoDB may count more writes than the memory store: chunks)."""
    record = store.get_many([key]).get(key)
    return None if record is None else (record.values, record.updated_at)


def test_the_dynamodb_store_keeps_the_memory_stores_promises(dynamo: Any) -> None:
    """Random races of two runs on one user (each accepted, rejected or unanswered; commits in either
    order), committed to both stores: both end with the same record.

    Versions are not compared: DynamoDB may write an object's changes in several updates, each counting."""
    rng = random.Random(1717)
    dynamodb = DynamoDeltaStore(dynamo, "deltas", ttl_seconds=TTL)
    memory = MemoryDeltaStore()
    for case in range(150):
        key = f"e:u{case}"
        base = {"external_id": f"u{case}", **_random_attributes(rng)}
        start = diff(base, None, now=T0, max_age_seconds=MAX_AGE)
        assert start.changes is not None
        for store in (dynamodb, memory):
            store.commit(key, start.changes, T0)
        record = memory.get_many([key]).get(key)
        assert claims(dynamodb, key) == claims(memory, key), case
        runs = [{"external_id": f"u{case}", **_random_attributes(rng)} for _ in range(2)]
        full = rng.random() < 0.2
        deltas = [diff(obj, record, now=T0 + 1, max_age_seconds=MAX_AGE, full=full) for obj in runs]
        commits = []
        for delta in deltas:
            outcome = rng.choice(["accepted", "rejected", "unanswered"])
            changes = delta.changes if outcome == "accepted" else unanswered(delta) if outcome == "unanswered" else None
            if changes is not None:
                commits.append(changes)
        rng.shuffle(commits)
        for changes in commits:
            for store in (dynamodb, memory):
                store.commit(key, changes, T0 + 2)
        assert claims(dynamodb, key) == claims(memory, key), case


# -- batched commits ---------------------------------------------------------------------------


class Transactions:
    """A DynamoDB client recording each TransactWriteItems call (its keys, and "applied" or the error's
    code); the first calls are answered with the cancellation reasons in ``cancel`` (one list per call,
    one code per action) instead of reaching the table."""

    def __init__(self, client: Any, cancel: list[list[str]] | None = None) -> None:
        self.client = client
        self.cancel = list(cancel or [])
        self.calls: list[tuple[list[str], str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def transact_write_items(self, **request: Any) -> dict[str, Any]:
        keys = [
            (a.get("Put", {}).get("Item") or a.get("Update", {}).get("Key"))["pk"]["S"]
            for a in request["TransactItems"]
        ]
        assert len(set(keys)) == len(keys) <= 100
        assert request["ClientRequestToken"]
        if self.cancel:
            codes = self.cancel.pop(0)
            self.calls.append((keys, "cancelled here"))
            reasons = [{"Code": code} for code in codes]
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                    "CancellationReasons": reasons,
                },
                "TransactWriteItems",
            )
        try:
            answer: dict[str, Any] = self.client.transact_write_items(**request)
        except ClientError as exc:
            self.calls.append((keys, exc.response["Error"]["Code"]))
            raise
        self.calls.append((keys, "applied"))
        return answer


def items(client: Any, table: str) -> dict[str, dict[str, Any]]:
    pages = client.get_paginator("scan").paginate(TableName=table)
    return {item["pk"]["S"]: item for page in pages for item in page["Items"]}


def _changes(rng: random.Random, user: str, record: Record | None, attributes: dict[str, Any]) -> Changes | None:
    """What one run commits for a user: its object accepted, sent in full, unanswered, or sent update-only;
    or the record forgotten (a user too large to record)."""
    obj = {"external_id": user, **attributes}
    kind = rng.choice(["accepted", "accepted", "full", "unanswered", "update only", "forget"])
    if kind == "forget":
        return Changes(remove=list(dict.fromkeys([*(record.values if record else ()), *attributes])), forget=True)
    if kind == "update only":
        obj["_update_existing_only"] = True
    delta = diff(obj, record, now=T0 + 1, max_age_seconds=MAX_AGE, full=kind == "full")
    return unanswered(delta) if kind == "unanswered" else delta.changes


def _wide(rng: random.Random) -> dict[str, Any]:
    """More attributes than one update takes."""
    return {f"w{i:02d}": rng.randrange(3) for i in range(60)}


def test_a_batched_commit_writes_what_commits_one_by_one_write(dynamo: Any) -> None:
    """Given 150 users (most with a record, some too wide for one update), each with what a run commits
    (refreshes, updates, unknowns, forgets), a fifth of them changed by another run since they were read,
    some twice in the batch; when one table takes the commits one by one and the other all at once,
    then both tables hold the same items, versions included."""
    rng = random.Random(1789)
    create_deltas_table(dynamo, "batched")
    recorder = Transactions(dynamo)
    single = DynamoDeltaStore(dynamo, "deltas", ttl_seconds=TTL)
    batched = DynamoDeltaStore(recorder, "batched", ttl_seconds=TTL)
    users = [f"u{i}" for i in range(150)]
    wide = set(rng.sample(users, 10))
    attributes = {user: _wide(rng) if user in wide else _random_attributes(rng) for user in users}
    for user in users:
        start = diff({"external_id": user, **attributes[user]}, None, now=T0, max_age_seconds=MAX_AGE)
        if start.changes is not None and rng.random() < 0.8:
            for store in (single, batched):
                store.commit(f"e:{user}", start.changes, T0)
    records = single.get_many(f"e:{user}" for user in users)

    work: list[tuple[str, Changes]] = []
    others: list[tuple[str, Changes]] = []
    for user in users:
        key, record = f"e:{user}", records.get(f"e:{user}")
        new = _wide(rng) if user in wide else _random_attributes(rng)
        changes = _changes(rng, user, record, new)
        if changes is None:
            continue
        work.append((key, changes))
        if rng.random() < 0.2:
            other = _changes(rng, user, record, _wide(rng) if user in wide else _random_attributes(rng))
            if other is not None:
                others.append((key, other))
        if rng.random() < 0.1:
            again = _changes(rng, user, record if rng.random() < 0.5 else apply(record, changes), new)
            if again is not None:
                work.append((key, again))
    rng.shuffle(work)
    assert len(work) > 100 and len({key for key, _ in work}) < len(work)

    for key, changes in others:  # another run, between the read and the commit
        for store in (single, batched):
            store.commit(key, changes, T0 + 1)
    for key, changes in work:
        single.commit(key, changes, T0 + 2)
    assert batched.commit_many(work, T0 + 2) == 0

    assert items(dynamo, "batched") == items(dynamo, "deltas")
    outcomes = [outcome for _, outcome in recorder.calls]
    assert outcomes.count("applied") >= 2 and "TransactionCanceledException" in outcomes
    assert set(outcomes) == {"applied", "TransactionCanceledException"}


def test_one_conflicting_user_does_not_hold_back_the_others_in_its_transaction(dynamo: Any) -> None:
    recorder = Transactions(dynamo)
    store = DynamoDeltaStore(recorder, "deltas", ttl_seconds=TTL)
    for i in range(5):
        send(store, {"external_id": f"u{i}", "age": 30}, T0)
    records = store.get_many(f"e:u{i}" for i in range(5))
    work = []
    for i in range(5):
        changes = diff({"external_id": f"u{i}", "age": 40 + i}, records[f"e:u{i}"], now=T0 + 1, max_age_seconds=MAX_AGE)
        assert changes.changes is not None
        work.append((f"e:u{i}", changes.changes))
    send(store, {"external_id": "u2", "age": 99}, T0 + 1)  # another run changed u2 since it was read
    recorder.calls.clear()

    assert store.commit_many(work, T0 + 2) == 0

    found = store.get_many(f"e:u{i}" for i in range(5))
    assert {key: record.values["age"] for key, record in found.items()} == {
        "e:u0": digest(40),
        "e:u1": digest(41),
        "e:u2": UNKNOWN,
        "e:u3": digest(43),
        "e:u4": digest(44),
    }
    assert recorder.calls == [
        ([f"e:u{i}" for i in range(5)], "TransactionCanceledException"),
        (["e:u0", "e:u1", "e:u3", "e:u4"], "applied"),
    ]


def _first_sightings(users: int) -> list[tuple[str, Changes]]:
    work = []
    for i in range(users):
        delta = diff({"external_id": f"u{i}", "n": i}, None, now=T0, max_age_seconds=MAX_AGE)
        assert delta.changes is not None
        work.append((f"e:u{i}", delta.changes))
    return work


def test_a_transaction_conflict_is_tried_again_after_a_backoff(dynamo: Any) -> None:
    conflicts = [["None", "TransactionConflict", "None"], ["TransactionConflict", "None", "None"]]
    recorder = Transactions(dynamo, cancel=conflicts)
    pauses: list[float] = []
    store = DynamoDeltaStore(recorder, "deltas", ttl_seconds=TTL, sleep=pauses.append)
    work = [*_first_sightings(3), ("e:u1", Changes(unknown=["n"]))]

    assert store.commit_many(work, T0) == 0

    assert [keys for keys, _ in recorder.calls] == [["e:u0", "e:u1", "e:u2"]] * 3 + [["e:u1"]]
    assert len(pauses) == 2 and all(0 <= p <= 2.0 for p in pauses)
    assert {key: r.values for key, r in store.get_many(f"e:u{i}" for i in range(3)).items()} == {
        "e:u0": {"n": digest(0)},
        "e:u1": {"n": UNKNOWN},  # the key's second write waited for its first
        "e:u2": {"n": digest(2)},
    }


def test_writes_that_keep_failing_are_counted_not_raised(dynamo: Any) -> None:
    recorder = Transactions(dynamo, cancel=[["TransactionConflict", "None"]] * 3)
    store = DynamoDeltaStore(recorder, "deltas", ttl_seconds=TTL, sleep=lambda _: None, attempts=3)

    assert store.commit_many(_first_sightings(2), T0) == 1

    assert set(store.get_many(["e:u0", "e:u1"])) == {"e:u1"}
    assert len(recorder.calls) == 4
    missing = DynamoDeltaStore(dynamo, "no-such-table", ttl_seconds=TTL)
    assert missing.commit_many(_first_sightings(150), T0) == 150


def test_a_user_grown_too_large_in_a_batch_is_forgotten_and_the_others_written(dynamo: Any) -> None:
    """Concurrent runs grew one user's item near DynamoDB's 400 KB: the change that would pass it makes
    the record stale, as one by one, and the rest of its transaction is written."""
    store = DynamoDeltaStore(dynamo, "deltas", ttl_seconds=TTL)
    big = frozenset(f"item-{i:06d}-{'x' * 30}" for i in range(7000))
    store.commit("e:big", Changes(set={"a": big}, refreshed_at=T0), T0)
    grow = Changes(set={"b": frozenset(f"more-{i:06d}-{'y' * 30}" for i in range(3000))}, expected={"b": None})
    work = [*_first_sightings(3), ("e:big", grow)]

    assert store.commit_many(work, T0 + 1) == 0

    found = store.get_many(["e:big", "e:u0", "e:u1", "e:u2"])
    assert found["e:big"].updated_at == NEVER and "b" not in found["e:big"].values
    assert {key: r.values for key, r in found.items() if key != "e:big"} == {
        f"e:u{i}": {"n": digest(i)} for i in range(3)
    }


def test_changes_of_one_user_committed_together_apply_in_order(store: DeltaStore) -> None:
    send(store, USER, T0)
    record = store.get_many(["e:u1"])["e:u1"]
    one = diff({**USER, "age": 40}, record, now=T0 + 1, max_age_seconds=MAX_AGE).changes
    assert one is not None
    two = diff({**USER, "age": 41}, apply(record, one), now=T0 + 1, max_age_seconds=MAX_AGE).changes
    name = diff({**USER, "first_name": "Grace"}, record, now=T0 + 1, max_age_seconds=MAX_AGE).changes
    assert two is not None and name is not None

    assert store.commit_many([("e:u1", one), ("e:u1", two), ("e:u1", name)], T0 + 2) == 0

    after = store.get_many(["e:u1"])["e:u1"]
    assert after.values["age"] == digest(41)  # in the other order, 41's expected version would not be there
    assert after.values["first_name"] == UNKNOWN  # read before both writes: which came last at Braze is unknown


def test_the_memory_store_counts_the_commits_that_failed() -> None:
    class Failing(MemoryDeltaStore):
        def commit(self, key: str, changes: Changes, now: float) -> None:
            if key == "e:u1":
                raise RuntimeError("unreachable")
            super().commit(key, changes, now)

    store = Failing()
    assert store.in_process and not DynamoDeltaStore.in_process
    assert store.commit_many(_first_sightings(3), T0) == 1
    assert set(store.records) == {"e:u0", "e:u2"}


def test_without_transactions_commit_many_writes_one_user_at_a_time(dynamo: Any) -> None:
    store = DynamoDeltaStore(dynamo, "deltas", ttl_seconds=TTL, transactions=False)
    calls: list[str] = []
    dynamo.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    users = [{"external_id": f"u{i}", "a": i} for i in range(5)]
    work = [(f"e:u{i}", diff(user, None, now=T0, max_age_seconds=MAX_AGE).changes) for i, user in enumerate(users)]
    assert store.commit_many(work, T0) == 0  # type: ignore[arg-type]
    assert calls == ["PutItem"] * 5
    assert set(store.get_many([key for key, _ in work])) == {key for key, _ in work}


def test_an_update_after_many_attributes_marked_unknown_expects_each_of_those_writes(store: DeltaStore) -> None:
    # More than one UpdateItem's worth of attributes become unknown (operations), and one value changes:
    # the value's write must not take the store's own unknown-marking writes for another run's.
    first = {"external_id": "u1", "x": 1, **{f"n{i}": 0 for i in range(45)}}
    second = {"external_id": "u1", "x": 2, **{f"n{i}": {"inc": 1} for i in range(45)}}
    send(store, first, T0)
    record = store.get_many(["e:u1"])["e:u1"]
    delta = diff(second, record, now=T0 + 1, max_age_seconds=MAX_AGE)
    assert delta.changes is not None
    assert store.commit_many([("e:u1", delta.changes)], T0 + 1) == 0
    assert store.get_many(["e:u1"])["e:u1"].values["x"] == digest(2)
