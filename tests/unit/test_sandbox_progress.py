"""The sandbox's progress line: rewritten in place on a terminal, absent from logs and pipes."""

from __future__ import annotations

import gzip
import io
import time
from pathlib import Path

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sandbox.progress import CLEAR, Extent, ProgressLine, line


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_line_rewritten_and_cleared_at_the_end() -> None:
    stream = Terminal()
    extents = {"incoming/a.jsonl": Extent(8_000_000, 6_000, exact=True)}
    with ProgressLine(lambda: [("incoming/a.jsonl", 1_500)], extents, stream, every=0.02) as progress:
        time.sleep(0.1)
        progress.say("invocation 1: completed")
    written = stream.getvalue()
    assert written.count(CLEAR + "1,500 of 6,000 objects read (25 %), 2.0 of 8.0 MB, ") >= 2
    assert CLEAR + "invocation 1: completed\n" in written
    assert written.endswith(CLEAR) and written.count("\n") == 1  # only what was said stays


def test_a_pipe_gets_the_lines_said_and_no_progress() -> None:
    stream = io.StringIO()
    with ProgressLine(lambda: [("k", 1)], {"k": Extent(1, 1)}, stream, every=0.01) as progress:
        time.sleep(0.05)
        progress.say("invocation 1: completed")
    assert stream.getvalue() == "invocation 1: completed\n"


def test_several_runs_add_up_and_an_estimate_says_about() -> None:
    extents = {"a": Extent(1_000_000, 1_000, exact=True), "b": Extent(3_000_000, 9_000), "c": Extent(10, 0)}
    progress = ProgressLine(lambda: [("a", 1_000), ("b", 3_000), ("other", 5)], extents, Terminal())
    assert progress.now(10.0) == ("4,005 of about 10,000 objects read (40 %), 2.0 of 4.0 MB, 400 objects/s, 0:15 left")
    unknown = ProgressLine(lambda: [("a", 10)], {"a": Extent(1_000_000)}, Terminal())
    assert unknown.now(1.0) == "10 objects read, 0.0 of 1.0 MB, 10 objects/s, time left not known yet"


def test_the_line_counts_objects_bytes_the_rate_and_the_time_left() -> None:
    assert line(12_345, 3_200_000, 10_000_000, 3.0, expected=40_000, exact=False) == (
        "12,345 of about 40,000 objects read (31 %), 3.2 of 10.0 MB, 4,115 objects/s, 0:07 left"
    )
    assert line(1, 10_000, 36_010_000, 1.0, expected=3_601).endswith(" 0.0 of 36.0 MB, 1 objects/s, 1:00:00 left")
    assert line(10, 500_000, 800_000, 10.0, expected=16) == (
        "10 of 16 objects read (62 %), 500.0 of 800.0 KB, 1 objects/s, 0:06 left"
    )
    assert "1.5 of 2.0 GB" in line(10, 1.5e9, 2_000_000_000, 10.0, expected=20)
    assert line(0, 0, 10, 2.0, expected=5).endswith("time left not known yet")


LINES = b"".join(b'{"external_id": "u%06d", "n": 1}\n' % i for i in range(100_000))  # 3.6 MB


@pytest.mark.parametrize(
    ("name", "data", "objects", "exact"),
    [
        ("small.jsonl", LINES[:3_500], 100, True),
        ("users.jsonl", LINES, 100_000, False),
        ("users.jsonl.gz", gzip.compress(LINES), 100_000, False),
        ("small.jsonl.gz", gzip.compress(LINES[:3_500]), 100, True),
        ("users.json", b"[" + LINES.replace(b"}\n", b"},")[:-1] + b"]", 100_000, False),
        ("small.json", b'\xef\xbb\xbf [{"a": 1}, {"a": 2},\n {"a": 3}]', 3, True),
        ("users.csv", b"external_id,n\n" + b"".join(b"u%06d,1\n" % i for i in range(200_000)), 200_000, False),
        ("empty.jsonl", b"", 0, True),
    ],
)
def test_a_files_objects_are_counted_or_estimated_from_its_first_megabyte(
    tmp_path: Path, name: str, data: bytes, objects: int, exact: bool
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    extent = Extent.of(path)
    assert extent.exact is exact and extent.objects is not None
    assert extent.objects == objects if exact else abs(extent.objects - objects) <= objects // 100
    assert extent.done(objects) == extent.size


def test_parquet_and_avro_files_are_counted_by_their_own_metadata(tmp_path: Path) -> None:
    parquet = tmp_path / "users.parquet"
    pq.write_table(pa.table({"external_id": [f"u{i}" for i in range(400)]}), parquet, row_group_size=400)
    assert Extent.of(parquet) == Extent(parquet.stat().st_size, 400, exact=True)
    avro = tmp_path / "users.avro"
    schema = {"type": "record", "name": "u", "fields": [{"name": "external_id", "type": "string"}]}
    with avro.open("wb") as file:
        fastavro.writer(file, schema, ({"external_id": f"user-{i:08d}"} for i in range(200_000)), sync_interval=4_000)
    extent = Extent.of(avro)
    assert not extent.exact and extent.objects is not None and abs(extent.objects - 200_000) <= 4_000


def test_a_file_the_run_will_reject_shows_no_share(tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1" + b"\0" * 20)
    assert Extent.of(broken) == Extent(24) and Extent(24).done(10) == 0
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(b"\x1f\x8b" + b"\xff" * 100)
    assert Extent.of(corrupt).objects is None


def test_a_gzip_file_is_estimated_by_its_compression_not_its_trailer(tmp_path: Path) -> None:
    # Several members (the trailer is the last one's) and padding after them: still about right
    path = tmp_path / "members.jsonl.gz"
    path.write_bytes(b"".join(gzip.compress(LINES[i : i + 700_000]) for i in range(0, len(LINES), 700_000)) + b"\0" * 8)
    extent = Extent.of(path)
    assert not extent.exact and extent.objects is not None and abs(extent.objects - 100_000) <= 1_000
    small = tmp_path / "small-members.jsonl.gz"
    small.write_bytes(gzip.compress(LINES[:35_000]) + gzip.compress(LINES[35_000:70_000]) + b"\0" * 8)
    assert Extent.of(small) == Extent(small.stat().st_size, 2_000, exact=True)


def test_two_files_of_one_name_count_as_their_sum() -> None:
    both = Extent(4_000_000, 30_000, exact=True) + Extent(5_000_000, 30_000)
    assert both == Extent(9_000_000, 60_000, exact=False)
    assert Extent(1, 5) + Extent(1) == Extent(2, None, exact=False)
