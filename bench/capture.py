"""Capture front against a bare ``put_events``, measured in the same run on the same moto server.

- baseline: ``put_events`` of 10 ready-made entries per call, straight to the bus (the least any
  route to EventBridge has to do);
- capture front, warm: ``POST /event`` with 10 entries as API Gateway serves it in the sandbox:
  the authorizer's decision cached per token (as API Gateway caches it), the real API function
  parsing and checking each entry and putting them in one call;
- capture front, cold decision: the same with the authorizer run on every request (JWT signature
  check; the external id from the container's cache), the worst case of a token API Gateway has
  not seen yet.

Calls are sequential, alternating the three kinds round by round so a noisy machine weighs on
each alike. Prints one JSON object: ``python -m bench.capture [requests]`` (default 1000).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

import boto3

from sandbox.capture import BUS, DEMO_PASSWORD, DEMO_USER, CaptureRoute, clear_caches
from sandbox.importer import REGION, _environment
from sandbox.services import PLACEHOLDER_CREDENTIALS, moto_server

ENTRIES = 10


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    return {
        "events_per_s": len(latencies) * ENTRIES / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def main(requests: int) -> dict[str, Any]:
    from client_capture.submit import DETAIL_TYPE, SOURCE  # lambdas/ is on the path once sandbox is imported

    with moto_server() as endpoint:
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            **PLACEHOLDER_CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            "POWERTOOLS_LOG_LEVEL": "ERROR",
        }
        with _environment(env):
            boto3.client("s3").create_bucket(Bucket="bench-import")
            route = CaptureRoute(import_bucket="bench-import")
            with _environment(route.environment()):
                clear_caches()
                route.create_user(DEMO_USER, DEMO_PASSWORD, email="bench@example.com")
                token = route.sign_in()["AccessToken"]
                events = boto3.client("events")
                # EventBridge delivers to targets after PutEvents has answered; moto delivers inside the
                # call. Without the target both sides measure PutEvents alone.
                events.remove_targets(Rule="all-client-events", EventBusName=BUS, Ids=["firehose-stand-in"])
                body = {
                    "entries": [
                        {"entry": json.dumps({"eventType": "pageview", "schemaVersion": "1", "data": {"page": i}})}
                        for i in range(ENTRIES)
                    ]
                }
                raw = json.dumps(body).encode()
                bare_entries = [
                    {"Source": SOURCE, "DetailType": DETAIL_TYPE, "EventBusName": BUS,
                     "Detail": json.dumps({"external_id": "x", "event_type": "pageview", "schema_version": "1",
                                           "data": {"page": i}, "time": None, "received_at": "2026-01-01T00:00:00Z"})}
                    for i in range(ENTRIES)
                ]  # fmt: skip

                def bare() -> None:
                    answer = events.put_events(Entries=bare_entries)
                    assert answer["FailedEntryCount"] == 0

                def warm() -> None:
                    assert route.post(raw, token)[0] == 200

                def cold() -> None:
                    route.decisions.clear()
                    assert route.post(raw, token)[0] == 200

                kinds = {"bare": bare, "front_warm": warm, "front_cold_decision": cold}
                for call in kinds.values():  # warm-up: clients, keys, imports
                    for _ in range(20):
                        call()
                latencies: dict[str, list[float]] = {k: [] for k in kinds}
                walls = dict.fromkeys(kinds, 0.0)
                for _ in range(requests):
                    for name, call in kinds.items():
                        started = time.perf_counter()
                        call()
                        elapsed = time.perf_counter() - started
                        latencies[name].append(elapsed)
                        walls[name] += elapsed
    result: dict[str, Any] = {name: summary(latencies[name], walls[name]) for name in kinds}
    result["requests"] = requests
    result["entries_per_request"] = ENTRIES
    return result


if __name__ == "__main__":
    os.environ.setdefault("SANDBOX_LOG_LEVEL", "ERROR")
    out, sys.stdout = sys.stdout, sys.stderr  # handlers log on stdout, as on Lambda; stdout is the result's
    figures = main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
    out.write(json.dumps(figures) + "\n")
