"""The content table: one item per Braze user, written only by content built from newer events.

Item: ``user_id`` (partition key, Braze's id), ``external_id`` (indexed), ``content``,
``generated_at``, ``source_time`` (the newest source event's time), ``model_id``,
``source_event_ids``, ``expires_at`` (TTL). A short claim on the same item stops two files
processed at once from both generating for one user; a claim on a user with no content yet
carries ``expires_at`` too, so no item is ever left without a TTL. DynamoDB deletes expired items
late, so reads treat an item past ``expires_at`` as a miss.

Each user's merged activity profile lives under ``#profile#<braze id>`` in the same table (no
``content``, no ``external_id``: the API never serves it), written only with a version condition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from botocore.exceptions import ClientError

from .events import RESERVED_USER_PREFIX
from .profile import Profile

logger = logging.getLogger(__name__)

EXTERNAL_ID_INDEX = "by-external-id"
PROFILE_PREFIX = RESERVED_USER_PREFIX  # user ids with this prefix are refused when parsing
BATCH_GET = 100  # BatchGetItem's limit


@dataclass(frozen=True, slots=True)
class StoredContent:
    user_id: str
    external_id: str | None
    content: dict[str, Any]
    generated_at: int
    source_time: int
    model_id: str
    expires_at: int


class ContentTable:
    def __init__(self, dynamodb: Any, table: str, *, clock: Any = time.time) -> None:
        self._db = dynamodb
        self._table = table
        self._clock = clock

    def get(self, user_id: str) -> StoredContent | None:
        item = self._db.get_item(TableName=self._table, Key={"user_id": {"S": user_id}}).get("Item")
        return self._fresh(item)

    def get_by_external_id(self, external_id: str) -> StoredContent | None:
        result = self._db.query(
            TableName=self._table,
            IndexName=EXTERNAL_ID_INDEX,
            KeyConditionExpression="external_id = :e",
            ExpressionAttributeValues={":e": {"S": external_id}},
        )
        found = [c for c in (self._fresh(i) for i in result.get("Items", [])) if c is not None]
        return max(found, key=lambda c: c.generated_at) if found else None

    def claim(self, user_id: str, owner: str, seconds: int, *, generated_before: int | None = None) -> bool:
        """Take the user for ``seconds``; False if another generation holds it, or (with
        ``generated_before``) stored content newer than that (a duplicate generated meanwhile). A
        claim on a user without content expires (TTL) a day after the claim, so a failed generation
        leaves nothing."""
        now = int(self._clock())
        condition = "(attribute_not_exists(claim_until) OR claim_until < :now OR claim_owner = :o)"
        values: dict[str, Any] = {
            ":o": {"S": owner},
            ":u": {"N": str(now + seconds)},
            ":now": {"N": str(now)},
            ":e": {"N": str(now + 86_400)},
        }
        if generated_before is not None:
            condition += " AND (attribute_not_exists(generated_at) OR generated_at <= :g)"
            values[":g"] = {"N": str(generated_before)}
        return _unless_condition_failed(
            self._db.update_item,
            TableName=self._table,
            Key={"user_id": {"S": user_id}},
            UpdateExpression="SET claim_owner = :o, claim_until = :u, expires_at = if_not_exists(expires_at, :e)",
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )

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
    ) -> bool:
        """Store content unless what is stored was built from a profile at least as new (its
        version, or with no version its newest event time); the write replaces the item, releasing
        the claim. False when the stored content is newer: nothing was written."""
        now = int(self._clock())
        item: dict[str, Any] = {
            "user_id": {"S": user_id},
            "content": {"S": _json(content)},
            "generated_at": {"N": str(now)},
            "source_time": {"N": str(source_time)},
            "source_version": {"N": str(source_version)},
            "model_id": {"S": model_id},
            "source_event_ids": {"L": [{"S": e} for e in event_ids[-100:]]},
            "expires_at": {"N": str(now + ttl_seconds)},
        }
        if external_id:
            item["external_id"] = {"S": external_id}
        if source_version:
            condition = "attribute_not_exists(source_version) OR source_version < :v"
            values = {":v": {"N": str(source_version)}}
        else:
            condition = "attribute_not_exists(source_time) OR source_time < :t"
            values = {":t": {"N": str(source_time)}}
        return _unless_condition_failed(
            self._db.put_item,
            TableName=self._table,
            Item=item,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )

    # -- profiles ---------------------------------------------------------------------------------

    def get_profile(self, user_id: str) -> Profile | None:
        item = self._db.get_item(
            TableName=self._table, Key={"user_id": {"S": PROFILE_PREFIX + user_id}}, ConsistentRead=True
        ).get("Item")
        return _profile(item) if item else None

    def get_profiles(self, user_ids: Iterable[str], *, workers: int = 8) -> dict[str, Profile]:
        """Many profiles at once: BatchGetItem pages of 100, a few in flight, unprocessed keys retried."""
        ids = list(dict.fromkeys(user_ids))
        pages = [ids[i : i + BATCH_GET] for i in range(0, len(ids), BATCH_GET)]
        found: dict[str, Profile] = {}
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(pages)))) as pool:
            for items in pool.map(self._batch_get, pages):
                for item in items:
                    profile = _profile(item)
                    found[profile.user_id] = profile
        return found

    def _batch_get(self, user_ids: list[str]) -> list[dict[str, Any]]:
        keys: list[dict[str, Any]] = [{"user_id": {"S": PROFILE_PREFIX + u}} for u in user_ids]
        items: list[dict[str, Any]] = []
        for attempt in range(10):
            if not keys:
                return items
            result = self._db.batch_get_item(RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}})
            items += result.get("Responses", {}).get(self._table, [])
            keys = result.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", [])
            if keys:
                time.sleep(min(1.0, 0.05 * 2**attempt))
        raise RuntimeError(f"{len(keys)} profiles could not be read (throttled)")

    def save_profile(self, profile: Profile, ttl_seconds: int) -> bool:
        """Write the profile if nobody wrote it since it was read (same version); bumps the version.
        False when another writer was first: re-read and merge again."""
        now = int(self._clock())
        item: dict[str, Any] = {
            "user_id": {"S": PROFILE_PREFIX + profile.user_id},
            "profile": {"S": profile.to_json()},
            "version": {"N": str(profile.version + 1)},
            "intent": {"N": str(profile.intent)},
            "expires_at": {"N": str(now + ttl_seconds)},
        }
        if profile.pending_since is not None:
            item["pending_since"] = {"N": str(profile.pending_since)}
        if profile.scheduled_at is not None:
            item["scheduled_at"] = {"N": str(profile.scheduled_at)}
        condition: dict[str, Any] = (
            # no profile yet, or an unreadable item whose version is missing or not a number: replaced
            {
                "ConditionExpression": "attribute_not_exists(version) OR NOT attribute_type(version, :n)",
                "ExpressionAttributeValues": {":n": {"S": "N"}},
            }
            if profile.version == 0
            else {
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": {"N": str(profile.version)}},
            }
        )
        if not _unless_condition_failed(self._db.put_item, TableName=self._table, Item=item, **condition):
            return False
        profile.version += 1
        return True

    def settle(self, user_id: str, intent: int) -> bool:
        """A generation read the profile at intent count ``intent``: it is no longer pending. False
        when new events of intent were merged since (the profile stays pending for the next
        generation); passive events merged meanwhile are already in the profile and need none.
        Bumps the version, so a writer that read the profile as pending re-reads it."""
        return _unless_condition_failed(
            self._db.update_item,
            TableName=self._table,
            Key={"user_id": {"S": PROFILE_PREFIX + user_id}},
            UpdateExpression="REMOVE pending_since, scheduled_at SET version = version + :one",
            ConditionExpression="attribute_exists(version) AND "
            + ("(attribute_not_exists(intent) OR intent = :i)" if intent == 0 else "intent = :i"),
            ExpressionAttributeValues={":i": {"N": str(intent)}, ":one": {"N": "1"}},
        )

    def reschedule(self, user_id: str, version: int, at: int) -> bool:
        """Record that the pending profile's generation was scheduled again (same version)."""
        return _unless_condition_failed(
            self._db.update_item,
            TableName=self._table,
            Key={"user_id": {"S": PROFILE_PREFIX + user_id}},
            UpdateExpression="SET scheduled_at = :a",
            ConditionExpression="version = :v",
            ExpressionAttributeValues={":v": {"N": str(version)}, ":a": {"N": str(at)}},
        )

    def _fresh(self, item: dict[str, Any] | None) -> StoredContent | None:
        if not item or "content" not in item:
            return None  # nothing yet, or only a claim
        expires = int(item.get("expires_at", {}).get("N", "0"))
        if expires and expires <= self._clock():
            return None
        return StoredContent(
            user_id=item["user_id"]["S"],
            external_id=item.get("external_id", {}).get("S"),
            content=orjson.loads(item["content"]["S"]),
            generated_at=int(item["generated_at"]["N"]),
            source_time=int(item["source_time"]["N"]),
            model_id=item["model_id"]["S"],
            expires_at=expires,
        )


def _profile(item: dict[str, Any]) -> Profile:
    """The stored profile; an unreadable item reads as an empty profile at its version, so the next
    merge replaces it instead of failing the file for every user in it."""
    user_id = item["user_id"]["S"].removeprefix(PROFILE_PREFIX)
    try:
        return Profile.from_json(
            user_id,
            item["profile"]["S"],
            version=int(item["version"]["N"]),
            intent=int(item["intent"]["N"]) if "intent" in item else 0,
            pending_since=int(item["pending_since"]["N"]) if "pending_since" in item else None,
            scheduled_at=int(item["scheduled_at"]["N"]) if "scheduled_at" in item else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError, orjson.JSONDecodeError):
        logger.error("an unreadable profile item is replaced", extra={"error_code": "MalformedProfile"})
        try:
            version = int(item["version"]["N"])
        except (KeyError, TypeError, ValueError):
            version = 0
        return Profile(user_id, version=version)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _unless_condition_failed(write: Callable[..., Any], **request: Any) -> bool:
    """Send a conditional write; False (nothing written) when its condition did not hold."""
    try:
        write(**request)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True
