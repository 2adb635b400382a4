"""Inflating gzip with seek points: exact output, resume at every point, damaged streams."""

from __future__ import annotations

import bisect
import gzip
import itertools
import random
from collections.abc import Iterator
from itertools import pairwise

import pytest
from braze_importer import gzip_index
from braze_importer.gzip_index import inflate
from braze_importer.ports import SeekPoint, UnreadableInput

pytestmark = pytest.mark.skipif(not gzip_index.available(), reason="libz cannot be loaded")


def text(n: int) -> bytes:
    rnd = random.Random(n)
    return b"".join(
        b'{"external_id":"u%d","name":"e%d","p":%d}\n' % (i, rnd.randrange(50), rnd.randrange(10**9)) for i in range(n)
    )


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    return iter([data[i : i + size] for i in range(0, len(data), size)])


@pytest.fixture(scope="module")
def sample() -> tuple[bytes, bytes]:
    lines = text(60_000)
    half = len(lines) // 2
    return lines, gzip.compress(lines[:half], 6) + gzip.compress(lines[half:], 1)  # two members


def test_output_is_the_file_and_points_come_about_every_spacing(sample: tuple[bytes, bytes]) -> None:
    lines, data = sample
    points: list[SeekPoint] = []
    assert b"".join(inflate(chunks(data, 65536), on_point=points.append, spacing=256 << 10)) == lines
    assert len(points) >= len(lines) // (512 << 10)
    gaps = [b.out_offset - a.out_offset for a, b in pairwise(points)]
    assert all(gap >= 256 << 10 for gap in gaps)
    assert {p.bits for p in points} - {0}  # most points fall inside a byte: those need priming


@pytest.mark.parametrize("read", [1, 7, 4096])
def test_a_resume_at_every_seek_point_gives_exactly_the_rest(sample: tuple[bytes, bytes], read: int) -> None:
    lines, data = sample
    points: list[SeekPoint] = []
    b"".join(inflate(chunks(data, 65536), on_point=points.append, spacing=256 << 10))
    for stored in points:
        point = SeekPoint.from_bytes(stored.to_bytes())
        rest = data[point.in_offset - (1 if point.bits else 0) :]
        # Tiny reads right after the point (where priming happens), then large ones.
        pieces = [*chunks(rest[:2000], read), *chunks(rest[2000:], 65536)]
        assert b"".join(inflate(iter(pieces), start=point)) == lines[point.out_offset :]


def test_truncation_is_an_error_from_the_start_and_from_a_seek_point(sample: tuple[bytes, bytes]) -> None:
    _, data = sample
    with pytest.raises(UnreadableInput, match="truncated"):
        b"".join(inflate(chunks(data[:-3], 65536)))
    points: list[SeekPoint] = []
    b"".join(inflate(chunks(data, 65536), on_point=points.append, spacing=256 << 10))
    last = points[-1]
    with pytest.raises(UnreadableInput, match="truncated"):
        b"".join(inflate(chunks(data[last.in_offset - 1 : -3], 9999), start=last))


def test_zero_padding_is_ignored_and_garbage_or_corruption_is_an_error(sample: tuple[bytes, bytes]) -> None:
    lines, data = sample
    assert b"".join(inflate(chunks(data + b"\0" * 3000, 1000))) == lines
    with pytest.raises(UnreadableInput, match="padding"):
        b"".join(inflate(chunks(data + b"\0\0junk", 1000)))
    broken = bytearray(data)
    broken[5000:5010] = b"\xff" * 10
    with pytest.raises(UnreadableInput):
        b"".join(inflate(chunks(bytes(broken), 65536)))


@pytest.mark.parametrize("damage", [b"GARBAGE-NOT-GZIP", b"\x00\x00\x00garbage", b"\x1f\x8b\x08\x00broken"])
def test_everything_inflated_before_damage_comes_out_and_the_error_names_where(damage: bytes) -> None:
    lines = text(5_000)
    out = bytearray()
    with pytest.raises(UnreadableInput) as raised:
        for piece in inflate(chunks(gzip.compress(lines) + damage, 1 << 20)):
            out += piece
    assert bytes(out) == lines
    assert raised.value.offset == len(lines)


def member(data: bytes, level: int, name: str | None = None) -> bytes:
    import io

    buf = io.BytesIO()
    with gzip.GzipFile(filename=name or "", fileobj=buf, mode="wb", compresslevel=level, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def test_concatenated_members_read_as_one_stream_and_resume_from_points_in_every_member() -> None:
    # `cat a.gz b.gz ...`: members with and without a file name, an empty one, a tiny one, levels 1-9.
    parts = [text(9_000), b"", text(7)[:50], text(12_000), text(300), text(8_000)]
    stream = b"".join(
        member(part, level, name)
        for part, level, name in zip(parts, (9, 6, 1, 1, 9, 5), ("a.jsonl", None, "c", None, "e", "f"), strict=True)
    )
    whole = b"".join(parts)
    points: list[SeekPoint] = []
    assert b"".join(inflate(chunks(stream, 4096), on_point=points.append, spacing=64 << 10)) == whole
    bounds = list(itertools.accumulate(len(p) for p in parts))
    members_with_points = {bisect.bisect_right(bounds, p.out_offset) for p in points}
    assert {0, 3, 5} <= members_with_points  # points inside the first, a middle and the last member
    for point in points:
        rest = stream[point.read_from :]
        # Resumed from each point, the output runs on through every member boundary after it.
        assert b"".join(inflate(chunks(rest, 777), start=point)) == whole[point.out_offset :]
