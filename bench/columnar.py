"""Parquet and Avro imports against bare loops over the same files, and peak memory on Parquet.

``python -m bench.columnar throughput N``: N events written as Parquet (row groups of 50,000) and as
Avro (deflate), each imported by the importer's real run (``service.handle_start``: reader, folder
rules, validation, batching, the pump) reading the file by ranges from a local-file stand-in for
S3 and sending to a Braze that answers at once (no rate limit, no network). Beside each, the bare
loop doing the least the same job needs, on the same file, in the same process: pyarrow
``iter_batches`` -> ``to_pylist`` dicts -> ``orjson`` bodies of 75, and ``fastavro.reader`` -> the
same bodies. Best of two, alternated. For scale: the importer's readers alone feeding the same
bodies (what reading costs beside validating and sending), the same again with every row made
and checked as an event (what the checks cost), the microseconds per object each stage adds
(``*_us_per_object``: noisy on a shared machine, read them as a breakdown, not a measure), and the
same events as JSON Lines through the same importer.

``python -m bench.columnar rss MB``: peak resident memory of the process importing a Parquet file
of about MB megabytes (incompressible rows, row groups of 8 MB whatever the file's size), the file
written to a temporary directory first and deleted after.

Prints one JSON object. Run through ``python -m bench``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

import sandbox  # noqa: F401 - first: it puts lambdas/ on the path, as a bundle's root is

# isort: split
from braze_importer.aws import S3Source
from braze_importer.engine import SendPolicy
from braze_importer.ports import BrazeAnswer, Delivery, Endpoint, ObjectRef, SystemClock
from braze_importer.service import Deps, Layout, handle_start

from bench.rss import peak_rss_mb, reset_peak

BUCKET = "bench"
ROW_GROUP_ROWS = 50_000
RSS_ROW_BYTES = 2_000  # a random string this long per row: Parquet cannot compress it
RSS_ROW_GROUP_ROWS = 4_000  # 8 MB row groups


class LocalS3:
    """get_object over local files, with Range and Content-Range as S3 answers them."""

    def __init__(self) -> None:
        self.files: dict[str, Path] = {}

    def get_object(self, Bucket: str, Key: str, Range: str | None = None, **_: Any) -> dict[str, Any]:
        path = self.files[Key]
        size = path.stat().st_size
        start, end = 0, size - 1
        if Range:
            first, _dash, last = Range.removeprefix("bytes=").partition("-")
            start, end = int(first), min(size - 1, int(last) if last else size - 1)
        return {"Body": _Body(path, start, end + 1), "ContentRange": f"bytes {start}-{end}/{size}"}


class _Body:
    def __init__(self, path: Path, start: int, end: int) -> None:
        self._path, self._start, self._end = path, start, end

    def read(self) -> bytes:
        with self._path.open("rb") as f:
            f.seek(self._start)
            return f.read(self._end - self._start)

    def iter_chunks(self, size: int) -> Iterator[bytes]:
        with self._path.open("rb") as f:
            f.seek(self._start)
            left = self._end - self._start
            while left > 0 and (chunk := f.read(min(size, left))):
                left -= len(chunk)
                yield chunk


class _InstantBraze:
    async def send(self, endpoint: Endpoint, body: bytes) -> BrazeAnswer:
        return BrazeAnswer(Delivery.ANSWERED, 201, {"message": "success"})


@asynccontextmanager
async def _braze() -> AsyncIterator[_InstantBraze]:
    yield _InstantBraze()


class _Store:
    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def create(self, run: Any) -> bool:
        if run.run_id in self.items:
            return False
        self.items[run.run_id] = run
        return True

    def save(self, run: Any, expected_seq: int) -> bool:
        return True


class _Outputs:
    def put(self, key: str, body: bytes, content_type: str) -> None:
        pass


def import_file(path: Path, key: str) -> dict[str, Any]:
    """The importer's run over ``path`` (as ``key``): its report and seconds."""
    s3 = LocalS3()
    s3.files[key] = path
    deps = Deps(
        store=_Store(),  # type: ignore[arg-type]
        source=S3Source(s3),
        outputs=_Outputs(),
        continuer=None,  # type: ignore[arg-type]  # one invocation: never continues
        braze_factory=_braze,
        clock=SystemClock(),
        policy=SendPolicy(workspace_requests_per_second=1e9),
        layout=Layout("incoming/", "reports/", "rejects/", "failed/"),
        progress_seconds=3600.0,
    )
    ref = ObjectRef(BUCKET, key, "v1", "etag", path.stat().st_size)
    start = time.perf_counter()
    result = handle_start(ref, "bench", deps, lambda: True)
    seconds = time.perf_counter() - start
    assert result.status == "completed" and result.report is not None, result.report
    assert result.report["rejected"] == 0 and result.report["failed"] == 0, result.report
    return {"report": result.report, "seconds": seconds}


