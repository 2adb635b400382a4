"""The content table: one item per Braze user, written only by content built from newer events.

Item: ``user_id`` (partition key, Braze's id), ``external_id`` (indexed), ``content``,
``generated_at``, ``source_time`` (the newest source event's time), ``model_id``,
``source_event_ids``, ``expires_at`` (TTL). A short claim on the same item stops two files
processed at once from both generating for one user. DynamoDB deletes expired items late, so reads
treat an item past ``expires_at`` as a miss.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from botocore.exceptions import ClientError

EXTERNAL_ID_INDEX = "by-external-id"


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

    def claim(self, user_id: str, owner: str, seconds: int) -> bool:
        """Take the user for ``seconds``; False if another generation holds it."""
        now = int(self._clock())
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"user_id": {"S": user_id}},
                UpdateExpression="SET claim_owner = :o, claim_until = :u",
                ConditionExpression="attribute_not_exists(claim_until) OR claim_until < :now OR claim_owner = :o",
                ExpressionAttributeValues={
                    ":o": {"S": owner},
                    ":u": {"N": str(now + seconds)},
                    ":now": {"N": str(now)},
                },
            )
        except ClientError as exc:
            if _conditional(exc):
                return False
            raise
        return True

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
    ) -> bool:
        """Store content unless what is stored was built from events at least as new; the write
        replaces the item, releasing the claim. False when the stored content is newer."""
        now = int(self._clock())
        item: dict[str, Any] = {
            "user_id": {"S": user_id},
            "content": {"S": _json(content)},
            "generated_at": {"N": str(now)},
            "source_time": {"N": str(source_time)},
            "model_id": {"S": model_id},
            "source_event_ids": {"L": [{"S": e} for e in event_ids[-100:]]},
            "expires_at": {"N": str(now + ttl_seconds)},
        }
        if external_id:
            item["external_id"] = {"S": external_id}
        try:
            self._db.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(source_time) OR source_time < :t",
                ExpressionAttributeValues={":t": {"N": str(source_time)}},
            )
        except ClientError as exc:
            if _conditional(exc):
                return False
            raise
        return True

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


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _conditional(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")
