"""The real handler under moto, sending to the Braze emulator over loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import boto3
import orjson
import pytest
from braze_importer import handler as importer
from braze_importer.braze_http import braze_client, classify_failure
from braze_importer.ports import TRACK, Delivery, ObjectRef
from braze_importer.settings import SettingsError, get_settings
from moto import mock_aws

from sandbox.importer import FakeContext, s3_event
from sandbox.services import BrazeEmulator
from tests.fakes import create_runs_table

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def deployed(braze: BrazeEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="imports")
        s3.put_bucket_versioning(Bucket="imports", VersioningConfiguration={"Status": "Enabled"})
        create_runs_table(boto3.client("dynamodb"))
        secret = boto3.client("secretsmanager").create_secret(Name="braze", SecretString="sandbox-braze-key")
        for name, value in {
            "BRAZE_REST_ENDPOINT": braze.url,
            "BRAZE_API_KEY_SECRET": secret["ARN"],
            "RUNS_TABLE": "runs",
            "IMPORT_BUCKET": "imports",
            "AWS_LAMBDA_FUNCTION_NAME": "importer",
            "POWERTOOLS_METRICS_NAMESPACE": "Test",
        }.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        importer._deps.cache_clear()
        yield s3
        get_settings.cache_clear()
        importer._deps.cache_clear()


def test_s3_notification_imports_the_file_and_writes_outputs(deployed: Any, braze: BrazeEmulator) -> None:
    objs = [{"external_id": f"u{i}", "name": "e", "time": "2026-01-01T00:00:00Z"} for i in range(200)]
    objs.append({"name": "orphan", "time": "2026-01-01T00:00:00Z"})
    put = deployed.put_object(Bucket="imports", Key="incoming/my file.json", Body=orjson.dumps(objs))
    event = s3_event("imports", "incoming/my file.json", 0, put["ETag"].strip('"'), put["VersionId"])
    result = importer.handler(event, FakeContext(900))
    report = result["runs"][0]["report"]
    assert result["runs"][0]["status"] == "completed"
    assert (report["accepted"], report["rejected"], report["requests"]) == (200, 1, 3)
    assert braze.state()["stored"] == 200
    keys = [o["Key"] for o in deployed.list_objects_v2(Bucket="imports")["Contents"]]
    assert report["outputs"]["report"] in keys
    assert any(k.startswith("rejects/my file.json/") for k in keys)
    assert not any(k.startswith("incoming/") and k != "incoming/my file.json" for k in keys)
    again = importer.handler(event, FakeContext(900))
    assert again["runs"][0]["status"] == "duplicate"
    assert braze.state()["stored"] == 200


def test_settings_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNS_TABLE", raising=False)
    monkeypatch.setenv("BRAZE_REST_ENDPOINT", "rest.iad-01.braze.com")
    get_settings.cache_clear()
    with pytest.raises(SettingsError) as raised:
        get_settings()
    assert "RUNS_TABLE" in str(raised.value) and "BRAZE_REST_ENDPOINT" in str(raised.value)
    get_settings.cache_clear()


def test_transport_tells_unsent_from_unanswered(braze: BrazeEmulator) -> None:
    asyncio.run(_transport_checks(braze))


async def _transport_checks(braze: BrazeEmulator) -> None:
    from sandbox.services import free_port

    async with braze_client(f"http://127.0.0.1:{free_port()}", "k", max_in_flight=2, timeout_seconds=2) as client:
        refused = await client.send(TRACK, b"{}")
    assert refused.delivery is Delivery.NOT_SENT
    braze.configure(script=["drop_after"])
    async with braze_client(braze.url, "sandbox-braze-key", max_in_flight=2, timeout_seconds=5) as client:
        dropped = await client.send(TRACK, orjson.dumps({"attributes": [{"external_id": "x", "a": 1}]}))
        fine = await client.send(TRACK, orjson.dumps({"attributes": [{"external_id": "y", "a": 1}]}))
    assert dropped.delivery is Delivery.AMBIGUOUS
    assert fine.delivery is Delivery.ANSWERED and fine.status == 201
    assert fine.remaining is not None and fine.reset_at is not None
    assert classify_failure(TimeoutError()) is Delivery.AMBIGUOUS


def test_eventbridge_test_events_and_foreign_keys_never_raise(deployed: Any, braze: BrazeEmulator) -> None:
    objs = [{"external_id": f"u{i}", "name": "e", "time": "2026-01-01T00:00:00Z"} for i in range(5)]
    put = deployed.put_object(Bucket="imports", Key="incoming/eb file.jsonl", Body=b"\n".join(map(orjson.dumps, objs)))
    eventbridge = {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {
            "bucket": {"name": "imports"},
            "object": {
                "key": "incoming/eb file.jsonl",
                "size": 10,
                "etag": put["ETag"].strip('"'),
                "version-id": put["VersionId"],
            },
        },
    }
    result = importer.handler(eventbridge, FakeContext(900))
    assert result["runs"][0]["status"] == "completed" and braze.state()["stored"] == 5
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "imports", "RequestId": "r"}
    assert importer.handler(test_event, FakeContext(900)) == {"runs": []}
    outside = s3_event("imports", "reports/x.json", 0, "etag", "v1")
    assert importer.handler(outside, FakeContext(900))["runs"][0]["status"] == "ignored"


def test_a_file_without_a_slot_is_queued_and_the_sweep_action_starts_it(
    deployed: Any, braze: BrazeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from braze_importer.aws import DynamoRunSlots

    monkeypatch.setenv("MAX_CONCURRENT_RUNS", "1")
    get_settings.cache_clear()
    importer._deps.cache_clear()
    invoked: list[dict[str, Any]] = []
    monkeypatch.setattr(importer._deps().continuer, "invoke_async", invoked.append)
    slots = DynamoRunSlots(boto3.client("dynamodb"), "runs", 1)
    assert slots.acquire("other-run", now=0.0, lease_seconds=1e12)  # a run holds the only slot
    put = deployed.put_object(Bucket="imports", Key="incoming/q.jsonl", Body=b'{"external_id": "u1", "name": "e"}')
    event = s3_event("imports", "incoming/q.jsonl", 0, put["ETag"].strip('"'), put["VersionId"])
    queued = importer.handler(event, FakeContext(900))["runs"][0]
    assert queued["status"] == "queued" and invoked == []
    assert importer.handler({"action": "sweep"}, FakeContext(900))["sweep"] == "started 0"
    slots.release("other-run")
    assert importer.handler({"action": "sweep"}, FakeContext(900))["sweep"] == "started 1"
    (payload,) = invoked
    assert payload["run_id"] == queued["run_id"]
    assert importer.handler(payload, FakeContext(900))["runs"][0]["status"] == "completed"
    assert braze.state()["stored"] == 1


def test_a_deltas_table_turns_on_sending_only_what_changed_with_its_age_and_array_length(
    deployed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from braze_importer.delta_store import DynamoDeltaStore

    assert importer._deps().deltas is None and importer._deps().full_send_requested is None  # no DELTAS_TABLE
    for name, value in {"DELTAS_TABLE": "deltas", "DELTA_MAX_AGE_DAYS": "7", "MAX_ARRAY_LENGTH": "100"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    importer._deps.cache_clear()
    deps = importer._deps()
    assert isinstance(deps.deltas, DynamoDeltaStore) and deps.deltas.table == "deltas"
    # A record is trusted as long as DynamoDB keeps it after its last rewrite.
    assert deps.deltas.ttl_seconds == deps.delta_max_age_seconds == 7 * 86400
    assert deps.delta_max_array == 100
    deployed.put_object(Bucket="imports", Key="incoming/t.json", Body=b"[]", Tagging="braze-send=full")
    assert deps.full_send_requested is not None
    assert deps.full_send_requested(ObjectRef("imports", "incoming/t.json", None, None))


def test_a_run_shares_the_workspace_through_the_runs_table(deployed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another run is sending right now (its lease is fresh): this one takes half of the workspace.
    from braze_importer.aws import ACTIVE_KEY, DynamoActiveRuns

    monkeypatch.setenv("WORKSPACE_REQUESTS_PER_SECOND", "40")
    get_settings.cache_clear()
    importer._deps.cache_clear()
    dynamodb = boto3.client("dynamodb")
    DynamoActiveRuns(dynamodb, "runs").beat("imports/other.json#v1", now=time.time(), lease_seconds=60.0)
    objs = [{"external_id": f"u{i}", "name": "e", "time": "2026-01-01T00:00:00Z"} for i in range(75 * 40)]
    put = deployed.put_object(Bucket="imports", Key="incoming/half.json", Body=orjson.dumps(objs))
    event = s3_event("imports", "incoming/half.json", 0, put["ETag"].strip('"'), put["VersionId"])
    report = importer.handler(event, FakeContext(900))["runs"][0]["report"]
    assert report["status"] == "completed" and report["requests"] == 40
    assert report["seconds"] >= 1.6  # 40 requests at 20 per second (the bucket starts with a few)
    # It has left the active runs; the other run's note stays.
    item = dynamodb.get_item(TableName="runs", Key={"run_id": {"S": ACTIVE_KEY}})["Item"]
    assert set(item["members"]["M"]) == {"imports/other.json#v1"}


def test_an_import_request_reads_another_buckets_csv_by_its_rules_once(deployed: Any, braze: BrazeEmulator) -> None:
    deployed.create_bucket(Bucket="uploads")
    deployed.put_bucket_versioning(Bucket="uploads", VersioningConfiguration={"Status": "Enabled"})
    body = b"identity_id,score,customer_id\ni-1,5,c-1\ni-2,,c-2\ni-3,x,\n"
    put = deployed.put_object(Bucket="uploads", Key="ci360/weekly", Body=body)  # no suffix: CSV all the same
    request = {
        "action": "import", "bucket": "uploads", "key": "ci360/weekly", "version_id": put["VersionId"],
        "format": "csv", "csv": {"id_column": "customer_id", "ignore": ["identity_id"]},
    }  # fmt: skip
    result = importer.handler(request, FakeContext(900))
    (run,) = result["runs"]
    assert run["status"] == "completed" and run["run_id"] == f"uploads/ci360/weekly#{put['VersionId']}"
    report = run["report"]
    assert (report["accepted"], report["skipped"], report["rejected"]) == (1, 1, 1)
    assert report["source"]["columns"] == {"id_column": "customer_id", "ignore": ["identity_id"]}
    stored = [o["object"] for o in braze.objects()]
    assert stored == [{"external_id": "c-1", "score": 5}]
    assert importer.handler(request, FakeContext(900))["runs"][0]["status"] == "duplicate"
    assert len(braze.objects()) == 1
    keys = [o["Key"] for o in deployed.list_objects_v2(Bucket="imports")["Contents"]]
    assert report["outputs"]["report"] in keys  # outputs in the import bucket, as for any run


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bucket": ""}, "bucket and key"),
        ({"key": None}, "bucket and key"),
        ({"version_id": 3}, "version_id"),
        ({"format": "xml"}, "format must be one of"),
        ({"csv": {"ignore": []}}, "id_column"),
        ({"format": "lines"}, "need a CSV file"),
        ({"csv": {"id_column": "c", "ignore": "identity_id"}}, "list of column names"),
        ({"csv": "customer_id"}, "must be an object"),
    ],
)
def test_a_malformed_import_request_is_refused_with_its_reason(
    deployed: Any, change: dict[str, Any], message: str
) -> None:
    request = {
        "action": "import", "bucket": "uploads", "key": "ci360/a.csv", "version_id": "v1", "format": "csv",
        "csv": {"id_column": "customer_id", "ignore": ["identity_id"]}, **change,
    }  # fmt: skip
    with pytest.raises(ValueError, match=message):
        importer.handler(request, FakeContext(900))


def test_a_cdi_csv_in_the_events_folder_is_sent_as_events_from_its_s3_notification(
    deployed: Any, braze: BrazeEmulator
) -> None:
    body = (
        b"EXTERNAL_ID,PAYLOAD\n"
        b'u1,"{""name"": ""view"", ""time"": ""2024-04-02T14:34:08"", ""properties"": {""n"": 1}}"\n'
        b'u2,"{""name"": ""view""}"\n'
    )
    put = deployed.put_object(Bucket="imports", Key="incoming/events/day.csv", Body=body)
    event = s3_event("imports", "incoming/events/day.csv", 0, put["ETag"].strip('"'), put["VersionId"])
    report = importer.handler(event, FakeContext(900))["runs"][0]["report"]
    assert (report["status"], report["accepted"], report["rejected"]) == ("completed", 1, 1)
    assert [o["object"] for o in braze.objects()] == [
        {"external_id": "u1", "name": "view", "time": "2024-04-02T14:34:08", "properties": {"n": 1}}
    ]
    rejects = [
        k["Key"] for k in deployed.list_objects_v2(Bucket="imports", Prefix="rejects/events/day.csv/")["Contents"]
    ]
    (reject,) = [
        orjson.loads(x)
        for k in rejects
        for x in deployed.get_object(Bucket="imports", Key=k)["Body"].read().splitlines()
    ]
    assert reject["line"] == 3 and reject["reason"] == "time: is required"


def test_a_dry_run_file_sends_nothing_even_with_every_slot_taken(
    deployed: Any, braze: BrazeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from braze_importer.aws import DynamoRunSlots

    monkeypatch.setenv("MAX_CONCURRENT_RUNS", "1")
    get_settings.cache_clear()
    importer._deps.cache_clear()
    assert DynamoRunSlots(boto3.client("dynamodb"), "runs", 1).acquire("other-run", now=0.0, lease_seconds=1e12)
    lines = b"\n".join(orjson.dumps({"external_id": f"u{i}", "age": i}) for i in range(100)) + b"\n{}"
    put = deployed.put_object(Bucket="imports", Key="incoming/dry-run/attributes/a.jsonl", Body=lines)
    event = s3_event("imports", "incoming/dry-run/attributes/a.jsonl", 0, put["ETag"].strip('"'), put["VersionId"])
    run = importer.handler(event, FakeContext(900))["runs"][0]
    assert run["status"] == "completed"
    assert run["report"]["would_send"] == {"/users/track": {"requests": 2, "objects": 100}}
    assert run["report"]["rejected"] == 1 and braze.state()["requests"] == 0


def test_a_dry_run_that_stops_raises_no_stopped_run_alarm(
    deployed: Any, braze: BrazeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emitted: list[str] = []
    add = importer.metrics.add_metric

    def recording(**kwargs: Any) -> None:
        emitted.append(kwargs["name"])
        add(**kwargs)

    monkeypatch.setattr(importer.metrics, "add_metric", recording)
    key = "incoming/dry-run/events/a.json"
    put = deployed.put_object(Bucket="imports", Key=key, Body=b'[{"external_id": "u1", ')
    event = s3_event("imports", key, 0, put["ETag"].strip('"'), put["VersionId"])
    (run,) = importer.handler(event, FakeContext(900))["runs"]
    assert run["status"] == "stopped" and run["report"]["dry_run"] is True
    assert "RunsStopped" not in emitted and "ObjectsRead" not in emitted