def bodies(objects: Iterator[dict[str, Any]]) -> int:
    """The bare loop's sending side: bodies of 75, serialised."""
    n = 0
    batch: list[dict[str, Any]] = []
    for obj in objects:
        batch.append(obj)
        if len(batch) == 75:
            orjson.dumps({"events": batch})
            n += 75
            batch = []
    if batch:
        orjson.dumps({"events": batch})
        n += len(batch)
    return n


def bare_parquet(path: Path) -> float:
    import pyarrow.parquet as pq

    def rows() -> Iterator[dict[str, Any]]:
        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()

    start = time.perf_counter()
    n = bodies(rows())
    return n / (time.perf_counter() - start)


def bare_avro(path: Path) -> float:
    import fastavro

    start = time.perf_counter()
    with path.open("rb") as f:
        n = bodies(fastavro.reader(f))  # type: ignore[arg-type]
    return n / (time.perf_counter() - start)


def reader_alone(path: Path, key: str, checked: bool = False) -> float:
    """The importer's reader (ranged reads, values to JSON) feeding the bare loop's bodies of 75;
    ``checked``: each row also made and checked as an event (the events/ folder's rules), as the
    import does before its pump."""
    from braze_importer import columnar
    from braze_importer.objects import Kind
    from braze_importer.reader import START
    from braze_importer.rows import shaped

    s3 = LocalS3()
    s3.files[key] = path
    read = columnar.iter_parquet if key.endswith(".parquet") else columnar.iter_avro
    start = time.perf_counter()
    elements = read(S3Source(s3), ObjectRef(BUCKET, key, "v1", "etag"), START)
    if checked:
        elements = shaped(elements, Kind.EVENT)
    n = bodies(e.value for e in elements)
    return n / (time.perf_counter() - start)


def events(n: int) -> list[dict[str, Any]]:
    import datetime as dt

    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    return [
        {
            "external_id": f"user-{i:09d}",
            "name": f"view-{i % 300}",
            "time": t0 + dt.timedelta(seconds=i),
            "properties": {"bool_value": i % 2 == 0, "preceding_event": "unsubscribe", "important_number": i},
        }
        for i in range(n)
    ]


AVRO_SCHEMA = {
    "type": "record",
    "name": "Event",
    "fields": [
        {"name": "external_id", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "properties",
            "type": {
                "type": "record",
                "name": "Properties",
                "fields": [
                    {"name": "bool_value", "type": "boolean"},
                    {"name": "preceding_event", "type": "string"},
                    {"name": "important_number", "type": "long"},
                ],
            },
        },
    ],
}


def throughput(n: int) -> dict[str, Any]:
    import fastavro
    import pyarrow as pa
    import pyarrow.parquet as pq

    out: dict[str, Any] = {"rows": n}
    with tempfile.TemporaryDirectory(prefix="bench-columnar-") as tmp:
        parquet, avro = Path(tmp) / "events.parquet", Path(tmp) / "events.avro"
        lines = Path(tmp) / "events.jsonl"
        rows = events(n)
        lines.write_bytes(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in rows))
        pq.write_table(pa.Table.from_pylist(rows), parquet, row_group_size=ROW_GROUP_ROWS)
        with avro.open("wb") as f:
            fastavro.writer(f, fastavro.parse_schema(AVRO_SCHEMA), rows, codec="deflate")
        del rows
        out["parquet_bytes"], out["avro_bytes"] = parquet.stat().st_size, avro.stat().st_size
        runs: dict[str, list[float]] = {
            "parquet": [], "parquet_bare": [], "avro": [], "avro_bare": [],
            "parquet_reader": [], "avro_reader": [], "jsonl": [],
            "parquet_checked": [], "avro_checked": [],
        }  # fmt: skip
        for k in range(2):  # alternate, so drift on a shared machine falls on both alike
            runs["parquet_bare"].append(bare_parquet(parquet))
            runs["parquet"].append(n / import_file(parquet, f"incoming/events/p{k}.parquet")["seconds"])
            runs["avro_bare"].append(bare_avro(avro))
            runs["avro"].append(n / import_file(avro, f"incoming/events/a{k}.avro")["seconds"])
            runs["parquet_reader"].append(reader_alone(parquet, "p.parquet"))
            runs["avro_reader"].append(reader_alone(avro, "a.avro"))
            runs["parquet_checked"].append(reader_alone(parquet, "p.parquet", checked=True))
            runs["avro_checked"].append(reader_alone(avro, "a.avro", checked=True))
            runs["jsonl"].append(n / import_file(lines, f"incoming/events/j{k}.jsonl")["seconds"])
    for name, figures in runs.items():
        out[name] = max(figures)
    out["parquet_ratio"] = out["parquet"] / out["parquet_bare"]
    out["avro_ratio"] = out["avro"] / out["avro_bare"]
    out["parquet_reader_ratio"] = out["parquet_reader"] / out["parquet_bare"]
    out["avro_reader_ratio"] = out["avro_reader"] / out["avro_bare"]
    # Where an object's time goes, in microseconds: the bare loop's, what the reader adds to it,
    # what the folder's checks add, and what the rest of the import (the pump: admission,
    # batching, settling; the run's bookkeeping) adds.
    for fmt in ("parquet", "avro"):
        us = {k: 1e6 / out[f"{fmt}_{k}"] for k in ("bare", "reader", "checked")}
        us["import"] = 1e6 / out[fmt]
        out[f"{fmt}_us_per_object"] = {
            "bare": round(us["bare"], 2),
            "reader_over_bare": round(us["reader"] - us["bare"], 2),
            "checks": round(us["checked"] - us["reader"], 2),
            "pump_and_run": round(us["import"] - us["checked"], 2),
        }
    return out


