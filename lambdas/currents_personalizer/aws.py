"""AWS adapters of the Currents functions: the generation queue and the hourly generation cap."""

from __future__ import annotations

import time
from typing import Any

import orjson
from botocore.exceptions import ClientError

MAX_SQS_BATCH = 10
MAX_SQS_BYTES = 250_000


class SqsQueue:
    def __init__(self, sqs: Any, url: str) -> None:
        self._sqs = sqs
        self._url = url

    def send(self, messages: list[dict[str, Any]]) -> None:
        batch: list[dict[str, str]] = []
        size = 0
        for i, message in enumerate(messages):
            body = orjson.dumps(message).decode()
            if batch and (len(batch) == MAX_SQS_BATCH or size + len(body) > MAX_SQS_BYTES):
                self._flush(batch)
                batch, size = [], 0
            batch.append({"Id": str(i), "MessageBody": body})
            size += len(body)
        if batch:
            self._flush(batch)

    def _flush(self, batch: list[dict[str, str]]) -> None:
        result = self._sqs.send_message_batch(QueueUrl=self._url, Entries=batch)
        if result.get("Failed"):
            failed = {f["Id"] for f in result["Failed"]}
            retry = [e for e in batch if e["Id"] in failed]
            again = self._sqs.send_message_batch(QueueUrl=self._url, Entries=retry)
            if again.get("Failed"):
                raise RuntimeError(f"{len(again['Failed'])} generation messages could not be queued")


class HourlyBudget:
    """An atomic counter per hour in the content table (under a key no Braze id can have)."""

    def __init__(self, dynamodb: Any, table: str, cap: int, *, clock: Any = time.time) -> None:
        self._db = dynamodb
        self._table = table
        self._cap = cap
        self._clock = clock

    def take(self) -> bool:
        now = self._clock()
        hour = time.strftime("%Y%m%d%H", time.gmtime(now))
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"user_id": {"S": f"#generations#{hour}"}},
                UpdateExpression="ADD generations :one SET expires_at = :exp",
                ConditionExpression="attribute_not_exists(generations) OR generations < :cap",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":cap": {"N": str(self._cap)},
                    ":exp": {"N": str(int(now) + 7200)},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
