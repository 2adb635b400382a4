"""Concurrent runs sharing one workspace's Braze limit: the real handler, each invocation in a
worker process of its own (as Lambda runs concurrent invocations), one runs table on moto server
and one Braze emulator enforcing 3,000 requests per 3 s with 30 ms answers.

Rows: (e) N runs started together; (f) the same while another sender uses 30 % of every window.
For each: the runs' total against the cap (and against what the other sender leaves), the share
of requests answered 429, and the smallest and largest run's own rate as a multiple of 1/N of
the cap (1.0 = a fair share). The baseline, measured in the same run: the same N runs with
pacing lifted and no limit at the emulator, which is what this machine can do at all (on a busy
2-core machine that is below Braze's cap). Prints one JSON object. Run through ``python -m bench``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.throughput import BRAZE_CAP_OBJECTS_PER_SECOND as CAP
from sandbox import sample_data
from sandbox.importer import ImportSandbox
from sandbox.services import BrazeEmulator


def together(
    box: ImportSandbox, braze: BrazeEmulator, files: list[Path], tag: str, foreign: float, *, limit: int = 3000
) -> dict[str, Any]:
    braze.configure(rate_limit=limit, rate_window_seconds=3.0, latency_ms=30, foreign_share=foreign)
    events = [box.upload(path, f"incoming/{tag}/{path.name}") for path in files]  # not timed
    box.worker_pool(len(files))  # warm workers, as warm Lambda environments would be
    before = braze.state()["statuses"]
    start = time.perf_counter()
    firsts = box.deliver_concurrently(events)
    wall = time.perf_counter() - start
    after = braze.state()["statuses"]
    reports = [box.report(result["runs"][0]["run_id"]) for result in firsts]
    assert all(r["status"] == "completed" and r["failed"] == 0 for r in reports), reports
    n = len(files)
    accepted = sum(r["accepted"] for r in reports)
    fair = [r["accepted"] / r["seconds"] / (CAP / n) for r in reports]
    answered = sum(after.values()) - sum(before.values())
    throttled = after.get("429", 0) - before.get("429", 0)
    return {
        "runs": n,
        "foreign_share": foreign,
        "objects": accepted,
        "wall_seconds": wall,
        "total_objects_per_second": accepted / wall,
        "total_vs_cap": accepted / wall / CAP,
        "total_vs_available": accepted / wall / (CAP * (1 - foreign)),
        "requests": answered,
        "throttled": throttled,
        "throttled_share": throttled / max(1, answered),
        "smallest_fair_share": min(fair),
        "largest_fair_share": max(fair),
        "run_seconds": [r["seconds"] for r in reports],
    }


def main(objects_per_case: int) -> dict[str, Any]:
    work = Path(".bench")
    work.mkdir(exist_ok=True)
    files = {
        n: [
            sample_data.write(work / f"share-{n}x{objects_per_case // n}-{i}.json", objects_per_case // n, seed=100 + i)
            for i in range(n)
        ]
        for n in (2, 4)
    }
    out: dict[str, Any] = {"objects_per_case": objects_per_case}
    with ImportSandbox(emulator_settings={"record": False}) as box:
        braze: BrazeEmulator = box.emulator  # type: ignore[assignment]
        for n in (2, 4):
            box.set_function_env(WORKSPACE_REQUESTS_PER_SECOND="100000")
            out[f"e{n}_unpaced"] = together(box, braze, files[n], f"u{n}", 0.0, limit=10**9)
            box.set_function_env(WORKSPACE_REQUESTS_PER_SECOND="1000")
            out[f"e{n}"] = together(box, braze, files[n], f"e{n}", 0.0)
            out[f"f{n}"] = together(box, braze, files[n], f"f{n}", 0.3)
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 600_000)))
