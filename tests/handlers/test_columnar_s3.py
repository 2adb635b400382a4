"""Parquet and Avro runs against moto's S3: ranged GETs pinned to the version, and the handler."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from braze_importer.aws import S3Source
from braze_importer.ports import ObjectRef, SourceDenied, SourceGone
from braze_importer.service import handle_start
from moto import mock_aws

from tests.fakes import FakeBraze, make_deps

pytestmark = pytest.mark.usefixtures("aws_env", "moto")


@pytest.fixture
def moto(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


def test_read_range_is_pinned_to_the_version_and_gives_the_object_size() -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="versioned")
    s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    body = bytes(range(256)) * 40
    v = s3.put_object(Bucket="versioned", Key="k", Body=body)
    ref = ObjectRef("versioned", "k", v["VersionId"], v["ETag"])
    s3.put_object(Bucket="versioned", Key="k", Body=b"overwritten")  # the pinned version stays readable
    source = S3Source(s3)
    assert source.read_range(ref, 0, 4) == (body[:4], len(body))
    assert source.read_range(ref, len(body) - 8, 100) == (body[-8:], len(body))  # nothing past the end
    assert source.read_range(ref, len(body), 10)[0] == b""
    s3.delete_object(Bucket="versioned", Key="k", VersionId=v["VersionId"])
    with pytest.raises(SourceGone) as gone:
        source.read_range(ref, 100, 10)
    assert gone.value.offset == 100 and "NoSuchVersion" in gone.value.message


def test_read_range_denied_is_source_denied() -> None:
    class Denying:
        def get_object(self, **_: Any) -> dict[str, Any]:
            error = {"Error": {"Code": "AccessDenied", "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
            raise ClientError(error, "GetObject")  # type: ignore[arg-type]

    with pytest.raises(SourceDenied):
        S3Source(Denying()).read_range(ObjectRef("b", "k", "v", None), 0, 4)


def test_a_suffix_less_parquet_export_imports_from_moto() -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="data")
    rows = [{"external_id": f"u{i}", "first_name": f"N{i}"} for i in range(500)]
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf, row_group_size=64)
    v = s3.put_object(Bucket="data", Key="incoming/attributes/20260301_0001_abc", Body=buf.getvalue())
    braze = FakeBraze()
    deps = make_deps(braze, s3)  # type: ignore[arg-type]  # the real client, as the function has
    ref = ObjectRef("data", "incoming/attributes/20260301_0001_abc", v.get("VersionId"), v["ETag"].strip('"'), 10)
    result = handle_start(ref, "a", deps, lambda: True)
    assert result.status == "completed", result.report
    assert result.report is not None and result.report["source"]["format"] == "parquet"
    assert braze.stored == rows
