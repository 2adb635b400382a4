"""Peak resident memory of the handler's process while it imports a file of a given size.

moto server and the Braze emulator run in their own processes; this process runs the handler
only. The peak is reset after the upload (``/proc/self/clear_refs``), so it measures the import.
Prints one JSON object. Run through ``python -m bench``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from sandbox import sample_data
from sandbox.importer import ImportSandbox

BYTES_PER_OBJECT = 167  # what sample_data writes, on average


def peak_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def main(megabytes: int) -> dict[str, Any]:
    work = Path(".bench")
    work.mkdir(exist_ok=True)
    count = megabytes * 1_000_000 // BYTES_PER_OBJECT
    path = work / f"rss-{megabytes}mb.json"
    if not path.exists() or abs(path.stat().st_size - megabytes * 1_000_000) > megabytes * 100_000:
        sample_data.write(path, count)
    return measure(path, "incoming/rss.json")


def measure(path: Path, key: str) -> dict[str, Any]:
    """Peak RSS of this process while the handler imports ``path`` uploaded as ``key`` (no rate limit)."""
    with ImportSandbox(
        deltas=False, emulator_settings={"record": False, "profiles": False, "rate_limit": 10**9}
    ) as box:
        box.set_function_env(WORKSPACE_REQUESTS_PER_SECOND="100000")
        event = box.upload(path, key)
        reset_peak()
        start = time.perf_counter()
        results = box.deliver(event)
        seconds = time.perf_counter() - start
        peak = peak_rss_mb()
        report = box.report(results[0]["runs"][0]["run_id"])
    assert report["status"] == "completed" and report["failed"] == 0, report
    return {
        "file_bytes": path.stat().st_size,
        "objects": report["objects_read"],
        "peak_rss_mb": round(peak, 1),
        "seconds": round(seconds, 1),
        "objects_per_second": round(report["accepted"] / seconds),
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
