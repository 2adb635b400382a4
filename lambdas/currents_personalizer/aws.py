"""AWS adapters of the Currents functions: the generation queue and the hourly generation cap."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from botocore.exceptions import ClientError

MAX_SQS_BATCH = 10
MAX_SQS_BYTES = 250_000


class SqsQueue:
    """Sends generation messages in batches of ten, several batches in flight (a file of 100k
    users is 10k batches). Each message is ``{"user_id": …}``: far under SQS's size limit."""

    def __init__(self, sqs: Any, url: str, *, workers: int = 16) -> None:
        self._sqs = sqs
        self._url = url
        self._workers = workers

    def send(self, messages: list[dict[str, Any]], *, delay_seconds: int = 0) -> None:
        batches: list[list[dict[str, Any]]] = []
        batch: list[dict[str, Any]] = []
        size = 0
        for i, message in enumerate(messages):
            body = orjson.dumps(message).decode()
            if len(body) > MAX_SQS_BYTES:
                raise ValueError("a generation message is larger than SQS allows")
            if batch and (len(batch) == MAX_SQS_BATCH or size + len(body) > MAX_SQS_BYTES):
                batches.append(batch)
                batch, size = [], 0
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": body}
            if delay_seconds:
                entry["DelaySeconds"] = delay_seconds
            batch.append(entry)
            size += len(body)
        if batch:
            batches.append(batch)
        if len(batches) == 1:
            self._flush(batches[0])
            return
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            list(pool.map(self._flush, batches))

    def _flush(self, batch: list[dict[str, Any]]) -> None:
        for attempt in range(5):
            result = self._sqs.send_message_batch(QueueUrl=self._url, Entries=batch)
            failed = {f["Id"] for f in result.get("Failed", [])}
            if not failed:
                return
            batch = [e for e in batch if e["Id"] in failed]
            time.sleep(0.1 * 2**attempt)
        raise RuntimeError(f"{len(batch)} generation messages could not be queued")


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
