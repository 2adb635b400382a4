"""The content table under moto and the Connected Content answers built on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from currents_personalizer.content import DEFAULT_CONTENT
from currents_personalizer.content_api import respond
from currents_personalizer.store import ContentTable
from moto import mock_aws

from sandbox.currents import create_content_table

pytestmark = pytest.mark.usefixtures("aws_env")
CONTENT = {
    "email_title": "T",
    "heading": "Don't miss episode 2",
    "details": {"intro": "I", "episode_details": "E", "cta": "C"},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def table(clock: Clock) -> Iterator[ContentTable]:
    with mock_aws():
        db = boto3.client("dynamodb")
        create_content_table(db, "content")
        yield ContentTable(db, "content", clock=clock)


def put(table: ContentTable, source_time: int, heading: str = "Don't miss episode 2", **kw: Any) -> bool:
    return table.put(
        user_id=kw.get("user_id", "braze-1"),
        external_id=kw.get("external_id", "ユーザー-ü-0"),
        content={**CONTENT, "heading": heading},
        source_time=source_time,
        model_id="offline-template-v1",
        event_ids=["e1", "e2"],
        ttl_seconds=kw.get("ttl", 3600),
    )


def test_newer_events_win_and_a_replayed_old_file_never_overwrites(table: ContentTable) -> None:
    assert put(table, 200, "new")
    assert not put(table, 100, "old")  # replayed older file
    assert not put(table, 200, "same")  # duplicates in a later file change nothing
    stored = table.get("braze-1")
    assert stored is not None and stored.content["heading"] == "new" and stored.source_time == 200


def test_items_past_their_ttl_read_as_misses(table: ContentTable, clock: Clock) -> None:
    put(table, 100, ttl=60)
    assert table.get("braze-1") is not None
    clock.now += 61
    assert table.get("braze-1") is None and table.get_by_external_id("ユーザー-ü-0") is None


def test_a_short_claim_keeps_a_second_generation_out(table: ContentTable, clock: Clock) -> None:
    assert table.claim("braze-9", "file-a", 30)
    assert not table.claim("braze-9", "file-b", 30)
    assert table.get("braze-9") is None  # a claim is not content
    clock.now += 31
    assert table.claim("braze-9", "file-b", 30)


def test_api_hit_by_braze_id_user_id_and_external_id(table: ContentTable) -> None:
    put(table, 100)
    by_path = respond("braze-1", None, table)
    assert by_path.status == 200 and by_path.body["content"] == CONTENT and by_path.body["default"] is False
    assert by_path.body["external_id"] == "ユーザー-ü-0" and by_path.body["generated_at"].endswith("Z")
    assert respond(None, {"user_id": "braze-1"}, table).body == by_path.body
    assert respond(None, {"external_id": "ユーザー-ü-0"}, table).body == by_path.body


def test_dynamodb_shape_keeps_original_snippets_rendering(table: ContentTable) -> None:
    put(table, 100)
    item = respond(None, {"user_id": "braze-1", "format": "dynamodb"}, table).body["Item"]
    assert item["data"]["M"]["heading"]["S"] == "Don't miss episode 2"  # {{result.Item.data.M.heading.S}}
    assert item["data"]["M"]["details"]["M"]["intro"]["S"] == "I"
    assert item["user_id"] == {"S": "braze-1"}


def test_miss_answers_default_content_or_404_when_defaults_are_off(table: ContentTable) -> None:
    miss = respond("braze-unknown", None, table)
    assert miss.status == 200 and miss.body["default"] is True
    assert miss.body["content"] == DEFAULT_CONTENT.model_dump()
    assert respond("braze-unknown", None, table, defaults=False).status == 404


@pytest.mark.parametrize(
    ("path_id", "query"),
    [(None, None), ("a", {"user_id": "b"}), ("bad\x00id", None), ("x" * 513, None), ("a", {"format": "xml"})],
)
def test_bad_requests_get_400_without_echoing_values(table: ContentTable, path_id: Any, query: Any) -> None:
    answer = respond(path_id, query, table)
    assert answer.status == 400 and "message" in answer.body
    assert "bad\x00id" not in answer.body["message"]


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_anonymous_users_empty_external_id_gets_the_default_content(table: ContentTable, empty: str) -> None:
    answer = respond(None, {"external_id": empty}, table)
    assert answer.status == 200 and answer.body["default"] is True and answer.body["external_id"] is None
    typed = respond(None, {"external_id": empty, "format": "dynamodb"}, table)
    assert typed.status == 200 and typed.body["Item"]["default"] == {"BOOL": True}
    assert respond(None, {"external_id": empty}, table, defaults=False).status == 404


def test_a_claim_alone_expires(table: ContentTable, clock: Clock) -> None:
    assert table.claim("braze-9", "gen-1", 120)
    item = boto3.client("dynamodb").get_item(TableName="content", Key={"user_id": {"S": "braze-9"}})["Item"]
    assert int(item["expires_at"]["N"]) > clock.now and "content" not in item
    assert put(table, 5, user_id="braze-9")  # content keeps its own TTL
    item = boto3.client("dynamodb").get_item(TableName="content", Key={"user_id": {"S": "braze-9"}})["Item"]
    assert int(item["expires_at"]["N"]) == int(clock.now) + 3600


def test_profiles_are_read_in_batches_and_written_with_a_version_condition(table: ContentTable) -> None:
    from currents_personalizer.profile import Profile

    for n in range(250):
        assert table.save_profile(Profile(f"braze-{n}", events={"t": [{"id": f"e{n}", "time": n}]}), 3600)
    found = table.get_profiles([f"braze-{n}" for n in range(300)])
    assert len(found) == 250 and found["braze-7"].events == {"t": [{"id": "e7", "time": 7}]}
    stale = Profile("braze-7")  # read before another writer: version 0
    assert not table.save_profile(stale, 3600)
    current = found["braze-7"]
    assert table.save_profile(current, 3600) and current.version == 2
    assert table.get("braze-7") is None and respond("#profile#braze-7", None, table).body["default"] is True
