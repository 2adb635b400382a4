"""A source object whose pinned version disappears mid-run: the run stops with its own reason."""

from __future__ import annotations

from itertools import count
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError
from braze_importer.ports import ObjectRef
from braze_importer.service import handle_continue, handle_resume, handle_start

from tests.fakes import FakeBraze, FakeS3, gz, make_deps

BUCKET = "imports"

# What S3 answers a pinned read whose version is gone, per bucket kind and the reader's rights.
GONE = {
    "version_deleted": ("NoSuchVersion", 404),  # versioned bucket, the version deleted for good
    "key_deleted": ("NoSuchKey", 404),  # unversioned bucket, the object deleted
    "overwritten": ("PreconditionFailed", 412),  # unversioned bucket: If-Match no longer holds
}


class VanishingS3(FakeS3):
    """FakeS3 whose objects can be made to answer like S3 does once the pinned version is gone."""

    def __init__(self, chunk: int = 1 << 20) -> None:
        super().__init__(chunk)
        self.gone: tuple[str, int] | None = None
        self.reads = 0

    def get_object(self, Bucket: str, Key: str, Range: str | None = None, **kw: Any) -> dict[str, Any]:
        self.reads += 1
        if self.gone is not None:
            code, status = self.gone
            error = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
            raise ClientError(error, "GetObject")  # type: ignore[arg-type]
        return super().get_object(Bucket, Key, Range, **kw)


def events(n: int) -> list[dict[str, Any]]:
    return [{"external_id": f"u{i}", "name": "e", "time": "2026-01-01T00:00:00Z"} for i in range(n)]


def first_invocation(key: str, data: bytes, gone: tuple[str, int]) -> tuple[Any, FakeBraze, VanishingS3, Any]:
    s3 = VanishingS3(chunk=4096)
    s3.objects[(BUCKET, key)] = data
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    ticks = count()
    started = handle_start(ObjectRef(BUCKET, key, "v1", "etag"), "a", deps, lambda: next(ticks) < 2)
    assert started.status == "continuing"
    s3.gone = gone
    return deps, braze, s3, started


@pytest.mark.parametrize("case", sorted(GONE))
@pytest.mark.parametrize("key", ["incoming/a.json", "incoming/a.jsonl", "incoming/a.jsonl.gz"])
def test_a_source_gone_mid_run_stops_the_run_with_its_own_reason_and_sends_nothing_more(case: str, key: str) -> None:
    objs = events(600)
    lines = b"\n".join(orjson.dumps(o) for o in objs) + b"\n"
    data = orjson.dumps(objs) if key.endswith(".json") else gz(lines) if key.endswith(".gz") else lines
    deps, braze, _, started = first_invocation(key, data, GONE[case])
    sent = len(braze.requests)
    stored = list(braze.stored)
    payload = deps.continuer.payloads.pop(0)

    result = handle_continue(payload["run_id"], payload["seq"], "b", deps, lambda: True)  # does not raise

    assert result.status == "stopped"
    report = result.report
    assert report is not None and report["status"] == "stopped"
    assert report["stop_reason"] == "source_gone"
    assert "resume" not in report  # the version is gone: nothing to resume
    assert report["error"]["offset"] == report["checkpoint"]["offset"] > 0
    assert "no longer" in report["error"]["message"]
    assert len(braze.requests) == sent and braze.stored == stored  # nothing more sent
    assert stored == objs[: len(stored)]
    assert deps.outputs.lines("failed/") == []
    assert deps.store.items[started.run_id].status == "stopped"
    assert not deps.continuer.payloads


def test_a_source_gone_before_the_first_read_gets_a_report_not_a_crash() -> None:
    s3 = VanishingS3()
    s3.gone = GONE["key_deleted"]
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    # No .gz suffix: the importer looks at the first bytes to tell gzip, and finds nothing there.
    result = handle_start(ObjectRef(BUCKET, "incoming/late.json", None, "etag"), "a", deps, lambda: True)
    assert result.status == "stopped"
    assert result.report is not None and result.report["stop_reason"] == "source_gone"
    assert result.report["objects_read"] == 0 and not braze.requests


def test_access_denied_on_the_pinned_read_stops_resumably_and_the_resume_finishes_exactly() -> None:
    # Without s3:ListBucket, S3 answers a deleted object with 403, as it does a revoked permission:
    # the run cannot tell which, so it stops resumably and says both.
    objs = events(600)
    key = "incoming/a.json"
    deps, braze, s3, started = first_invocation(key, orjson.dumps(objs), ("AccessDenied", 403))
    payload = deps.continuer.payloads.pop(0)
    result = handle_continue(payload["run_id"], payload["seq"], "b", deps, lambda: True)
    assert result.status == "stopped"
    assert result.report is not None and result.report["stop_reason"] == "source_access_denied"
    assert result.report["resume"] == {"action": "resume", "run_id": started.run_id}
    s3.gone = None  # access given back
    resumed = handle_resume(started.run_id, "c", deps, lambda: True, force=False)
    assert resumed.status == "completed"
    assert braze.stored == objs  # each object exactly once, in order


@pytest.mark.parametrize("case", ["access_denied", *sorted(GONE)])
def test_an_unreadable_first_read_never_decides_that_an_unsuffixed_gzip_file_is_plain_text(case: str) -> None:
    # A .jsonl holding gzip is told by its first bytes; an error there says nothing about them.
    objs = events(300)
    key = "incoming/a.jsonl"
    s3 = VanishingS3(chunk=4096)
    s3.objects[(BUCKET, key)] = gz(b"\n".join(orjson.dumps(o) for o in objs) + b"\n")
    braze = FakeBraze()
    deps = make_deps(braze, s3)
    s3.gone = ("AccessDenied", 403) if case == "access_denied" else GONE[case]
    started = handle_start(ObjectRef(BUCKET, key, "v1", "etag"), "a", deps, lambda: True)
    assert started.status == "stopped" and started.report is not None
    assert started.report["stop_reason"] == ("source_access_denied" if case == "access_denied" else "source_gone")
    assert started.report["objects_read"] == 0 and not braze.requests
    if case != "access_denied":
        return
    s3.gone = None  # access given back
    resumed = handle_resume(started.run_id, "c", deps, lambda: True, force=False)
    assert resumed.status == "completed" and resumed.report is not None
    assert resumed.report["source"]["gzip"] is True
    assert braze.stored == objs
    assert deps.outputs.lines("rejects/") == []