def write_rss_file(path: Path, megabytes: int) -> None:
    """About ``megabytes`` of incompressible rows in row groups of 8 MB (a process of its own: what
    writing leaves in the allocator must not count in the import's peak)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = max(RSS_ROW_GROUP_ROWS, megabytes * 1_000_000 // (RSS_ROW_BYTES + 40))
    schema = pa.schema([("external_id", pa.string()), ("blob", pa.string())])
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        for first in range(0, rows, RSS_ROW_GROUP_ROWS):
            count = min(RSS_ROW_GROUP_ROWS, rows - first)
            ids = [f"user-{i:09d}" for i in range(first, first + count)]
            blobs = [os.urandom(RSS_ROW_BYTES // 2).hex() for _ in range(count)]
            writer.write_table(pa.table({"external_id": ids, "blob": blobs}, schema=schema))


def rss(megabytes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-columnar-rss-") as tmp:
        path = Path(tmp) / "users.parquet"
        subprocess.run([sys.executable, "-m", "bench.columnar", "write", str(megabytes), str(path)], check=True)
        import pyarrow.parquet  # noqa: F401 - loaded before the peak is reset, as in a warm function

        reset_peak()
        run = import_file(path, "incoming/attributes/rss.parquet")
        peak = peak_rss_mb()
        size = path.stat().st_size
    return {
        "file_bytes": size,
        "objects": run["report"]["objects_read"],
        "row_group_bytes": RSS_ROW_GROUP_ROWS * RSS_ROW_BYTES,
        "peak_rss_mb": round(peak, 1),
        "seconds": round(run["seconds"], 1),
    }


if __name__ == "__main__":
    what, size = sys.argv[1], int(sys.argv[2])
    if what == "write":
        write_rss_file(Path(sys.argv[3]), size)
    else:
        print(json.dumps(throughput(size) if what == "throughput" else rss(size)))


def table_rows(run: Callable[..., dict[str, Any]]) -> list[tuple[str, str, str, float, str]]:
    """This module's rows of ``make bench``'s table, each run in a process of its own by ``run``."""
    t = run("bench.columnar", "throughput", os.environ.get("BENCH_COLUMNAR_ROWS", "200000"))
    small = run("bench.columnar", "rss", "10")
    large = run("bench.columnar", "rss", os.environ.get("BENCH_LARGE_MB", "1000"))
    return [
        (f"Parquet import, {t['rows']:,} events, instant Braze", f"{t['parquet']:,.0f} obj/s",
         f"bare iter_batches + to_pylist + orjson bodies of 75: {t['parquet_bare']:,.0f} obj/s",
         t["parquet_ratio"], "≥ 0.8"),
        (f"Avro import, {t['rows']:,} events, instant Braze", f"{t['avro']:,.0f} obj/s",
         f"bare fastavro.reader + orjson bodies of 75: {t['avro_bare']:,.0f} obj/s", t["avro_ratio"], "≥ 0.8"),
        ("Parquet reader alone (ranged reads, values to JSON) + bodies of 75", f"{t['parquet_reader']:,.0f} obj/s",
         f"bare loop: {t['parquet_bare']:,.0f} obj/s", t["parquet_reader_ratio"], "for scale"),
        ("Avro reader alone (blocks, values to JSON) + bodies of 75", f"{t['avro_reader']:,.0f} obj/s",
         f"bare loop: {t['avro_bare']:,.0f} obj/s", t["avro_reader_ratio"], "for scale"),
        ("Parquet import vs the same events as JSON Lines, same importer", f"{t['parquet']:,.0f} obj/s",
         f"JSON Lines import: {t['jsonl']:,.0f} obj/s", t["parquet"] / t["jsonl"], "for scale"),
        (f"peak RSS, {large['file_bytes'] / 1e6:,.0f} MB Parquet, 8 MB row groups", f"{large['peak_rss_mb']:.0f} MB",
         f"{small['file_bytes'] / 1e6:,.0f} MB Parquet: {small['peak_rss_mb']:.0f} MB",
         large["peak_rss_mb"] - small["peak_rss_mb"], "within 64 MB (difference)"),
    ]  # fmt: skip
