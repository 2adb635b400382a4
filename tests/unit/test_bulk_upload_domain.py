"""The CI360 webhook's rules, the download allow-list, headers, part sizes and the copy itself."""

from __future__ import annotations

import base64
import gzip
import time
import unicodedata
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from bulk_upload.copier import (
    MIN_PART,
    Checkpoint,
    Copied,
    HandedOver,
    PermanentFailure,
    Staged,
    copy,
    header_columns,
    part_size,
)
from bulk_upload.webhook import BadRequest, UrlPolicy, object_key, parse

S3_URL = "https://staging-bucket.s3.us-east-1.amazonaws.com/export/data.csv?X-Amz-Signature=abc"


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "presignedUrls": {"dataFile": S3_URL, "metadataFile": S3_URL},
        "sendParameters": {"s3_filename": "weekly/audience.csv", "campaign": "spring"},
        "taskId": "t-1",
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], "body"),
        ({"sendParameters": {"s3_filename": "a.csv"}}, "presignedUrls"),
        (body(presignedUrls={"metadataFile": S3_URL}), "presignedUrls.dataFile"),
        (body(sendParameters={"campaign": "x"}), "sendParameters.s3_filename"),
        (body(sendParameters={"s3_filename": ""}), "sendParameters.s3_filename"),
    ],
)
def test_missing_or_invalid_fields_are_named(payload: Any, field: str) -> None:
    with pytest.raises(BadRequest) as raised:
        parse(payload)
    assert raised.value.field == field
    assert "amazonaws" not in str(raised.value)


def test_other_send_parameters_are_kept() -> None:
    assert parse(body()).sendParameters.model_dump() == {"s3_filename": "weekly/audience.csv", "campaign": "spring"}


@pytest.mark.parametrize(
    "name", ["../etc/passwd", "/abs.csv", "a/../../b.csv", "C:\\x.csv", "a//b.csv", ".hidden", "x" * 600,
             "a/b/c/d/e/f/g.csv", "tab\t.csv", "a\n/b.csv", "b.csv\n",
             "a/b.csv\r", "x\u202eg.csv", "a\u2028b.csv", "nul\x00.csv", "a\\b.csv", " /b.csv", "a /b.csv",
             "x" * 129, "a:b.csv", "\u0301a.csv",
             "/".join(["\U00020000" * 128] * 3 + ["\U00020000" * 120]),  # 2,025 UTF-8 bytes: over S3's 1,024
             "a\u3164b.csv", "\u3164.csv", "\u115f\u1160.csv", "\uffa0.csv", "x/\u3164/y.csv", "a\u034f.csv",
             "a\ufe0f\ufe0f.csv", "a\U000e0100.csv", "a\u180b.csv", "a \u0301b.csv"]
)  # fmt: skip
def test_names_that_could_escape_or_surprise_are_refused(name: str) -> None:
    with pytest.raises(BadRequest) as raised:
        object_key("ci360/", name)
    assert raised.value.field == "sendParameters.s3_filename"


def test_a_key_over_s3s_limit_is_refused_by_its_utf8_length() -> None:
    fits = "\U00020000" * 100 + "/" + "\U00020000" * 100
    assert len(object_key("ci360/", fits).encode()) <= 1024
    with pytest.raises(BadRequest, match="1024 bytes"):
        object_key("ci360/", "/".join(["\U00020000" * 128] * 3 + ["\U00020000" * 120]))


def test_composed_and_decomposed_names_give_one_key() -> None:
    assert object_key("ci360/", "cafe\u0301.csv") == object_key("ci360/", "caf\u00e9.csv") == "ci360/caf\u00e9.csv"


def test_plain_names_land_under_the_fixed_prefix() -> None:
    assert object_key("ci360/", " weekly/audience_2026-11.csv ") == "ci360/weekly/audience_2026-11.csv"


