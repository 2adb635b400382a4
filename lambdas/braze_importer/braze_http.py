"""Braze's REST API over HTTP: the httpx API on the aiohttp transport.

Plain httpx loses most of its throughput beyond ~20 requests in flight; its API over the
aiohttp transport holds 40-80 at a real round trip. What matters here besides speed is telling
apart a request that never left (safe to resend) from one that got no answer (ambiguous).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

from .ports import BrazeAnswer, Delivery, Endpoint


class BrazeHttp:
    def __init__(self, client: httpx.AsyncClient, base_url: str, api_key: str) -> None:
        self._client = client
        # Built once per endpoint: httpx parses a URL string and normalises a headers dict on every request.
        self._base = base_url.rstrip("/")
        self._urls: dict[Endpoint, httpx.URL] = {}
        self._headers = httpx.Headers({"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"})

    async def send(self, endpoint: Endpoint, body: bytes) -> BrazeAnswer:
        url = self._urls.get(endpoint)
        if url is None:
            url = self._urls[endpoint] = httpx.URL(self._base + endpoint.path)
        try:
            response = await self._client.request(endpoint.method, url, content=body, headers=self._headers)
            payload = response.content
        except (TimeoutError, httpx.HTTPError, aiohttp.ClientError) as exc:
            return BrazeAnswer(classify_failure(exc), detail=type(exc.__cause__ or exc).__name__)
        return BrazeAnswer(
            Delivery.ANSWERED,
            status=response.status_code,
            body=_json_object(payload),
            limit=_int_header(response.headers.get("x-ratelimit-limit")),
            remaining=_int_header(response.headers.get("x-ratelimit-remaining")),
            reset_at=_float_header(response.headers.get("x-ratelimit-reset")),
            retry_after=retry_after_seconds(response.headers, time.time()),
        )


def classify_failure(exc: BaseException) -> Delivery:
    """NOT_SENT only when the request certainly never reached the server."""
    cause = exc.__cause__ or exc
    if isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return Delivery.NOT_SENT
    if isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return Delivery.NOT_SENT
    return Delivery.AMBIGUOUS


@asynccontextmanager
async def braze_client(
    base_url: str, api_key: str, *, max_in_flight: int, timeout_seconds: float
) -> AsyncIterator[BrazeHttp]:
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    timeout = httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds))
    transport = AiohttpTransport(limits=limits)
    async with httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False) as client:
        yield BrazeHttp(client, base_url, api_key)


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(payload) if payload else {}
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def retry_after_seconds(headers: Any, now: float) -> float | None:
    """Seconds to wait from ``X-Ratelimit-Retry-After`` (what Braze's monthly-active-user contracts
    answer a 429 with) or ``Retry-After`` (seconds or an HTTP date); None if neither makes sense."""
    for name in ("x-ratelimit-retry-after", "retry-after"):
        value = headers.get(name)
        if value is None:
            continue
        seconds = _float_header(value)
        if seconds is None:
            try:
                seconds = parsedate_to_datetime(value).timestamp() - now
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def _float_header(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
