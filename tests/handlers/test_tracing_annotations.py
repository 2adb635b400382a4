"""What the traces say: for an import run its tag, action and outcome, never the object key, the
bucket, a version id or anything from the file (external ids); for a CI360 job its id, never its
file name or URLs."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from braze_importer import handler as importer

from sandbox.importer import FakeContext, s3_event
from sandbox.services import BrazeEmulator
from tests.handlers.test_bulk_upload_handlers import Source, aws, post, run_copier, source, webhook  # noqa: F401  its fixtures
from tests.handlers.test_importer_handler import deployed  # noqa: F401  the moto deployment fixture

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def annotations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Every annotation the handler puts, recorded instead of sent (the tracer is off in tests)."""
    put: list[tuple[str, Any]] = []
    monkeypatch.setattr(importer.tracer, "put_annotation", lambda key, value: put.append((key, value)))
    return put


def test_annotations_find_a_run_by_its_tag_and_never_hold_its_key_or_users(
    deployed: Any,  # noqa: F811
    braze: BrazeEmulator,
    annotations: list[tuple[str, Any]],
) -> None:
    key = "incoming/events/jane.doe@example.com-export.json"
    users = [f"customer-{i}-8f3a" for i in range(3)]
    objs = [{"external_id": u, "name": "signed_up", "time": "2026-01-01T00:00:00Z"} for u in users]
    put = deployed.put_object(Bucket="imports", Key=key, Body=orjson.dumps(objs))
    event = s3_event("imports", key, 0, put["ETag"].strip('"'), put["VersionId"])
    outside = s3_event("imports", "reports/jane.doe@example.com.json", 0, "etag", "v1")

    result = importer.handler({"Records": event["Records"] + outside["Records"]}, FakeContext(900))

    found = dict(annotations)
    assert {r["status"] for r in result["runs"]} == {"completed", "ignored"}
    assert found["action"] == "start" and found["runs"] == 1 and found["status"] == "completed"
    # The tag is the one in the run's report file name: from a report to its trace and back.
    assert (
        len(found["run_tag"]) == 12 and f"/{found['run_tag']}.json" in result["runs"][0]["report"]["outputs"]["report"]
    )
    forbidden = ["jane", "example.com", "imports", put["VersionId"], put["ETag"].strip('"'), *users]
    for name, value in annotations:
        assert not any(word in str(value) for word in forbidden), (name, value)


def test_an_action_from_outside_is_named_by_our_words_only(
    deployed: Any,  # noqa: F811
    annotations: list[tuple[str, Any]],
) -> None:
    with pytest.raises(ValueError, match="unrecognised event"):
        importer.handler({"action": "jane.doe@example.com"}, FakeContext(900))
    assert dict(annotations)["action"] == "unknown"


def test_a_ci360_job_is_found_by_its_id_in_the_receiver_and_the_copier(
    aws: dict[str, Any],  # noqa: F811
    source: Source,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline_common import tracing

    put: list[tuple[str, Any]] = []
    monkeypatch.setattr(tracing.tracer, "put_annotation", lambda key, value: put.append((key, value)))
    source.files["/jane-doe.csv"] = b"id-1,10\n"
    code, answer = post(webhook(source, "/jane-doe.csv", None, "jane-doe-audience.csv"))
    assert code == 202, answer
    assert run_copier(aws["queue"]) == [{"batchItemFailures": []}]
    assert [v for k, v in put if k == "job_id"] == [answer["job_id"], answer["job_id"]]
    assert ("route", "receive") in put
    assert not any(w in str(v) for _, v in put for w in ("jane", "example.com", "ci360/", "http"))
