"""Gzip: the importer's read path against a bare inflate-and-frame loop, and what resuming a large
gzip file late costs before its first send, with and without a seek point.

Both run in this process over a file on local disk (an S3 stand-in that serves byte ranges), so
the figures are the importer's own CPU and not moto's. Prints one JSON object with every figure.
Run through ``python -m bench``.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

# isort: off
from sandbox import sample_data  # first: it puts lambdas/ on the path, as a bundle's root is
from braze_importer import gzip_index
from braze_importer.aws import S3Source
from braze_importer.engine import SendPolicy
from braze_importer.objects import classify
from braze_importer.ports import BrazeAnswer, Delivery, Endpoint, SeekPoint, SystemClock
from braze_importer.reader import Format, iter_elements
from braze_importer.runs import CONTINUING, RunRecord
from braze_importer.service import Deps, Layout, handle_continue

# isort: on

READ = 1 << 20


class DiskBody:
    def __init__(self, path: Path, start: int) -> None:
        self._path = path
        self._start = start

    def iter_chunks(self, size: int) -> Iterator[bytes]:
        with self._path.open("rb") as f:
            f.seek(self._start)
            while chunk := f.read(size):
                yield chunk

    def read(self) -> bytes:
        return self._path.read_bytes()[self._start :]


class DiskS3:
    """get_object with Range over one local file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get_object(self, Bucket: str, Key: str, Range: str | None = None, **_: Any) -> dict[str, Any]:
        start = int(Range.removeprefix("bytes=").split("-")[0]) if Range else 0
        return {"Body": DiskBody(self.path, start)}


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(READ):
            yield chunk


def write_gzip_lines(path: Path, megabytes: int) -> Path:
    """JSON Lines of sample objects, ``megabytes`` decompressed, gzip level 1 (fast, like most exports)."""
    if path.exists():
        return path
    block = b"".join(orjson.dumps(o) + b"\n" for o in sample_data.objects(20_000))
    target = megabytes * 1_000_000
    written = 0
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wb", compresslevel=1) as f:
        n = 0
        while written < target:
            # Vary the block a little so the compressor cannot collapse the repetition.
            piece = block.replace(b'"external_id":"', b'"external_id":"%d-' % n)
            f.write(piece)
            written += len(piece)
            n += 1
    tmp.rename(path)
    return path


def read_path(path: Path) -> dict[str, float]:
    """Objects per second: the importer's gzip reader (seek points on) + framing + validation,
    against the least a reader must do: zlib inflate, split lines, decode each."""

    def importer() -> int:
        n = 0
        points: list[SeekPoint] = []
        chunks = gzip_index.inflate(file_chunks(path), on_point=points.append)
        for element in iter_elements(chunks, Format.LINES):
            if element.error is None:
                classify(element.value)
            n += 1
        return n

    def frame_only() -> int:
        n = 0
        points: list[SeekPoint] = []
        for _ in iter_elements(gzip_index.inflate(file_chunks(path), on_point=points.append), Format.LINES):
            n += 1
        return n

    def bare() -> int:
        n = 0
        inflater = zlib.decompressobj(wbits=31)
        rest = b""
        for chunk in file_chunks(path):
            data = rest + inflater.decompress(chunk)
            lines = data.split(b"\n")
            rest = lines.pop()
            for line in lines:
                if line:
                    orjson.loads(line)
                    n += 1
        return n

    out: dict[str, float] = {}
    runs = (bare, importer, frame_only) * 2
    for fn in runs:
        start = time.perf_counter()
        count = fn()
        out[fn.__name__] = max(out.get(fn.__name__, 0.0), count / (time.perf_counter() - start))
    return {
        "importer": out["importer"],
        "frame_only": out["frame_only"],
        "bare": out["bare"],
        "objects": float(count),
    }


class FirstSend:
    """A Braze stand-in that notes when the first request arrives and answers 201."""

    def __init__(self) -> None:
        self.first: float | None = None

    async def send(self, endpoint: Endpoint, body: bytes) -> BrazeAnswer:
        if self.first is None:
            self.first = time.perf_counter()
        return BrazeAnswer(Delivery.ANSWERED, status=201, body={"message": "success"})

    def factory(self) -> Any:
        @asynccontextmanager
        async def open_client() -> AsyncIterator[FirstSend]:
            yield self

        return open_client


class OneRun:
    """Just enough of a run store for one continuation."""

    def __init__(self, run: RunRecord) -> None:
        self.run = run

    def claim(self, run_id: str, seq: int, owner: str) -> RunRecord | None:
        self.run.status = "running"
        return self.run

    def save(self, run: RunRecord, expected_seq: int) -> bool:
        return True


