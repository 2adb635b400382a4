"""Bulk-upload copier against two baselines measured in the same run, on the same moto server:

- a bare ``upload_fileobj`` of the same bytes from the local disk (what the goal is stated
  against; it does not download at all), and
- a bare download + upload pipeline: the pre-signed URL streamed with httpx straight into
  ``upload_fileobj`` (the least any copier has to do).

Each file size runs in its own process, and the staged file is put in place by a child process,
so the copier's peak memory is its own (``VmHWM`` reset just before the copy). Each figure is the
best of ``BENCH_REPEATS`` (default 2) runs, alternating, to damp a shared machine's noise.
Prints one JSON object: ``python -m bench.bulk_upload 10 1000``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from sandbox.bulk_upload import BUCKET, STAGING, BulkUploadSandbox


def status_mb(field: str) -> float:
    """A memory figure of this process (``VmHWM``: peak resident size, ``VmRSS``: resident size now)."""
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024  # type: ignore[union-attr]


def write(path: Path, megabytes: int) -> Path:
    path.parent.mkdir(exist_ok=True)
    if not path.exists() or path.stat().st_size < megabytes * 1_000_000:
        row = b"".join(b"id-%09d,%d,segment-%d\n" % (i, i % 997, i % 7) for i in range(50_000))
        with path.open("wb") as out:
            for _ in range(megabytes * 1_000_000 // len(row) + 1):
                out.write(row)
    return path


class _Stream:
    """A pre-signed URL as a read-only file, for upload_fileobj (the bare pipeline)."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_raw()
        self._rest = b""

    def read(self, size: int = -1) -> bytes:
        out = [self._rest]
        have = len(self._rest)
        while size < 0 or have < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            out.append(chunk)
            have += len(chunk)
        data = b"".join(out)
        if size < 0:
            self._rest = b""
            return data
        self._rest = data[size:]
        return data[:size]


def stage(box: BulkUploadSandbox, path: Path) -> str:
    """Stage from a child process: its buffers never count towards this process's memory."""
    key = f"staged/{path.name}"
    code = f"import boto3; boto3.client('s3').upload_file({str(path)!r}, {STAGING!r}, {key!r})"
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))
    return str(box.s3.generate_presigned_url("get_object", Params={"Bucket": STAGING, "Key": key}, ExpiresIn=3600))


def one(megabytes: int) -> dict[str, Any]:
    path = write(Path(f".bench/bulk-{megabytes}mb.csv"), megabytes)
    size = path.stat().st_size
    repeats = int(os.environ.get("BENCH_REPEATS", "2"))
    copier, bare, pipeline, download = [], [], [], []
    peak = growth = 0.0
    with BulkUploadSandbox() as box:
        url = stage(box, path)
        for i in range(repeats):
            before = status_mb("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")
            start = time.perf_counter()
            status, answer = box.post(
                {"presignedUrls": {"dataFile": url}, "sendParameters": {"s3_filename": f"b{i}.csv"}}
            )
            box.run_copies()
            copier.append(time.perf_counter() - start)
            if i == 0:
                peak = status_mb("VmHWM")
                growth = peak - before
            assert status == 202 and box.job(answer["job_id"])["status"] == "done"
            with path.open("rb") as f:
                start = time.perf_counter()
                box.s3.upload_fileobj(f, BUCKET, f"bare/b{i}.csv")
                bare.append(time.perf_counter() - start)
            with httpx.Client(timeout=60) as client:
                start = time.perf_counter()
                with client.stream("GET", url) as response:
                    box.s3.upload_fileobj(_Stream(response), BUCKET, f"pipe/b{i}.csv")
                pipeline.append(time.perf_counter() - start)
                start = time.perf_counter()
                with client.stream("GET", url) as response:
                    for _ in response.iter_raw():
                        pass
                download.append(time.perf_counter() - start)
        if box.stored("ci360/b0.csv") != path.read_bytes():
            raise AssertionError("the copy is not byte-identical")
    return {
        "bytes": size,
        "copier_mb_s": size / min(copier) / 1e6,
        "bare_mb_s": size / min(bare) / 1e6,
        "pipeline_mb_s": size / min(pipeline) / 1e6,
        "download_only_mb_s": size / min(download) / 1e6,
        "copier_peak_rss_mb": round(peak, 1),
        "copier_rss_growth_mb": round(growth, 1),  # over the process's resident size just before the copy
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(one(int(sys.argv[2]))))
        sys.exit(0)
    sizes = [int(a) for a in sys.argv[1:]] or [10, 1000]
    results = {}
    for mb in sizes:
        out = subprocess.run(
            [sys.executable, "-m", "bench.bulk_upload", "--one", str(mb)], check=True, capture_output=True, text=True
        ).stdout
        results[str(mb)] = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(results))
