"""The sandbox's progress line: rewritten in place on a terminal, absent from logs and pipes."""

from __future__ import annotations

import gzip
import io
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sandbox.progress import CLEAR, Extent, ProgressLine, line


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_line_rewritten_and_cleared_at_the_end() -> None:
    stream = Terminal()
    with ProgressLine(lambda: (1_500, 2_000_000), 8_000_000, stream, every=0.02) as progress:
        time.sleep(0.1)
        progress.say("invocation 1: completed")
    written = stream.getvalue()
    assert written.count(CLEAR + "1,500 objects read, 2.0 of 8.0 MB done (25 %), ") >= 2
    assert CLEAR + "invocation 1: completed\n" in written
    assert written.endswith(CLEAR) and written.count("\n") == 1  # only what was said stays


def test_a_pipe_gets_the_lines_said_and_no_progress() -> None:
    stream = io.StringIO()
    with ProgressLine(lambda: (1, 1), 1, stream, every=0.01) as progress:
        time.sleep(0.05)
        progress.say("invocation 1: completed")
    assert stream.getvalue() == "invocation 1: completed\n"


def test_the_line_counts_objects_bytes_rates_and_the_time_left() -> None:
    assert line(12_345, 3_200_000, 10_000_000, 3.0) == (
        "12,345 objects read, 3.2 of 10.0 MB done (32 %), 4,115 objects/s, 1.1 MB/s, 0:06 left"
    )
    assert line(1, 10_000, 36_010_000, 1.0).endswith(" 0.0 of 36.0 MB done (0 %), 1 objects/s, 0.0 MB/s, 1:00:00 left")
    assert "500.0 of 800.0 KB done (62 %), 1 objects/s, 50.0 KB/s," in line(10, 500_000, 800_000, 10.0)
    assert "1.5 of 2.0 GB done" in line(10, 1.5e9, 2_000_000_000, 10.0)
    assert line(0, 0, 10, 2.0).endswith("time left not known yet")


def test_a_plain_file_is_measured_by_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    path.write_bytes(b"x" * 1000)
    assert Extent.of(path).done(objects=3, offset=250) == 250


def test_a_gzipped_file_is_measured_in_decompressed_bytes_as_a_share_of_its_size(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"external_id": "u"}\n' * 10_000))
    extent = Extent.of(path)
    assert extent.done(objects=5_000, offset=105_000) == extent.size / 2  # half of the 210,000 bytes inside
    assert extent.done(objects=1, offset=10**9) == 0  # an offset past the trailer's size: no share shown


def test_a_parquet_file_is_measured_by_the_objects_read_of_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "users.parquet"
    pq.write_table(pa.table({"external_id": [f"u{i}" for i in range(400)]}), path, row_group_size=400)
    extent = Extent.of(path)
    assert extent.done(objects=100, offset=0) == extent.size / 4  # one row group: its offset says nothing
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1" + b"\0" * 20)
    assert Extent.of(broken).done(objects=10, offset=5) == 0