class OnePoint:
    def __init__(self, point: SeekPoint | None) -> None:
        self.point = point

    def load(self, run_id: str) -> SeekPoint | None:
        return self.point

    def save(self, run_id: str, point: SeekPoint) -> None:
        self.point = point


class Nowhere:
    def put(self, key: str, body: bytes, content_type: str) -> None:
        pass

    def invoke_async(self, payload: dict[str, Any]) -> None:
        pass


def resume_at(path: Path, fraction: float) -> dict[str, float]:
    """Seconds from a continuation's start to its first request, resuming at ``fraction`` of the
    decompressed file: from the seek point kept beside the checkpoint, and from byte 0."""
    points: list[SeekPoint] = []
    total = sum(len(c) for c in gzip_index.inflate(file_chunks(path), on_point=points.append))
    target = int(total * fraction)
    point = max((p for p in points if p.out_offset <= target), key=lambda p: p.out_offset)
    # The checkpoint: the start of the first line at or after the target.
    tail = b"".join(gzip_index.inflate(_from(path, point), start=point))
    offset = point.out_offset + tail.index(b"\n", target - point.out_offset) + 1
    figures: dict[str, float] = {"decompressed_bytes": float(total), "points": float(len(points))}
    for name, store in (("with_seek_point", OnePoint(point)), ("from_byte_0", OnePoint(None))):
        run = RunRecord("bench#run", "bench", "incoming/big.jsonl.gz", "v1", None, "lines", True)
        run.status, run.seq = CONTINUING, 2
        run.checkpoint = {"offset": offset, "index": 10_000_000, "skip": [], "read": 10_000_000}
        braze = FirstSend()
        sink = Nowhere()
        deps = Deps(
            store=OneRun(run),  # type: ignore[arg-type]
            source=S3Source(DiskS3(path)),
            outputs=sink,
            continuer=sink,
            braze_factory=braze.factory(),
            clock=SystemClock(),
            policy=SendPolicy(max_in_flight=8, requests_per_second=100_000),
            layout=Layout("incoming/", "reports/", "rejects/", "failed/"),
            seek_points=store,
        )
        start = time.perf_counter()
        handle_continue(run.run_id, 2, "bench", deps, lambda b=braze: b.first is None)  # type: ignore[misc]
        assert braze.first is not None
        figures[name] = braze.first - start
    return figures


def _from(path: Path, point: SeekPoint) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(point.read_from)
        while chunk := f.read(READ):
            yield chunk


def main(read_mb: int, resume_mb: int) -> dict[str, Any]:
    work = Path(".bench")
    work.mkdir(exist_ok=True)
    small = write_gzip_lines(work / f"lines-{read_mb}mb.jsonl.gz", read_mb)
    big = write_gzip_lines(work / f"lines-{resume_mb}mb.jsonl.gz", resume_mb)
    return {
        "read": {**read_path(small), "gzip_bytes": small.stat().st_size},
        "resume": {**resume_at(big, 0.9), "gzip_bytes": big.stat().st_size},
        "inflaters_mb_s": inflaters(small),
    }


def inflaters(path: Path) -> dict[str, float]:
    """Decompression alone, MB/s of output: zlib (the module, and through ctypes with seek points),
    and zlib-ng and ISA-L when installed (they expose no block-level API, so no seek points)."""
    compressed = path.read_bytes()
    out: dict[str, float] = {}

    def measure(name: str, decompressobj: Any) -> None:
        start = time.perf_counter()
        d = decompressobj(31)
        n = 0
        for i in range(0, len(compressed), READ):
            n += len(d.decompress(compressed[i : i + READ]))
        out[name] = n / 1e6 / (time.perf_counter() - start)

    measure("zlib", zlib.decompressobj)
    start = time.perf_counter()
    n = sum(len(c) for c in gzip_index.inflate(iter([compressed]), on_point=lambda p: None))
    out["zlib_ctypes_seek_points"] = n / 1e6 / (time.perf_counter() - start)
    for name, module in (("zlib_ng", "zlib_ng.zlib_ng"), ("isal", "isal.isal_zlib")):
        try:
            mod = __import__(module, fromlist=["decompressobj"])
        except ImportError:
            continue
        measure(name, mod.decompressobj)
    return out


if __name__ == "__main__":
    read_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    resume_mb = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    print(json.dumps(main(read_mb, resume_mb)))
