"""A landed CI360 audience, on to Braze: the import pipeline's run of the file where it lies.

The copier asks the importer to import the landed object version as CSV whose identifier is the
configured column and whose ``identity_id`` (CI360's own key) is never sent. The importer's run
id is a function of that version, so the job knows its run before the run exists, and a repeated
request is a duplicate run that sends nothing.
"""

from __future__ import annotations

from typing import Any

import orjson
from botocore.exceptions import ClientError
from pipeline_common.names import loose_name
from pipeline_common.runs import run_id_for

from .copier import PermanentFailure

IDENTITY_COLUMN = "identity_id"  # CI360's identity: the first column of every staged file
# The importer's run states, as a caller of the bulk-upload API sees them.
_RUN_STATUS = {"running": "running", "continuing": "running", "queued": "queued"}
RUN_COUNTS = ("objects_read", "accepted", "skipped", "rejected", "failed", "ambiguous", "requests")


# Identifier kinds Braze takes besides the configured column: a second one in the header would
# make two identifiers per user, which the importer refuses.
OTHER_IDENTIFIERS = ("external_id", "braze_id", "user_alias", "user_alias_name", "user_alias_label")


def check_columns(columns: list[str] | None, id_column: str) -> None:
    """Raise :class:`PermanentFailure` unless the importer will take the metadata's header: the
    same rules as its ``Schema.from_header`` (a test holds them together), checked before anything
    is copied, so a header the importer would stop on fails the job instead."""
    if not columns:
        raise PermanentFailure(
            f"the task has no metadata file, so its columns are unknown: Braze needs its {id_column} column"
        )
    names = [c.strip() for c in columns]  # the importer reads names without their spaces
    for i, name in enumerate(names):
        if not name:
            raise PermanentFailure(f"column {i + 1} of the task's metadata has no name")
    repeated = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if repeated is not None:
        raise PermanentFailure(f"the task's metadata names column {repeated} twice")
    ignored = {n for n in names if n != id_column and loose_name(n) == loose_name(IDENTITY_COLUMN)}
    if id_column not in names or id_column in ignored:
        raise PermanentFailure(
            f"the task's metadata has no {id_column} column (bulkUpload:brazeIdColumn): nothing is sent to Braze"
        )
    other = next((n for n in names if n != id_column and n not in ignored and n in OTHER_IDENTIFIERS), None)
    if other is not None:
        raise PermanentFailure(f"the task's metadata has both {id_column} and {other}: Braze takes one identifier")


def run_id(bucket: str, key: str, version_id: str | None) -> str:
    """The importer's run id for an object version."""
    return run_id_for(bucket, key, version_id, None)


def import_request(bucket: str, key: str, version_id: str, id_column: str) -> dict[str, Any]:
    return {
        "action": "import",
        "bucket": bucket,
        "key": key,
        "version_id": version_id,
        "format": "csv",
        "csv": {"id_column": id_column, "ignore": [IDENTITY_COLUMN]},
    }


class Importer:
    """The importer function, invoked asynchronously: Lambda keeps the request (and retries it
    when throttled) once it answers 202."""

    def __init__(self, lambda_client: Any, function: str) -> None:
        self._lambda = lambda_client
        self._function = function

    def request(self, event: dict[str, Any]) -> None:
        try:
            answer = self._lambda.invoke(
                FunctionName=self._function, InvocationType="Event", Payload=orjson.dumps(event)
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "")
            # Access denied is retried: right after a deploy, IAM may not have reached every endpoint.
            if code == "ResourceNotFoundException":
                raise PermanentFailure(f"the importer could not be asked to import the file ({code})") from exc
            raise
        status = int(answer.get("StatusCode") or 0)
        if status != 202:
            raise RuntimeError(f"the importer did not take the import request (HTTP {status})")


class Runs:
    """The importer's runs table, read for a job's import status."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def status(self, run: str) -> dict[str, Any]:
        """The run as a job's caller sees it; ``unknown`` with the reason when it cannot be read
        (the job's own status must still answer)."""
        if not self._table:
            return {"run_id": run, "status": "unknown", "reason": "delivery to Braze is no longer configured"}
        try:
            item = self._db.get_item(TableName=self._table, Key={"run_id": {"S": run}}, ConsistentRead=True)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            return {"run_id": run, "status": "unknown", "reason": f"the importer's runs could not be read ({code})"}
        found = item.get("Item")
        if not found:
            return {"run_id": run, "status": "starting"}  # asked for; the importer has not begun yet
        try:
            return self._shown(run, orjson.loads(found["doc"]["S"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            return {"run_id": run, "status": "unknown", "reason": "the import's run record is unreadable"}

    @staticmethod
    def _shown(run: str, doc: dict[str, Any]) -> dict[str, Any]:
        counters = doc.get("counters") or {}
        status = str(doc.get("status", "running"))
        out: dict[str, Any] = {"run_id": run, "status": _RUN_STATUS.get(status, status)}
        out.update({name: int(counters.get(name, 0)) for name in RUN_COUNTS})
        if doc.get("stop_reason"):
            out["stop_reason"] = str(doc["stop_reason"])
        if doc.get("error"):
            out["error"] = doc["error"]
        out["updated_at"] = doc.get("updated_at")
        return out