@pytest.mark.parametrize(
    "name", ["na me.csv", "ü.csv", "Zürich (Q3)/Kundenliste 2026.csv", "客户/名单.csv", "e\u0301te.csv", "a\u0e47b.csv"]
)
def test_ci360_names_with_spaces_and_letters_of_any_script_are_kept(name: str) -> None:
    assert object_key("ci360/", name) == "ci360/" + unicodedata.normalize("NFC", name)


def test_an_empty_metadata_url_means_no_metadata() -> None:
    assert parse(body(presignedUrls={"dataFile": S3_URL, "metadataFile": ""})).presignedUrls.metadataFile is None


@pytest.mark.parametrize(
    "host",
    [
        "s3.amazonaws.com", "b.s3.amazonaws.com", "s3.eu-west-1.amazonaws.com", "b.s3.eu-west-1.amazonaws.com",
        "s3-eu-west-1.amazonaws.com", "b.s3-external-1.amazonaws.com", "b.s3.dualstack.us-east-1.amazonaws.com",
        "s3-fips.us-gov-west-1.amazonaws.com", "b.s3-fips.dualstack.us-east-1.amazonaws.com",
        "b.s3.cn-north-1.amazonaws.com.cn",
    ],
)  # fmt: skip
def test_the_default_hosts_accept_s3_endpoint_forms(host: str) -> None:
    assert UrlPolicy().check("f", f"https://{host}/k?X-Amz-Signature=x") == host


@pytest.mark.parametrize(
    "host",
    [
        "s3-x-123.us-east-1.elb.amazonaws.com", "db.abc.us-east-1.rds.amazonaws.com", "x.s3-y.z.amazonaws.com",
        "a.b.s3.amazonaws.com", "ec2.us-east-1.amazonaws.com", "s3.amazonaws.com.evil.com", "s3.amazonaws.co",
    ],
)  # fmt: skip
def test_star_never_crosses_a_dot(host: str) -> None:
    with pytest.raises(BadRequest, match="not allowed"):
        UrlPolicy().check("f", f"https://{host}/k")


def test_the_schemes_default_port_is_accepted_and_others_need_an_entry() -> None:
    assert UrlPolicy().check("f", "https://b.s3.amazonaws.com:443/k") == "b.s3.amazonaws.com"
    with pytest.raises(BadRequest, match="not allowed"):
        UrlPolicy().check("f", "https://b.s3.amazonaws.com:8443/k")
    allowed = UrlPolicy(hosts=("*.s3.amazonaws.com:8443",))
    assert allowed.check("f", "https://b.s3.amazonaws.com:8443/k") == "b.s3.amazonaws.com:8443"


@pytest.mark.parametrize(
    "address",
    ["100.64.0.1", "[2002:a9fe:a9fe::]", "[::ffff:169.254.169.254]", "[64:ff9b::a9fe:a9fe]", "[::10.0.0.1]",
     "192.0.0.8", "198.18.0.1", "[fd00::1]", "[fe80::1]", "240.0.0.1", "0.0.0.0", "[2001::a9fe:a9fe]",
     "[::ffff:0:a9fe:a9fe]", "[::ffff:0:a00:1]", "[fec0::1]"],
)  # fmt: skip
def test_every_address_that_is_not_globally_routable_is_internal(address: str) -> None:
    wide = UrlPolicy(hosts=("*",))
    with pytest.raises(BadRequest, match="internal"):
        wide.check("f", f"https://{address}/x")


def test_public_addresses_pass_the_address_test() -> None:
    wide = UrlPolicy(hosts=("*",))
    for address in ("8.8.8.8", "[2600:1f18::1]", "[::ffff:8.8.8.8]"):
        assert wide.check("f", f"https://{address}/x") == address


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://bucket.s3.amazonaws.com/x", "must use https"),
        ("ftp://bucket.s3.amazonaws.com/x", "must use https"),
        ("https://example.com/x", "host is not allowed"),
        ("https://169.254.169.254/latest/meta-data", "host is not allowed"),
        ("https://user:pw@bucket.s3.amazonaws.com/x", "no credentials"),
        ("not a url", "must use https"),
    ],
)
def test_download_urls_are_limited_to_s3_over_https(url: str, problem: str) -> None:
    with pytest.raises(BadRequest) as raised:
        UrlPolicy().check("presignedUrls.dataFile", url)
    assert problem in raised.value.problem and url not in str(raised.value)


