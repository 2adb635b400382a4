"""The full-send tag of an object version, read through S3Source over the fake S3."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from botocore.exceptions import ClientError
from braze_importer.aws import S3Source
from braze_importer.deltas import FULL_SEND_TAG
from braze_importer.ports import ObjectRef

from tests.fakes import FakeS3

BUCKET = "imports"
KEY = "incoming/jane.doe@example.com.json"


class RefusingS3(FakeS3):
    """FakeS3 answering every tag read with one S3 error."""

    def __init__(self, code: str, status: int) -> None:
        super().__init__()
        self.code, self.status = code, status

    def get_object_tagging(self, Bucket: str, Key: str, **kw: Any) -> dict[str, Any]:
        error = {
            "Error": {"Code": self.code, "Message": self.code},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }
        raise ClientError(error, "GetObjectTagging")  # type: ignore[arg-type]


def tagged(tags: dict[str, str]) -> FakeS3:
    s3 = FakeS3()
    s3.objects[(BUCKET, KEY)] = b"[]"
    s3.tags[(BUCKET, KEY)] = tags
    return s3


@pytest.mark.parametrize("value", ["full", "FULL", " Full ", "full\n"])
def test_the_tag_asks_for_a_full_send_in_any_case_and_spacing(value: str) -> None:
    s3 = tagged({"project": "spring", FULL_SEND_TAG[0]: value})
    assert S3Source(s3).full_send_requested(ObjectRef(BUCKET, KEY, "v1", None))


@pytest.mark.parametrize("tags", [{}, {"braze-send": "delta"}, {"braze-send": "fuller"}, {"Braze-Send": "full"}])
def test_other_tags_or_values_or_none_ask_for_nothing(tags: dict[str, str]) -> None:
    assert not S3Source(tagged(tags)).full_send_requested(ObjectRef(BUCKET, KEY, "v1", None))


def test_the_tags_read_are_those_of_the_run_s_version_when_it_has_one() -> None:
    s3 = tagged({})
    source = S3Source(s3)
    source.full_send_requested(ObjectRef(BUCKET, KEY, "v7", '"etag"'))
    source.full_send_requested(ObjectRef(BUCKET, KEY, None, '"etag"'))
    assert s3.tag_reads == [{"Bucket": BUCKET, "Key": KEY, "VersionId": "v7"}, {"Bucket": BUCKET, "Key": KEY}]


@pytest.mark.parametrize(("code", "status"), [("AccessDenied", 403), ("NoSuchKey", 404), ("NoSuchVersion", 404)])
def test_tags_s3_will_not_show_ask_for_nothing_and_the_warning_names_no_key(
    code: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert not S3Source(RefusingS3(code, status)).full_send_requested(ObjectRef(BUCKET, KEY, "v1", None))
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        code in warning.getMessage() and "jane" not in warning.getMessage() and "incoming/" not in warning.getMessage()
    )


def test_an_unexpected_s3_error_is_raised_not_taken_for_no_tag() -> None:
    with pytest.raises(ClientError):
        S3Source(RefusingS3("InternalError", 500)).full_send_requested(ObjectRef(BUCKET, KEY, "v1", None))
