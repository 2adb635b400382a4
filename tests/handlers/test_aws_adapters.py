"""The AWS adapters against moto: conditional run transitions, ranged and gzip reads."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import boto3
import pytest
from braze_importer.aws import DynamoRunStore, S3Source, read_api_key
from braze_importer.ports import ObjectRef
from braze_importer.runs import COMPLETED, CONTINUING, RunRecord
from moto import mock_aws

from tests.fakes import create_runs_table

pytestmark = pytest.mark.usefixtures("aws_env", "moto")


@pytest.fixture
def moto(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def store() -> DynamoRunStore:
    client = boto3.client("dynamodb")
    create_runs_table(client)
    return DynamoRunStore(client, "runs")


def record() -> RunRecord:
    return RunRecord("b/k#v", "b", "k", "v", None, "array", False, owner="first")


def test_run_transitions_are_conditional(store: DynamoRunStore) -> None:
    assert store.create(record())
    assert not store.create(record())  # duplicated notification
    run = store.get("b/k#v")
    assert run is not None and run.owner == "first"
    run.status, run.seq = CONTINUING, 2
    assert store.save(run, expected_seq=1)
    assert not store.save(run, expected_seq=1)  # no longer running at seq 1
    claimed = store.claim("b/k#v", 2, "second")
    assert claimed is not None and claimed.owner == "second"
    assert store.claim("b/k#v", 2, "duplicate") is None  # duplicated continuation
    assert store.reopen("b/k#v", "op", force=False) is None  # running: not stopped
    forced = store.reopen("b/k#v", "op", force=True)
    assert forced is not None and forced.seq == 3
    forced.status = COMPLETED
    assert store.save(forced, expected_seq=3)
    assert store.reopen("b/k#v", "op", force=True) is None  # completed runs stay completed


def test_s3_source_resumes_plain_files_by_range_and_gzip_by_skipping() -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bucket")
    s3.put_bucket_versioning(Bucket="bucket", VersioningConfiguration={"Status": "Enabled"})
    data = b"0123456789" * 1000
    plain = s3.put_object(Bucket="bucket", Key="p.json", Body=data)
    zipped = s3.put_object(Bucket="bucket", Key="z.json.gz", Body=gzip.compress(data))
    source = S3Source(s3)
    plain_ref = ObjectRef("bucket", "p.json", plain["VersionId"], None)
    zipped_ref = ObjectRef("bucket", "z.json.gz", zipped["VersionId"], None)
    assert b"".join(source.chunks(plain_ref, 1234, gzip=False)) == data[1234:]
    assert b"".join(source.chunks(plain_ref, len(data), gzip=False)) == b""
    assert b"".join(source.chunks(zipped_ref, 4321, gzip=True)) == data[4321:]
    assert source.is_gzip(zipped_ref) and not source.is_gzip(plain_ref)
    s3.put_object(Bucket="bucket", Key="p.json", Body=b"overwritten")
    assert b"".join(source.chunks(plain_ref, 0, gzip=False)) == data  # pinned to its version


def test_the_full_send_tag_is_read_from_the_run_s_own_version() -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bucket")
    s3.put_bucket_versioning(Bucket="bucket", VersioningConfiguration={"Status": "Enabled"})
    full = s3.put_object(Bucket="bucket", Key="incoming/a.json", Body=b"[]", Tagging="braze-send=Full&team=crm")
    plain = s3.put_object(Bucket="bucket", Key="incoming/a.json", Body=b"[]")  # a later version, untagged
    source = S3Source(s3)
    assert source.full_send_requested(ObjectRef("bucket", "incoming/a.json", full["VersionId"], None))
    assert not source.full_send_requested(ObjectRef("bucket", "incoming/a.json", plain["VersionId"], None))
    assert not source.full_send_requested(ObjectRef("bucket", "incoming/a.json", None, None))  # the latest
    assert not source.full_send_requested(ObjectRef("bucket", "incoming/gone.json", None, None))  # NoSuchKey


def test_multi_member_gzip_is_read_whole() -> None:
    from braze_importer.aws import _gunzip

    stream = gzip.compress(b"first,") + gzip.compress(b"second")
    assert b"".join(_gunzip(iter([stream[:7], stream[7:]]))) == b"first,second"


def test_api_key_secret_as_plain_string_or_json() -> None:
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="plain", SecretString=" key-1 \n")
    secrets.create_secret(Name="json", SecretString='{"api_key": "key-2"}')
    secrets.create_secret(Name="empty", SecretString="{}")
    assert read_api_key(secrets, "plain") == "key-1"
    assert read_api_key(secrets, "json") == "key-2"
    with pytest.raises(ValueError, match="empty"):
        read_api_key(secrets, "empty")


def test_a_zero_byte_object_is_not_gzip_and_reads_as_nothing() -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bucket")
    put = s3.put_object(Bucket="bucket", Key="empty.json", Body=b"")
    ref = ObjectRef("bucket", "empty.json", put.get("VersionId"), put["ETag"])
    source = S3Source(s3)
    assert not source.is_gzip(ref)  # S3 refuses any range of an empty object
    assert b"".join(source.chunks(ref, 0, gzip=False)) == b""


def test_run_slots_in_the_runs_table_lease_renew_expire_and_release(store: DynamoRunStore) -> None:
    from braze_importer.aws import DynamoRunSlots

    slots = DynamoRunSlots(boto3.client("dynamodb"), "runs", 1)
    assert slots.acquire("run-a", now=1000.0, lease_seconds=60.0)
    assert slots.acquire("run-a", now=1030.0, lease_seconds=60.0)  # its own slot: renewed
    assert not slots.acquire("run-b", now=1080.0, lease_seconds=60.0)  # held until 1090
    assert slots.acquire("run-b", now=1091.0, lease_seconds=60.0)  # run-a's lease ran out
    assert not slots.acquire("run-a", now=1092.0, lease_seconds=60.0)
    slots.release("run-b")
    assert slots.acquire("run-a", now=1093.0, lease_seconds=60.0)


def test_queued_runs_are_listed_oldest_first_and_start_once(store: DynamoRunStore) -> None:
    from braze_importer.aws import DynamoRunSlots

    slots = DynamoRunSlots(boto3.client("dynamodb"), "runs", 1)
    slots.enqueue("run-late", 3, queued_at=2000.0)
    slots.enqueue("run-early", 2, queued_at=1000.0)
    assert slots.waiting() == [("run-early", 2), ("run-late", 3)]
    slots.forget("run-late", 2)  # an older note: the newer one stays
    slots.forget("run-early", 2)
    assert slots.waiting() == [("run-late", 3)]
    run = record()
    assert store.create(run)
    run.status, run.seq = "queued", 2
    assert store.save(run, expected_seq=1)
    assert store.start_queued(run.run_id, 2)
    assert not store.start_queued(run.run_id, 2)  # a second starter loses
    started = store.get(run.run_id)
    assert started is not None and (started.status, started.seq) == ("continuing", 3)
    assert store.claim(run.run_id, 3, "worker") is not None


def test_seek_points_are_kept_beside_the_run_and_gzip_resumes_from_them(store: DynamoRunStore) -> None:
    from braze_importer.aws import DynamoSeekPoints
    from braze_importer.ports import SeekPoint

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bucket")
    data = b"".join(b'{"n": %d, "pad": "%s"}\n' % (i, str(i * 7919).encode() * 3) for i in range(100_000))
    put = s3.put_object(Bucket="bucket", Key="z.jsonl.gz", Body=gzip.compress(data))
    ref = ObjectRef("bucket", "z.jsonl.gz", put.get("VersionId"), put["ETag"])
    source = S3Source(s3, seek_spacing=256 << 10)
    points: list[SeekPoint] = []
    assert b"".join(source.chunks(ref, 0, gzip=True, on_point=points.append)) == data
    seeks = DynamoSeekPoints(boto3.client("dynamodb"), "runs")
    seeks.save("b/k#v", points[-2])
    point = seeks.load("b/k#v")
    assert point == points[-2] and seeks.load("other") is None
    offset = point.out_offset + 12345
    assert b"".join(source.chunks(ref, offset, gzip=True, resume_from=point)) == data[offset:]


@pytest.mark.parametrize("zipped", [False, True])
def test_a_pinned_read_of_a_version_that_is_gone_raises_source_gone_when_read(zipped: bool) -> None:
    from braze_importer.ports import SourceGone

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="versioned")
    s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket="plain")
    data = b'{"external_id": "a"}\n' * 1000
    body = gzip.compress(data) if zipped else data
    source = S3Source(s3)

    v = s3.put_object(Bucket="versioned", Key="k", Body=body)
    pinned = ObjectRef("versioned", "k", v["VersionId"], v["ETag"])
    s3.put_object(Bucket="versioned", Key="k", Body=b"new")  # an overwrite keeps the pinned version
    s3.delete_object(Bucket="versioned", Key="k")  # so does a delete (a delete marker)
    assert b"".join(source.chunks(pinned, 100, gzip=zipped)) == data[100:]
    s3.delete_object(Bucket="versioned", Key="k", VersionId=v["VersionId"])  # deleted for good

    o = s3.put_object(Bucket="plain", Key="o", Body=body)
    overwritten = ObjectRef("plain", "o", None, o["ETag"].strip('"'))  # as S3 notifications give it
    assert b"".join(source.chunks(overwritten, 100, gzip=zipped)) == data[100:]
    s3.put_object(Bucket="plain", Key="o", Body=body + b"\n")

    d = s3.put_object(Bucket="plain", Key="d", Body=body)
    deleted = ObjectRef("plain", "d", None, d["ETag"])
    s3.delete_object(Bucket="plain", Key="d")

    for ref, code in ((pinned, "NoSuchVersion"), (overwritten, "PreconditionFailed"), (deleted, "NoSuchKey")):
        stream = source.chunks(ref, 100, gzip=zipped)  # nothing is requested until it is read
        with pytest.raises(SourceGone) as raised:
            next(iter(stream))
        assert raised.value.offset == 100 and code in raised.value.message
        with pytest.raises(SourceGone) as raised:  # an error is never "not gzip"
            source.is_gzip(ref)
        assert raised.value.offset == 0 and code in raised.value.message