def test_internal_addresses_need_an_explicit_opt_in() -> None:
    wide = UrlPolicy(schemes=("https", "http"), hosts=("*", "127.0.0.1:9000"))
    for url in ("https://10.1.2.3/x", "https://169.254.169.254/x", "http://[::1]/x", "https://localhost/x"):
        with pytest.raises(BadRequest, match="internal"):
            wide.check("f", url)
    assert wide.check("f", "http://127.0.0.1:9000/bucket/key") == "127.0.0.1:9000"
    assert UrlPolicy().check("f", S3_URL) == "staging-bucket.s3.us-east-1.amazonaws.com"


def test_both_metadata_forms_give_the_header() -> None:
    as_json = (
        b'[{"columnName": "identity_id", "dataType": "STRING"}, {"columnName": "email, work", "dataType": "STRING"}]'
    )
    assert header_columns(as_json) == ["identity_id", "email, work"]
    assert header_columns(b"\xef\xbb\xbfidentity_id,score\n") == ["identity_id", "score"]
    assert header_columns(b"  ") is None
    with pytest.raises(PermanentFailure):
        header_columns(b'[{"nope": 1}]')


def test_a_csv_header_whose_first_name_is_bracketed_is_not_taken_for_json() -> None:
    assert header_columns(b"[id],[name]\n") == ["[id]", "[name]"]


