"""CSV import against JSON import of the same rows, measured in the same run.

``python -m bench.csv_import throughput N``: N user-attribute rows written as CSV and as JSON Lines,
each imported by the real handler (sandbox: moto server + Braze emulator, no rate limit), plus the
readers alone (framing + typing, no sending). ``python -m bench.csv_import rss MB``: peak resident
memory of the handler's process importing a CSV of about MB megabytes. Prints one JSON object.
Run through ``python -m bench``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.rss import measure
from bench.throughput import importer
from sandbox.importer import ImportSandbox

BRAZE_CSV_LAMBDA_ROWS_PER_SECOND = 3_300  # Braze's "user attribute CSV to Braze" Lambda, as published
HEADER = "external_id,first_name,city,score,balance,vip,tier,signup\n"
BYTES_PER_ROW = 72


def rows(n: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The same user, as a CSV line and as the object that line must become."""
    cities = ["Paris", "New York, NY", "Zürich", "São Paulo", 'The "Big" Easy']
    for i in range(n):
        city = cities[i % len(cities)]
        quoted = '"' + city.replace('"', '""') + '"' if ("," in city or '"' in city) else city
        score, balance, vip = i % 1000, round((i % 10_000) / 7, 2), i % 3 == 0
        tier = ["gold", "silver", ""][i % 3]
        line = f"{i:09d},Name{i % 977},{quoted},{score},{balance},{str(vip).lower()},{tier},2026-01-{i % 28 + 1:02d}\n"
        obj: dict[str, Any] = {
            "external_id": f"{i:09d}",
            "first_name": f"Name{i % 977}",
            "city": city,
            "score": score,
            "balance": balance,
            "vip": vip,
        }
        if tier:
            obj["tier"] = tier
        obj["signup"] = f"2026-01-{i % 28 + 1:02d}"
        yield line, obj


def write(work: Path, n: int) -> tuple[Path, Path]:
    csv_path, jsonl_path = work / f"users-{n}.csv", work / f"users-{n}.jsonl"
    if not (csv_path.exists() and jsonl_path.exists()):
        with csv_path.open("w", encoding="utf-8") as c, jsonl_path.open("wb") as j:
            c.write(HEADER)
            for line, obj in rows(n):
                c.write(line)
                j.write(orjson.dumps(obj) + b"\n")
    return csv_path, jsonl_path


def _import(box: ImportSandbox, path: Path, key: str) -> float:
    run = importer(box, path, key)
    assert run["report"]["rejected"] == 0, run["report"]
    return float(run["objects_per_second"])


def _read_only(path: Path, fmt: str) -> float:
    from braze_importer.csv_reader import iter_rows
    from braze_importer.reader import START, Format, iter_elements

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk

    start = time.perf_counter()
    elements = iter_rows(chunks(), START) if fmt == "csv" else iter_elements(chunks(), Format.LINES)
    n = sum(1 for _ in elements)
    return n / (time.perf_counter() - start)


def throughput(n: int) -> dict[str, Any]:
    work = Path(".bench")
    work.mkdir(exist_ok=True)
    csv_path, jsonl_path = write(work, n)
    out: dict[str, Any] = {"rows": n, "csv_bytes": csv_path.stat().st_size, "jsonl_bytes": jsonl_path.stat().st_size}
    out["read_csv"] = _read_only(csv_path, "csv")
    out["read_jsonl"] = _read_only(jsonl_path, "jsonl")
    with ImportSandbox(deltas=False, emulator_settings={"record": False, "profiles": False}) as box:
        assert box.emulator is not None
        box.emulator.configure(rate_limit=10**9, latency_ms=0)
        box.set_function_env(WORKSPACE_REQUESTS_PER_SECOND="100000", MAX_IN_FLIGHT="80")
        # Alternate, so drift on a shared machine falls on both formats alike; keep the better of two.
        csv_runs, json_runs = [], []
        for k in range(2):
            json_runs.append(_import(box, jsonl_path, f"incoming/j{k}.jsonl"))
            csv_runs.append(_import(box, csv_path, f"incoming/c{k}.csv"))
    out["import_csv"], out["import_jsonl"] = max(csv_runs), max(json_runs)
    out["braze_csv_lambda"] = BRAZE_CSV_LAMBDA_ROWS_PER_SECOND
    return out


def rss(megabytes: int) -> dict[str, Any]:
    work = Path(".bench")
    work.mkdir(exist_ok=True)
    n = megabytes * 1_000_000 // BYTES_PER_ROW
    path, _ = write(work, n)
    return measure(path, "incoming/rss.csv")


if __name__ == "__main__":
    what, size = sys.argv[1], int(sys.argv[2])
    print(json.dumps(throughput(size) if what == "throughput" else rss(size)))
