"""The emulator's rate-limit groups and faults: each endpoint group counts alone; faults reach every endpoint."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.unit.emulator_harness import Running, running

CATALOG = {"shop": {"fields": [{"name": "id", "type": "string"}, {"name": "price", "type": "number"}]}}
ITEMS = "/catalogs/shop/items"
ATTRIBUTE = {"attributes": [{"external_id": "u1", "a": 1}]}

# One request of each endpoint, with the group it counts against.
REQUESTS: dict[str, tuple[str, str, Any]] = {
    "track": ("POST", "/users/track", ATTRIBUTE),
    "catalog_items": ("PUT", ITEMS, {"items": [{"id": "a", "price": 1}]}),
    "catalog_list": ("GET", "/catalogs", None),
    "users_delete": ("POST", "/users/delete", {"external_ids": ["nobody"]}),
}
SETTINGS = {
    "track": ("rate_limit", "rate_window_seconds"),
    "catalog_items": ("catalog_rate_limit", "catalog_rate_window_seconds"),
    "catalog_list": ("catalog_list_rate_limit", "catalog_list_rate_window_seconds"),
    "users_delete": ("delete_rate_limit", "delete_rate_window_seconds"),
}
SUCCESS = {"track": 201, "catalog_items": 202, "catalog_list": 200, "users_delete": 201}


@pytest.fixture
def braze(server: Running) -> Running:
    server.reset()
    server.configure(catalogs=CATALOG)
    return server


def send(braze: Running, group: str) -> httpx.Response:
    method, path, body = REQUESTS[group]
    return braze.call(method, path, body)


@pytest.mark.parametrize(
    ("group", "limit", "window"),
    [("track", 3000, 3.0), ("catalog_items", 16_000, 60.0), ("catalog_list", 50, 60.0), ("users_delete", 20_000, 60.0)],
)
def test_every_group_has_braze_s_default_limit_in_its_headers(
    braze: Running, group: str, limit: int, window: float
) -> None:
    before = time.time()
    answer = send(braze, group)
    assert answer.status_code == SUCCESS[group], answer.text
    assert answer.headers["X-RateLimit-Limit"] == str(limit)
    assert answer.headers["X-RateLimit-Remaining"] == str(limit - 1)
    reset = float(answer.headers["X-RateLimit-Reset"])
    assert before < reset <= before + window + 1


@pytest.mark.parametrize("group", list(REQUESTS))
def test_a_group_past_its_limit_gets_429_and_the_others_do_not(braze: Running, group: str) -> None:
    limit_key, window_key = SETTINGS[group]
    braze.configure(**{limit_key: 2, window_key: 60.0}, retry_after_header="Retry-After")
    assert [send(braze, group).status_code for _ in range(2)] == [SUCCESS[group]] * 2
    refused = send(braze, group)
    assert refused.status_code == 429 and refused.json() == {"message": "Too Many Requests"}
    assert refused.headers["X-RateLimit-Remaining"] == "0" and refused.headers["X-RateLimit-Limit"] == "2"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    for other in REQUESTS:
        if other != group:
            answer = send(braze, other)
            assert answer.status_code == SUCCESS[other], (other, answer.text)
            assert answer.headers["X-RateLimit-Limit"] != "2"


def test_a_refused_catalog_request_applies_nothing(braze: Running) -> None:
    braze.configure(catalog_rate_limit=0)
    assert send(braze, "catalog_items").status_code == 429
    assert braze.items("shop")["items"] == []


def test_the_catalog_window_opens_again_after_it_ends(braze: Running) -> None:
    braze.configure(catalog_rate_limit=1, catalog_rate_window_seconds=0.5)
    assert send(braze, "catalog_items").status_code == 202
    refused = send(braze, "catalog_items")
    assert refused.status_code == 429
    time.sleep(max(0.0, float(refused.headers["X-RateLimit-Reset"]) - time.time()) + 0.05)
    assert send(braze, "catalog_items").status_code == 202


@pytest.mark.parametrize("group", list(REQUESTS))
@pytest.mark.parametrize(("outcome", "status"), [("500", 500), ("502", 502), ("503", 503), ("429", 429), ("401", 401)])
def test_scripted_outcomes_reach_every_endpoint(braze: Running, group: str, outcome: str, status: int) -> None:
    braze.configure(script=[outcome])
    assert send(braze, group).status_code == status
    assert send(braze, group).status_code == SUCCESS[group]  # the script is spent


def test_one_script_is_shared_by_every_endpoint_in_arrival_order(braze: Running) -> None:
    braze.configure(script=["ok", "503", "ok", "500"])
    assert [send(braze, g).status_code for g in REQUESTS] == [201, 503, 200, 500]


@pytest.mark.parametrize("group", ["catalog_items", "users_delete", "track"])
def test_drop_before_applies_nothing_and_drop_after_applies_the_request(braze: Running, group: str) -> None:
    braze.call("POST", "/users/track", {"attributes": [{"external_id": "nobody"}]})
    braze.configure(script=["drop_before"])
    with pytest.raises(httpx.TransportError):
        send(braze, group)
    assert _applied(braze, group) is False
    braze.configure(script=["drop_after"])
    with pytest.raises(httpx.TransportError):
        send(braze, group)
    assert _applied(braze, group) is True
    assert braze.http.get("/_emulator/state").json()["statuses"]["dropped"] == 2


def _applied(braze: Running, group: str) -> bool:
    if group == "catalog_items":
        return braze.items("shop")["items"] == [{"id": "a", "price": 1}]
    if group == "users_delete":
        return braze.users(external_id="nobody") == []
    return "a" in braze.user("u1")["attributes"] if braze.users(external_id="u1") else False


def test_seeded_rates_reach_the_catalog_endpoints(braze: Running) -> None:
    braze.configure(rates={"503": 0.5}, seed=11)
    statuses = [send(braze, "catalog_items").status_code for _ in range(40)]
    assert set(statuses) == {202, 503} and 8 < statuses.count(503) < 32


@pytest.mark.parametrize("group", list(REQUESTS))
def test_latency_reaches_every_endpoint(braze: Running, group: str) -> None:
    braze.configure(latency_ms=150)
    started = time.perf_counter()
    assert send(braze, group).status_code == SUCCESS[group]
    assert time.perf_counter() - started >= 0.15


def test_a_body_over_max_body_bytes_is_refused_everywhere(braze: Running) -> None:
    braze.configure(max_body_bytes=10)
    for group in ("track", "catalog_items", "users_delete"):
        assert send(braze, group).status_code == 413


def test_state_counts_requests_per_endpoint(braze: Running) -> None:
    for group in REQUESTS:
        send(braze, group)
    braze.call("PATCH", ITEMS, {"items": [{"id": "a", "price": 2}]})
    state = braze.http.get("/_emulator/state").json()
    assert state["requests"] == 5
    assert state["endpoints"] == {
        "users/track": 1,
        "PUT catalogs/items": 1,
        "GET catalogs": 1,
        "users/delete": 1,
        "PATCH catalogs/items": 1,
    }
    assert state["statuses"] == {"201": 2, "202": 2, "200": 1}
    assert state["catalog_items"] == {"shop": 1} and state["users"] == 1


@pytest.mark.parametrize(
    "settings",
    [
        {"catalog_rate_limit": "many"},
        {"delete_rate_limit": -1},
        {"catalog_rate_window_seconds": 0},
        {"delete_rate_window_seconds": True},
        {"max_array_length": 2.5},
        {"latency_ms": "slow"},
        {"record": 1},
        {"rate_limit": 2.5},
        {"rates": {"503": "often"}},
        {"rates": ["503"]},
        {"catalogs": {"shop": {"fields": "id"}}},
        {"script": ["boom"]},
        {"no_such_setting": 1},
    ],
)
def test_bad_settings_are_refused_and_change_nothing(braze: Running, settings: dict[str, Any]) -> None:
    answer = braze.http.post("/_emulator/config", json=settings)
    assert answer.status_code == 400 and answer.json()["message"]
    assert send(braze, "catalog_items").headers["X-RateLimit-Limit"] == "16000"
    assert braze.emulator.config.script == [] and braze.emulator.config.latency_ms == 0
    assert braze.emulator.config.catalogs["shop"]["fields"] == CATALOG["shop"]["fields"]


def test_settings_at_start_reach_the_groups() -> None:
    with running(catalogs=CATALOG, catalog_rate_limit=7, delete_rate_limit=9) as braze:
        assert send(braze, "catalog_items").headers["X-RateLimit-Limit"] == "7"
        assert send(braze, "users_delete").headers["X-RateLimit-Limit"] == "9"
