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

from sandbox import sample_data
from sandbox.importer import ImportSandbox
from sandbox.services import BrazeEmulator


def together(
    box: ImportSandbox, braze: BrazeEmulator, files: list[Path], tag: str, foreign: float, *, limit: int = 3000
) -> dict[str, Any]:
    """N runs dropped at once, with ``limit`` requests per 3 s enforced (and told to the runs as
    the workspace figure; above Braze's default it stands for "no limit")."""
    box.set_function_env(WORKSPACE_REQUESTS_PER_SECOND=str(min(limit / 3.0, 100_000)))
    cap = min(limit, 3000) / 3.0 * 75
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
    fair = [r["accepted"] / r["seconds"] / (cap / n) for r in reports]
    answered = sum(after.values()) - sum(before.values())
    throttled = after.get("429", 0) - before.get("429", 0)
    return {
        "runs": n,
        "foreign_share": foreign,
        "objects": accepted,
        "wall_seconds": wall,
        "total_objects_per_second": accepted / wall,
        "cap_objects_per_second": cap,
        "total_vs_cap": accepted / wall / cap,
        "total_vs_available": accepted / wall / (cap * (1 - foreign)),
        "requests": answered,
        "throttled": throttled,
        "throttled_share": throttled / max(1, answered),
        "smallest_fair_share": min(fair),
        "largest_fair_share": max(fair),
        "run_seconds": [r["seconds"] for r in reports],
    }


def files_for(objects_per_case: int, n: int) -> list[Path]:
    work = Path(".bench")
    work.mkdir(exist_ok=True)
    size = objects_per_case // n
    return [sample_data.write(work / f"share-{n}x{size}-{i}.json", size, seed=100 + i) for i in range(n)]


def main(objects_per_case: int) -> dict[str, Any]:
    """Braze's default limit, and a tenth of it (300 / 3 s, a tenth of the objects), where the
    limit binds well below what a busy machine's CPU can send: there the figures show the
    sharing alone."""
    out: dict[str, Any] = {"objects_per_case": objects_per_case}
    with ImportSandbox(deltas=False, emulator_settings={"record": False, "profiles": False}) as box:
        braze: BrazeEmulator = box.emulator  # type: ignore[assignment]
        for n in (2, 4):
            files = files_for(objects_per_case, n)
            # Unpaced and paced alternate, twice, each keeping its best: the machine's load changes.
            unpaced, paced = [], []
            for attempt in range(2):
                unpaced.append(together(box, braze, files, f"u{n}-{attempt}", 0.0, limit=10**9))
                paced.append(together(box, braze, files, f"e{n}-{attempt}", 0.0))
            out[f"e{n}_unpaced"] = max(unpaced, key=lambda x: x["total_objects_per_second"])
            out[f"e{n}"] = max(paced, key=lambda x: x["total_objects_per_second"])
            out[f"f{n}"] = together(box, braze, files, f"f{n}", 0.3)
            tenth = files_for(objects_per_case // 10, n)
            out[f"e{n}_tenth"] = together(box, braze, tenth, f"e{n}t", 0.0, limit=300)
            out[f"f{n}_tenth"] = together(box, braze, tenth, f"f{n}t", 0.3, limit=300)
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 600_000)))
