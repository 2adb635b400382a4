"""Bulk-upload copier: throughput against a bare ``upload_fileobj`` of the same bytes (same run,
same moto server), and the copier process's peak memory. Prints one JSON object."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from sandbox.bulk_upload import BUCKET, BulkUploadSandbox


def peak_mb() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024  # type: ignore[union-attr]


def write(path: Path, megabytes: int) -> Path:
    if not path.exists() or path.stat().st_size < megabytes * 1_000_000:
        row = b"".join(b"id-%09d,%d,segment-%d\n" % (i, i % 997, i % 7) for i in range(50_000))
        with path.open("wb") as out:
            for _ in range(megabytes * 1_000_000 // len(row) + 1):
                out.write(row)
    return path


def measure(megabytes: int) -> dict[str, Any]:
    path = write(Path(f".bench/bulk-{megabytes}mb.csv"), megabytes)
    size = path.stat().st_size
    with BulkUploadSandbox() as box:
        url = box.stage(path)
        Path("/proc/self/clear_refs").write_text("5")
        start = time.perf_counter()
        status, answer = box.post({"presignedUrls": {"dataFile": url}, "sendParameters": {"s3_filename": "b.csv"}})
        box.run_copies()
        copier_seconds = time.perf_counter() - start
        peak = peak_mb()
        assert status == 202 and box.job(answer["job_id"])["status"] == "done"
        with path.open("rb") as f:
            start = time.perf_counter()
            box.s3.upload_fileobj(f, BUCKET, "bare/b.csv")
            bare_seconds = time.perf_counter() - start
    return {
        "bytes": size,
        "copier_mb_s": size / copier_seconds / 1e6,
        "bare_mb_s": size / bare_seconds / 1e6,
        "copier_peak_rss_mb": round(peak, 1),
    }


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [10, 1000]
    print(json.dumps({str(mb): measure(mb) for mb in sizes}))
