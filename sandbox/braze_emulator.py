"""A local Braze REST API for ``POST /users/track``, with the limits and failures of the real one.

Run it as ``python -m sandbox.braze_emulator --port 0``: it prints ``READY <port>`` when it
listens. It behaves like Braze where the importer can tell the difference:

- ``Authorization: Bearer <key>``, else 401;
- at most 75 objects combined (50 with ``batch_rule: combined_50``, 75 per array with
  ``batch_rule: per_array``), else 400
  ``Max Input Length Exceeded``; a body over ``max_body_bytes`` gets 413;
- object rules: invalid objects are listed in ``errors`` as ``{"type", "input_array", "index"}``
  with 201, the valid ones are stored;
- ``X-RateLimit-Limit/-Remaining/-Reset`` on every answer, 429 past the window
  (default 3,000 requests per 3 s, a fixed window; Reset is the window's end in UNIX seconds),
  and optionally ``Retry-After`` or ``X-Ratelimit-Retry-After`` on a 429 (``retry_after_header``);
- another sender in the same workspace (``foreign_share``, 0 to 1): that share of every window is
  used by someone else, spread evenly over the window, so Remaining falls faster than the
  importer's own requests explain and 429s come sooner.

Faults for tests: a latency per answer, and a ``script`` of outcomes for the next requests
(``ok``, ``500``, ``502``, ``503``, ``429``, ``401``, ``drop_before``, ``drop_after``) or seeded
``rates`` of the same. ``drop_before`` closes the connection without storing anything;
``drop_after`` stores the batch and then closes it without an answer.

Control API (loopback only): ``POST /_emulator/config``, ``GET /_emulator/state``,
``GET /_emulator/objects``, ``POST /_emulator/reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

OUTCOMES = ("ok", "500", "502", "503", "429", "401", "drop_before", "drop_after")
ARRAYS = ("attributes", "events", "purchases")
IDENTIFIERS = ("external_id", "braze_id", "user_alias", "email", "phone")


@dataclass
class Config:
    api_key: str = "sandbox-braze-key"
    batch_rule: str = "combined"
    max_objects: int = 75
    max_body_bytes: int = 4 * 1024 * 1024
    rate_limit: int = 3000
    rate_window_seconds: float = 3.0
    # Also answer a 429 with this header (seconds until the window ends): "Retry-After", or
    # "X-Ratelimit-Retry-After" as on Braze's monthly-active-user contracts. Empty: neither.
    retry_after_header: str = ""
    foreign_share: float = 0.0  # of every window, used by another sender at an even pace
    latency_ms: float = 0.0
    script: list[str] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 7
    record: bool = True

    def update(self, data: dict[str, Any]) -> None:
        share = data.get("foreign_share", 0.0)
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0.0 <= share < 1.0:
            raise ValueError("foreign_share must be a number, at least 0 and less than 1")
        for key, value in data.items():
            if not hasattr(self, key):
                raise ValueError(f"unknown setting {key!r}")
            setattr(self, key, value)
        for outcome in [*self.script, *self.rates]:
            if outcome not in OUTCOMES:
                raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")


class Emulator:
    def __init__(self) -> None:
        self.config = Config()
        self.reset()

    def reset(self) -> None:
        self.random = random.Random(self.config.seed)
        self.objects: list[dict[str, Any]] = []
        self.stored = 0
        self.requests = 0
        self.statuses: dict[str, int] = {}
        self.window_start = 0.0
        self.window_count = 0

    # -- the API -------------------------------------------------------------------------------

    async def track(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = await request.read()
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)
        limit_headers, limited = self._rate_limit()
        outcome = self._next_outcome()
        if outcome == "drop_before":
            return self._drop(request)
        if limited or outcome == "429":
            headers = dict(limit_headers)
            if self.config.retry_after_header:
                left = max(0.0, float(limit_headers["X-RateLimit-Reset"]) - time.time())
                headers[self.config.retry_after_header] = str(math.ceil(left))
            return self._answer(429, {"message": "Too Many Requests"}, headers)
        if outcome in ("500", "502", "503"):
            return self._answer(int(outcome), {"message": "Internal Server Error"}, limit_headers)
        auth = request.headers.get("Authorization", "")
        if outcome == "401" or auth != f"Bearer {self.config.api_key}":
            return self._answer(401, {"message": "Invalid API key"}, limit_headers)
        if len(body) > self.config.max_body_bytes:
            return self._answer(413, {"message": "Request Entity Too Large"}, limit_headers)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._answer(400, {"message": "Invalid JSON"}, limit_headers)
        if not isinstance(payload, dict):
            return self._answer(400, {"message": "Invalid JSON"}, limit_headers)
        arrays = {name: payload.get(name) or [] for name in ARRAYS}
        if any(not isinstance(v, list) for v in arrays.values()):
            return self._answer(400, {"message": "attributes, events and purchases must be arrays"}, limit_headers)
        if self._too_many(arrays):
            return self._answer(400, {"message": "Max Input Length Exceeded"}, limit_headers)
        errors = []
        accepted = []
        for name, objects in arrays.items():
            for index, obj in enumerate(objects):
                problem = _object_problem(name, obj)
                if problem:
                    errors.append({"type": problem, "input_array": name, "index": index})
                else:
                    accepted.append((name, obj))
        if not accepted and errors:
            return self._answer(400, {"message": "No valid objects", "errors": errors}, limit_headers)
        self._store(accepted)
        if outcome == "drop_after":
            return self._drop(request)
        answer: dict[str, Any] = {"message": "success"}
        if errors:
            answer["errors"] = errors
        return self._answer(201, answer, limit_headers)

    def _too_many(self, arrays: dict[str, list[Any]]) -> bool:
        if self.config.batch_rule == "per_array":
            return any(len(v) > self.config.max_objects for v in arrays.values())
        limit = min(50, self.config.max_objects) if self.config.batch_rule == "combined_50" else self.config.max_objects
        return sum(len(v) for v in arrays.values()) > limit

    def _rate_limit(self) -> tuple[dict[str, str], bool]:
        now = time.time()
        window = self.config.rate_window_seconds
        if now >= self.window_start + window:
            self.window_start = math.floor(now / window) * window
            self.window_count = 0
        self.window_count += 1
        limit = self.config.rate_limit
        foreign = math.floor(self.config.foreign_share * limit * (now - self.window_start) / window)
        used = self.window_count + foreign
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - used)),
            "X-RateLimit-Reset": f"{self.window_start + window:.3f}",
        }
        return headers, used > limit

    def _next_outcome(self) -> str:
        if self.config.script:
            return self.config.script.pop(0)
        roll = self.random.random()
        for outcome, rate in self.config.rates.items():
            if roll < rate:
                return outcome
            roll -= rate
        return "ok"

    def _store(self, accepted: list[tuple[str, Any]]) -> None:
        self.stored += len(accepted)
        if self.config.record:
            self.objects.extend({"array": name, "object": obj} for name, obj in accepted)

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> web.Response:
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)

    def _drop(self, request: web.Request) -> web.StreamResponse:
        self.statuses["dropped"] = self.statuses.get("dropped", 0) + 1
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("connection dropped by fault injection")

    # -- control ---------------------------------------------------------------------------------

    async def set_config(self, request: web.Request) -> web.Response:
        try:
            self.config.update(await request.json())
        except (ValueError, TypeError) as exc:
            return web.json_response({"message": str(exc)}, status=400)
        self.random = random.Random(self.config.seed)
        return web.json_response({"ok": True})

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests, "stored": self.stored, "statuses": self.statuses})

    async def objects_(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.objects), content_type="application/json")

    async def reset_(self, request: web.Request) -> web.Response:
        self.config = Config()
        self.reset()
        return web.json_response({"ok": True})


def _object_problem(array: str, obj: Any) -> str | None:
    """Braze's per-object checks (a subset that covers what callers get wrong)."""
    if not isinstance(obj, dict):
        return "object expected"
    if not any(obj.get(k) not in (None, "") for k in IDENTIFIERS):
        return "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"
    if array == "events":
        if not isinstance(obj.get("name"), str) or not obj["name"]:
            return "Event name is required"
        if not isinstance(obj.get("time"), str):
            return "Event time is required"
    if array == "purchases":
        for key in ("product_id", "currency", "time"):
            if not isinstance(obj.get(key), str):
                return f"Purchase {key} is required"
        if isinstance(obj.get("price"), bool) or not isinstance(obj.get("price"), int | float):
            return "Purchase price must be a number"
    properties = obj.get("properties") if array != "attributes" else None
    if isinstance(properties, dict):
        for key, value in properties.items():
            if key.startswith("$"):
                return "Property keys cannot begin with '$'"
            if len(key) > 255 or (isinstance(value, str) and len(value) > 255):
                return "Property keys and string values must be at most 255 characters"
    return None


def build_app(emulator: Emulator) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/users/track", emulator.track)
    app.router.add_post("/_emulator/config", emulator.set_config)
    app.router.add_get("/_emulator/state", emulator.state)
    app.router.add_get("/_emulator/objects", emulator.objects_)
    app.router.add_post("/_emulator/reset", emulator.reset_)
    return app


async def _serve(host: str, port: int, config: dict[str, Any]) -> None:
    emulator = Emulator()
    emulator.config.update(config)
    runner = web.AppRunner(build_app(emulator), access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {bound}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.braze_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config", default="{}", help="initial settings as JSON")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.host, args.port, orjson.loads(args.config)))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
