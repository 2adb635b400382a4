"""Catalog items per second at a catalog limit: the importer's pump, its HTTP adapter and a small
local server that answers ``PUT /catalogs/{name}/items`` as Braze's asynchronous catalog
endpoints do (202, X-RateLimit-Limit / -Remaining / -Reset over fixed windows, 429 past the
limit, 30 ms per answer).

The figure: items per second the importer sends at a limit of ``requests`` per ``window`` seconds
(default 300 per 30 s: Braze's per-minute budget scaled to 600 a minute, 50 items a request, so
500 items/s), as a ratio of what that limit allows. Beside it, measured in the same run: the same
pump against the server with the limit lifted, which is what this machine can send at all.
Prints one JSON object. Run through ``python -m bench`` or ``python -m bench.catalogs``.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import sys
import time
from typing import Any

import orjson
from aiohttp import web

import sandbox  # noqa: F401 - first: it puts lambdas/ on the path, as a bundle's root is

# isort: split
from braze_importer.braze_http import braze_client
from braze_importer.endpoints import CatalogDestination
from braze_importer.engine import Checkpoint, Pump, SendPolicy
from braze_importer.ports import Group, SystemClock
from braze_importer.reader import Format, iter_elements
from braze_importer.rows import Route, for_route

ITEMS_PER_REQUEST = 50
LATENCY_SECONDS = 0.030


class CatalogServer:
    """Fixed windows of ``limit`` requests (None: no limit); counts what it took and refused."""

    def __init__(self, limit: int | None, window: float) -> None:
        self.limit = limit
        self.window = window
        self.items = 0
        self.accepted = 0
        self.throttled = 0
        self._window = -1
        self._used = 0

    async def put_items(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        await asyncio.sleep(LATENCY_SECONDS)
        now = time.time()
        window = math.floor(now / self.window)
        if window != self._window:
            self._window, self._used = window, 0
        reset = (window + 1) * self.window
        limit = self.limit if self.limit is not None else 1_000_000
        if self._used >= limit:
            self.throttled += 1
            headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": f"{reset}"}
            return web.json_response({"message": "Too Many Requests"}, status=429, headers=headers)
        self._used += 1
        self.accepted += 1
        self.items += len(body["items"])
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(limit - self._used),
            "X-RateLimit-Reset": f"{reset}",
        }
        return web.json_response({"message": "success"}, status=202, headers=headers)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def catalog_file(items: int) -> bytes:
    rows = (
        {"ID": f"sku-{i}", "PAYLOAD": orjson.dumps({"name": f"Shoe {i}", "price": i % 300, "sizes": [40, 41, 42]})}
        for i in range(items)
    )
    return b"\n".join(
        orjson.dumps({k: (v.decode() if isinstance(v, bytes) else v) for k, v in r.items()}) for r in rows
    )


async def measure(items: int, limit: int | None, window: float) -> dict[str, Any]:
    server = CatalogServer(limit, window)
    app = web.Application()
    app.router.add_put("/catalogs/{name}/items", server.put_items)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    per_second = (limit / window) if limit is not None else 100_000.0
    policy = SendPolicy(catalog_requests_per_second=per_second).for_group(Group.CATALOG)
    data = catalog_file(items)
    rejects: list[Any] = []
    try:
        async with braze_client(f"http://127.0.0.1:{port}", "k", max_in_flight=80, timeout_seconds=30) as braze:
            pump = Pump(
                braze, policy, SystemClock(), on_reject=rejects.append, on_failed=rejects.append,
                destination=CatalogDestination("shoes"),
            )  # fmt: skip
            elements = for_route(iter_elements([data], Format.LINES, Checkpoint(0, 0).position), Route(catalog="shoes"))
            start = time.perf_counter()
            result = await pump.run(elements, Checkpoint(0, 0), lambda: True)
            wall = time.perf_counter() - start
    finally:
        await runner.cleanup()
    assert result.checkpoint.index == items and not rejects and server.items == items, (result, server.items)
    allowed = (limit / window * ITEMS_PER_REQUEST) if limit is not None else None
    return {
        "items": items,
        "seconds": wall,
        "items_per_second": items / wall,
        "limit_requests": limit,
        "window_seconds": window,
        "limit_items_per_second": allowed,
        "vs_limit": (items / wall / allowed) if allowed else None,
        "requests": server.accepted + server.throttled,
        "throttled": server.throttled,
    }


def main(windows: int = 2, limit: int = 300, window: float = 30.0) -> dict[str, Any]:
    paced = asyncio.run(measure(windows * limit * ITEMS_PER_REQUEST, limit, window))
    unpaced = asyncio.run(measure(limit * ITEMS_PER_REQUEST, None, window))
    return {"paced": paced, "unpaced": unpaced}


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:]]
    result = main(
        int(args[0]) if args else 2, int(args[1]) if len(args) > 1 else 300, args[2] if len(args) > 2 else 30.0
    )
    print(json.dumps(result))