def test_part_size_fits_s3_limits_for_any_size() -> None:
    assert part_size(10) == MIN_PART and part_size(None) > MIN_PART
    for size in (5 << 30, 200 << 30, 4 << 40):
        chosen = part_size(size)
        assert chosen >= MIN_PART and -(-size // chosen) <= 10_000 and chosen % (1 << 20) == 0


def crc(data: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


class Upload:
    def __init__(self, fail_after: int | None = None, abort_fails: bool = False) -> None:
        self.upload_id = "u-1"
        self.checksum: str | None = "CRC32"
        self.numbered: dict[int, bytes] = {}
        self.fail_after = fail_after
        self.abort_fails = abort_fails
        self.state = "open"
        self.started: dict[str, Any] = {}

    def part(self, data: bytes | bytearray | memoryview, number: int) -> tuple[str, str | None]:
        if self.fail_after is not None and number > self.fail_after:
            raise ConnectionError("S3 went away")
        self.numbered[number] = bytes(data)  # the buffer is reused after the call
        return f'"etag-{number}"', crc(data) if self.checksum else None

    @property
    def parts(self) -> list[bytes]:
        return [self.numbered[n] for n in sorted(self.numbered)]

    def complete(self, parts: list[tuple[int, str, str | None]]) -> str:
        sums = [crc(self.numbered[n]) if self.checksum else None for n in sorted(self.numbered)]
        assert parts == [(n, f'"etag-{n}"', c) for n, c in zip(sorted(self.numbered), sums, strict=True)]
        self.state = "complete"
        return "v1"

    def abort(self) -> None:
        if self.abort_fails:
            raise TimeoutError("abort timed out")
        self.state = "aborted"
        self.numbered.clear()


class Target:
    def __init__(self, upload: Upload) -> None:
        self.upload = upload

    def start(self, key: str, *, content_type: str, content_encoding: str | None) -> Upload:
        self.upload.started = {"content_type": content_type, "content_encoding": content_encoding}
        return self.upload

    def resume(self, key: str, upload_id: str, *, checksum: str | None) -> Upload:
        assert upload_id == self.upload.upload_id and checksum == self.upload.checksum
        return self.upload


class Download:
    def __init__(self, data: bytes, metadata: bytes = b"identity_id,score\n", encoding: str | None = None) -> None:
        self.data = data
        self.metadata = metadata
        self.encoding = encoding
        self.opened: list[tuple[int, str | None]] = []

    def small(self, url: str, limit: int) -> bytes:
        return self.metadata

    def stream(self, url: str, *, offset: int = 0, etag: str | None = None) -> Staged:
        self.opened.append((offset, etag))
        rest = self.data[offset:]
        chunks = iter([rest[i : i + 999_983] for i in range(0, len(rest), 999_983)])
        return Staged(len(self.data), '"e1"', "text/csv", self.encoding, chunks)


def test_copy_writes_the_header_then_the_data_in_parts() -> None:
    data = b"".join(b"id-%07d,%d\n" % (i, i % 100) for i in range(1_100_000))  # ~15 MB
    upload = Upload()
    copied = copy("ci360/a.csv", "d", "m", Download(data), Target(upload))
    joined = b"".join(upload.parts)
    assert joined == b"identity_id,score\n" + data and upload.state == "complete"
    assert copied.parts == len(upload.parts) == 2 and copied.size == len(joined)
    assert all(len(p) == MIN_PART for p in upload.parts[:-1])


def test_no_metadata_means_no_header_and_a_failed_copy_aborts() -> None:
    upload = Upload()
    copied = copy("k", "d", None, Download(b"x,1\n"), Target(upload))
    assert b"".join(upload.parts) == b"x,1\n" and copied.header is None
    failing = Upload(fail_after=1)
    with pytest.raises(ConnectionError):
        copy("k", "d", None, Download(b"y" * (MIN_PART * 3)), Target(failing))
    assert failing.state == "aborted" and not failing.parts


def test_metadata_that_is_not_utf8_is_a_permanent_failure_with_its_reason() -> None:
    with pytest.raises(PermanentFailure, match="not UTF-8"):
        header_columns(b"identity_id,caf\xe9\n")


@pytest.mark.parametrize("separator", ["\u2028", "\u0085", "\x1c", "\x1d", "\x1e", "\u2029", "\x0b", "\x0c"])
def test_a_csv_header_splits_rows_only_at_cr_or_lf(separator: str) -> None:
    metadata = f"identity_id,a{separator}b,c\r\nnext line".encode()
    assert header_columns(metadata) == ["identity_id", f"a{separator}b", "c"]
    assert header_columns(b'identity_id,"x\ny",z\n') == ["identity_id", "x\ny", "z"]


def test_a_failed_abort_does_not_replace_the_original_failure() -> None:
    class Refusing(Download):
        def stream(self, url: str, *, offset: int = 0, etag: str | None = None) -> Staged:
            staged = super().stream(url, offset=offset, etag=etag)

            def chunks() -> Iterator[bytes]:
                yield from staged.chunks
                raise PermanentFailure("the download answered 403")

            return Staged(staged.size, staged.etag, staged.content_type, None, chunks())

    with pytest.raises(PermanentFailure, match="403"):
        copy("k", "d", None, Refusing(b"x" * 100), Target(Upload(abort_fails=True)))


def test_a_gzip_stored_file_is_copied_as_stored_with_the_header_as_its_own_member() -> None:
    data = gzip.compress(b"id-1,10\nid-2,20\n")
    upload = Upload()
    copy("k", "d", "m", Download(data, encoding="gzip"), Target(upload))
    stored = b"".join(upload.parts)
    assert stored.endswith(data) and gzip.decompress(stored) == b"identity_id,score\nid-1,10\nid-2,20\n"
    assert upload.started == {"content_type": "text/csv", "content_encoding": "gzip"}
    with pytest.raises(PermanentFailure, match="Content-Encoding br"):
        copy("k", "d", "m", Download(b"\x1b\x00", encoding="br"), Target(Upload()))


def test_a_copy_hands_over_at_a_part_boundary_and_continues_from_the_checkpoint() -> None:
    data = bytes(range(256)) * (MIN_PART * 3 // 256 + 7)  # three parts and a bit
    upload, download = Upload(), Download(data)
    asked = iter([False, True])
    first = copy("k", "d", "m", download, Target(upload), hand_over=lambda: next(asked, False))
    assert isinstance(first, HandedOver) and upload.state == "open"
    checkpoint = Checkpoint.loads(first.checkpoint.dumps())  # as stored in the job record
    head = len(b"identity_id,score\n")
    stored = b"identity_id,score\n" + data
    sums = [crc(stored[:MIN_PART]), crc(stored[MIN_PART : 2 * MIN_PART])]
    assert checkpoint.parts == [(1, '"etag-1"', sums[0]), (2, '"etag-2"', sums[1])] and checkpoint.checksum == "CRC32"
    assert checkpoint.written == 2 * MIN_PART
    assert checkpoint.offset == 2 * MIN_PART - head and checkpoint.hops == 1
    resumed_at = checkpoint.offset
    done = copy("k", "d", "m", download, Target(upload), checkpoint=checkpoint)
    assert isinstance(done, Copied) and upload.state == "complete" and done.header == ["identity_id", "score"]
    assert b"".join(upload.parts) == b"identity_id,score\n" + data and done.size == head + len(data)
    assert download.opened == [(0, None), (resumed_at, '"e1"')]  # resumed pinned to the first ETag


def test_a_copy_that_ends_on_a_part_boundary_completes_instead_of_handing_over() -> None:
    head = len(b"identity_id,score\n")
    data = b"z" * (2 * MIN_PART - head)  # header and data fill exactly two parts
    upload = Upload()
    asked = iter([False, True])
    done = copy("k", "d", "m", Download(data), Target(upload), hand_over=lambda: next(asked, True))
    assert isinstance(done, Copied) and upload.state == "complete" and done.parts == 2
    assert b"".join(upload.parts) == b"identity_id,score\n" + data


def test_a_transient_failure_after_a_hand_over_keeps_the_upload_for_the_retry() -> None:
    data = b"y" * (MIN_PART * 3)
    upload = Upload()
    first = copy("k", "d", None, Download(data), Target(upload), hand_over=lambda: True)
    assert isinstance(first, HandedOver)
    upload.fail_after = 1
    with pytest.raises(ConnectionError):
        copy("k", "d", None, Download(data), Target(upload), checkpoint=first.checkpoint)
    assert upload.state == "open" and upload.numbered[1] == data[:MIN_PART]


def test_a_checkpoint_of_ten_thousand_parts_fits_a_dynamodb_item() -> None:
    parts = [(i, f'"{i:032x}"', crc(i.to_bytes(4, "big"))) for i in range(1, 10_001)]
    checkpoint = Checkpoint("u", MIN_PART, 1 << 40, 1 << 40, list(parts), '"src"', ["a"], 3, "CRC32")
    stored = checkpoint.dumps()
    assert len(stored) < 300_000 and Checkpoint.loads(stored) == checkpoint
    odd = Checkpoint("u", MIN_PART, 5, 5, [(1, '"abc-1"', None)])
    assert Checkpoint.loads(odd.dumps()) == odd


def test_a_checkpoint_from_before_checksums_continues_its_upload_without_them() -> None:
    # A job handed over by the previous release: its upload was started without a checksum algorithm
    old = {"upload_id": "u-1", "part_size": MIN_PART, "offset": MIN_PART, "written": MIN_PART,
           "source_etag": '"e1"', "header": None, "hops": 1, "etags": ['"etag-1"']}  # fmt: skip
    checkpoint = Checkpoint.loads(orjson.dumps(old).decode())
    assert checkpoint.checksum is None and checkpoint.parts == [(1, '"etag-1"', None)]
    data = b"q" * (MIN_PART + 10)
    upload = Upload()
    upload.checksum = None
    upload.numbered[1] = data[:MIN_PART]
    done = copy("k", "d", None, Download(data), Target(upload), checkpoint=checkpoint)
    assert isinstance(done, Copied) and upload.state == "complete" and b"".join(upload.parts) == data


def test_large_parts_fly_fewer_at_once_and_a_file_too_large_for_the_memory_is_refused_clearly() -> None:
    class Counting(Upload):
        def __init__(self) -> None:
            super().__init__()
            self.flying = self.most = 0

        def part(self, data: bytes | bytearray | memoryview, number: int) -> tuple[str, str | None]:
            self.flying += 1
            self.most = max(self.most, self.flying)
            time.sleep(0.01)
            self.flying -= 1
            return super().part(data, number)

    upload = Counting()
    copy("k", "d", None, Download(b"z" * MIN_PART * 6), Target(upload), in_flight=3, buffer_budget=3 * MIN_PART)
    assert upload.most == 2 and b"".join(upload.parts) == b"z" * MIN_PART * 6
    huge = Download(b"")
    huge.stream = lambda url, **kw: Staged(4 << 40, '"e"', None, None, iter([]))  # type: ignore[method-assign]
    refused = Upload()
    with pytest.raises(PermanentFailure, match="MiB parts"):
        copy("k", "d", None, huge, Target(refused), buffer_budget=600 << 20)
    assert refused.state == "aborted"


def test_a_checkpoint_too_large_for_the_job_record_fails_the_copy_clearly() -> None:
    class OddEtags(Upload):
        def part(self, data: bytes | bytearray | memoryview, number: int) -> tuple[str, str | None]:
            _, checksum = super().part(data, number)
            return f'"{"X" * 60}-{number}"', checksum  # not MD5 hex: kept as text

    upload = OddEtags()
    with pytest.raises(PermanentFailure, match="hand over"):
        copy("k", "d", None, Download(b"z" * MIN_PART * 3), Target(upload), hand_over=lambda: True,
             checkpoint_limit=100)  # fmt: skip
    assert upload.state == "aborted"


def test_a_checkpoint_with_fields_it_does_not_know_still_loads() -> None:
    # A job handed over by a later release (rolled back): unknown fields are ignored
    stored = orjson.loads(Checkpoint("u", MIN_PART, 5, 5, [(1, '"abc-1"', None)]).dumps())
    assert Checkpoint.loads(orjson.dumps(stored | {"later": 1}).decode()).upload_id == "u"


@pytest.mark.parametrize(
    "parts",
    [
        [(1, '"' + "a" * 32 + '"', "6Le+Qw=="), (2, '"' + "b" * 32 + '"', None)],  # a part without its checksum
        [(1, '"' + "a" * 32 + '"', base64.b64encode(bytes(32)).decode())],  # a 32-byte digest (SHA256)
    ],
)
def test_a_checkpoint_round_trips_whatever_checksums_its_parts_have(parts: list[Any]) -> None:
    algorithm = "CRC32" if parts[-1][2] is None else "SHA256"
    state = Checkpoint("u", 8 << 20, 10, 10, list(parts), '"e"', None, checksum=algorithm)
    assert Checkpoint.loads(state.dumps()).parts == parts


def test_a_checkpoint_with_its_checksums_listed_keeps_them() -> None:
    listed = orjson.dumps(
        {"upload_id": "u", "part_size": 8 << 20, "offset": 1, "written": 1, "source_etag": None, "header": None,
         "hops": 1, "etags": ['"x"'], "checksum": "CRC32", "checksums": ["6Le+Qw=="]}
    ).decode()  # fmt: skip
    assert Checkpoint.loads(listed).parts == [(1, '"x"', "6Le+Qw==")]
