"""Currents benchmarks, each against a baseline measured in the same run. Prints one JSON object."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import fastavro

from sandbox import currents_sample
from sandbox.currents import TABLE, CurrentsSandbox

CUSTOM = "users.behaviors.CustomEvent"


def reader(records: int) -> dict[str, float]:
    from currents_personalizer.events import group_by_user, read_records

    path = Path(".bench/currents-reader.avro")
    path.parent.mkdir(exist_ok=True)
    currents_sample.write(path, CUSTOM, currents_sample.records(CUSTOM, users=20_000, events=records))

    def timed(fn: Any) -> float:
        best = float("inf")
        for _ in range(3):
            with path.open("rb") as f:
                start = time.perf_counter()
                fn(f)
                best = min(best, time.perf_counter() - start)
        return records / best

    bare = timed(lambda f: sum(1 for _ in fastavro.reader(f)))
    ours = timed(lambda f: sum(1 for _ in read_records(f)))
    grouped = timed(lambda f: group_by_user(read_records(f), CUSTOM))
    return {"bare": bare, "reader": ours, "reader_and_grouping": grouped}


def generations(users: int, events: int) -> dict[str, int]:
    out = Path(".bench/currents-sample")
    paths = currents_sample.write_sample(out, users, events)
    with CurrentsSandbox() as box:
        report = box.process(box.upload([out]))
        again = box.process(box.upload([out]))  # the same files delivered again: nothing to do
    distinct = len(  # users with an event that carries intent (machine opens start no generation)
        {
            r["user_id"]
            for p in paths
            for r in fastavro.reader(p.open("rb"))
            if isinstance(r, dict) and r.get("machine_open") != "true"
        }
    )
    return {
        "generated": report["generated"],
        "distinct_users": distinct,
        "regenerated_on_redelivery": again["generated"],
    }


def api_latency(requests: int) -> dict[str, float]:
    from sandbox.importer import FakeContext

    out = Path(".bench/currents-api")
    currents_sample.write_sample(out, 200, 800)
    with CurrentsSandbox() as box:
        from currents_personalizer.api_handler import handler  # after the sandbox set the environment

        box.process(box.upload([out]))
        db = boto3.client("dynamodb")
        bare, ours = [], []
        event = {"pathParameters": {"braze_id": "braze-00007"}, "queryStringParameters": None}
        context = FakeContext(5)
        for _ in range(requests):
            start = time.perf_counter()
            db.get_item(TableName=TABLE, Key={"user_id": {"S": "braze-00007"}})
            bare.append(time.perf_counter() - start)
            start = time.perf_counter()
            handler(event, context)
            ours.append(time.perf_counter() - start)
    return {
        "bare_p50_ms": 1000 * statistics.median(bare),
        "bare_p99_ms": 1000 * statistics.quantiles(bare, n=100)[98],
        "api_p50_ms": 1000 * statistics.median(ours),
        "api_p99_ms": 1000 * statistics.quantiles(ours, n=100)[98],
    }


def cold_import() -> dict[str, float]:
    def best(code: str) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1] / "lambdas"
            )
            times.append(time.perf_counter() - start)
        return min(times)

    bare = best("import boto3")
    ours = best("import boto3, currents_personalizer.api_handler")
    return {"bare_ms": 1000 * bare, "api_module_ms": 1000 * ours}


if __name__ == "__main__":
    print(
        json.dumps(
            {
                "reader": reader(200_000),
                "generations": generations(250, 1000),
                "api": api_latency(1000),
                "cold_import": cold_import(),
            }
        )
    )
