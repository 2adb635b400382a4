"""The Braze emulator served in-process on a free loopback port, for the emulator's own tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from aiohttp import web

from sandbox.braze_emulator import Emulator, build_app

KEY = "sandbox-braze-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Running:
    """A running emulator: the object itself (to look inside) and an HTTP client for its API."""

    def __init__(self, emulator: Emulator, url: str) -> None:
        self.emulator = emulator
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def call(self, method: str, path: str, body: Any = None, auth: bool = True) -> httpx.Response:
        return self.http.request(method, path, json=body, headers=AUTH if auth else {})

    def configure(self, **settings: Any) -> None:
        answer = self.http.post("/_emulator/config", json=settings)
        assert answer.status_code == 200, answer.text

    def reset(self) -> None:
        assert self.http.post("/_emulator/reset").status_code == 200

    def track(self, **arrays: list[dict[str, Any]]) -> httpx.Response:
        return self.call("POST", "/users/track", arrays)

    def users(self, **query: str) -> list[dict[str, Any]]:
        answer = self.http.get("/_emulator/users", params=query)
        assert answer.status_code == 200, answer.text
        users: list[dict[str, Any]] = answer.json()["users"]
        return users

    def user(self, external_id: str) -> dict[str, Any]:
        (found,) = self.users(external_id=external_id)
        return found

    def items(self, catalog: str) -> dict[str, Any]:
        answer = self.http.get(f"/_emulator/catalogs/{catalog}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


@contextmanager
def running(**settings: Any) -> Iterator[Running]:
    emulator = Emulator()
    emulator.config.update(settings)
    emulator._sync_catalogs()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(emulator), access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, name="braze-emulator", daemon=True)
    thread.start()
    handle = Running(emulator, f"http://127.0.0.1:{port}")
    try:
        yield handle
    finally:
        handle.http.close()
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
