"""Import throughput: the real handler (sandbox: moto server + Braze emulator, each in its own
process) against baselines measured in the same run.

Prints one JSON object with every figure. Run through ``python -m bench``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ijson
import orjson
from httpx_aiohttp import AiohttpTransport

from sandbox import sample_data
from sandbox.importer import ImportSandbox
from sandbox.services import BrazeEmulator

KEY = "sandbox-braze-key"
BRAZE_CAP_OBJECTS_PER_SECOND = 75_000  # 3,000 requests per 3 s x 75 objects


def json_array_objects(path: Path) -> Iterator[Any]:
    with path.open("rb") as f:
        yield from ijson.items(f, "item", use_float=True)


def gzip_lines_objects(path: Path) -> Iterator[Any]:
    """A bare inflate-and-frame loop: zlib, split on newlines, decode each line."""
    inflater = zlib.decompressobj(wbits=31)
    rest = b""
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            lines = (rest + inflater.decompress(chunk)).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if line:
                    yield orjson.loads(line)
    if rest.strip():
        yield orjson.loads(rest)


def bare_pipeline(
    path: Path, url: str, in_flight: int, read: Callable[[Path], Iterator[Any]] = json_array_objects
) -> float:
    """The least an importer must do: read the objects, batch by 75, POST with N in flight."""

    async def go() -> int:
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        sent = 0
        semaphore = asyncio.Semaphore(in_flight)
        async with httpx.AsyncClient(base_url=url, transport=AiohttpTransport(limits=limits), timeout=30) as client:
            tasks = set()

            async def post(batch: list[Any]) -> None:
                try:
                    arrays: dict[str, list[Any]] = {}
                    for obj in batch:
                        kind = "purchases" if "product_id" in obj else "events" if "name" in obj else "attributes"
                        arrays.setdefault(kind, []).append(obj)
                    response = await client.post(
                        "/users/track",
                        content=orjson.dumps(arrays),
                        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                    )
                    response.raise_for_status()
                finally:
                    semaphore.release()

            batch: list[Any] = []
            for obj in read(path):
                batch.append(obj)
                if len(batch) == 75:
                    await semaphore.acquire()
                    tasks.add(asyncio.ensure_future(post(batch)))
                    sent += len(batch)
                    batch = []
            if batch:
                await semaphore.acquire()
                tasks.add(asyncio.ensure_future(post(batch)))
                sent += len(batch)
            await asyncio.gather(*tasks)
        return sent

    start = time.perf_counter()
    sent = asyncio.run(go())
    return sent / (time.perf_counter() - start)


def naive_sequential(path: Path, url: str, limit: int) -> float:
    """What a first attempt looks like: load the whole file, one request at a time."""
    objects = json.loads(path.read_bytes())[:limit]
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(0, len(objects), 75):
            arrays: dict[str, list[Any]] = {}
            for obj in objects[i : i + 75]:
                kind = "purchases" if "product_id" in obj else "events" if "name" in obj else "attributes"
                arrays.setdefault(kind, []).append(obj)
            client.post("/users/track", json=arrays, headers={"Authorization": f"Bearer {KEY}"}).raise_for_status()
    return len(objects) / (time.perf_counter() - start)


def importer(box: ImportSandbox, path: Path, key: str) -> dict[str, Any]:
    """Upload first (not timed), then time the handler chain alone."""
    event = box.upload(path, key)
    start = time.perf_counter()
    results = box.deliver(event)
    seconds = time.perf_counter() - start
    report = box.report(results[0]["runs"][0]["run_id"])
    assert report["status"] == "completed" and report["failed"] == 0, report
    return {"objects_per_second": report["accepted"] / seconds, "seconds": seconds, "report": report}


def main(objects: int) -> dict[str, Any]:
    work = Path(".bench")
    work.mkdir(exist_ok=True)
    path = sample_data.write(work / f"events-{objects}.json", objects)
    gz_path = sample_data.write(work / f"events-{objects}.jsonl.gz", objects)
    out: dict[str, Any] = {"objects": objects, "file_bytes": path.stat().st_size}
    with ImportSandbox(deltas=False, emulator_settings={"record": False, "profiles": False}) as box:
        braze: BrazeEmulator = box.emulator  # type: ignore[assignment]

        # (a) loopback, no limit: the importer vs a bare parse-and-send pipeline, same concurrency.
        braze.configure(rate_limit=10**9, latency_ms=0)
        box.set_function_env(WORKSPACE_REQUESTS_PER_SECOND="100000", MAX_IN_FLIGHT="80")
        out["a_importer"] = importer(box, path, "incoming/a.json")["objects_per_second"]
        out["a_bare"] = bare_pipeline(path, braze.url, 80)
        # (a-gz) the same objects as gzipped JSON Lines, against a bare inflate + frame + send loop.
        out["a_gz_importer"] = importer(box, gz_path, "incoming/a.jsonl.gz")["objects_per_second"]
        out["a_gz_bare"] = bare_pipeline(gz_path, braze.url, 80, gzip_lines_objects)

        # (b) a real round trip (30 ms) at Braze's default limit, default settings: one run alone
        # takes the whole workspace. Beside it, the same run with pacing lifted and no limit: what
        # this machine can do at all at 30 ms (the pacing's cost is the difference).
        # The two alternate, twice, and each keeps its best: the machine's load changes by the second.
        unpaced, paced = [], []
        for attempt in range(2):
            braze.configure(rate_limit=10**9, latency_ms=30)
            box.set_function_env(WORKSPACE_REQUESTS_PER_SECOND="100000", MAX_IN_FLIGHT="80")
            unpaced.append(importer(box, path, f"incoming/b-unpaced-{attempt}.json"))
            braze.configure(rate_limit=3000, rate_window_seconds=3.0, latency_ms=30)
            box.set_function_env(WORKSPACE_REQUESTS_PER_SECOND="1000", MAX_IN_FLIGHT="80")
            paced.append(importer(box, path, f"incoming/b-{attempt}.json"))
        out["b_unpaced"] = max(r["objects_per_second"] for r in unpaced)
        run = max(paced, key=lambda r: r["objects_per_second"])
        out["b_importer"] = run["objects_per_second"]
        out["b_throttled"] = run["report"]["throttled"]

        # (c) a limit that binds: 300 requests per 3 s.
        braze.configure(rate_limit=300, rate_window_seconds=3.0, latency_ms=30)
        run = importer(box, path, "incoming/c.json")
        out["c_importer"] = run["objects_per_second"]
        out["c_limit"] = 300 / 3.0 * 75
        out["c_throttled"] = run["report"]["throttled"]
        out["c_requests"] = run["report"]["requests"]

        # (d) a naive sequential sender at the same 30 ms, on a slice (it is slow).
        braze.configure(rate_limit=10**9, latency_ms=30)
        out["d_naive"] = naive_sequential(path, braze.url, min(objects, 15_000))
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)))
