"""Braze's errors[] name an object by its array in the request and its index within that array."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from braze_importer.engine import BatchRule, Checkpoint, Outcome, Pump, SendPolicy
from braze_importer.ports import BrazeAnswer, Endpoint
from braze_importer.reader import Format, iter_elements

from tests.fakes import FakeBraze, FakeClock, answer


def mixed(n: int) -> list[dict[str, Any]]:
    """Attributes, events and purchases interleaved, every fifth object marked for Braze to refuse."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        base: dict[str, Any] = {"external_id": f"u{i}"}
        if i % 3 == 0:
            obj = {**base, "plan": "gold"}
        elif i % 3 == 1:
            obj = {**base, "name": "e", "time": "2026-01-01T00:00:00Z"}
        else:
            obj = {**base, "product_id": "p", "currency": "EUR", "price": 1, "time": "2026-01-01T00:00:00Z"}
        if i % 5 == 2:
            obj["refuse"] = f"bad {i}"
        out.append(obj)
    return out


def refusing(status: int) -> Any:
    """Answers like Braze: each refused object named by (input_array, index within that array)."""

    def respond(payload: dict[str, Any]) -> Any:
        errors = [
            {"type": obj["refuse"], "input_array": array, "index": index}
            for array in ("attributes", "events", "purchases")
            for index, obj in enumerate(payload.get(array, []))
            if "refuse" in obj
        ]
        if not errors:
            return answer()
        return answer(status, {"message": "success" if status == 201 else "bad", "errors": errors})

    return respond


def run(braze: Any, objs: list[Any], policy: SendPolicy) -> tuple[list[dict[str, Any]], Any]:
    rejects: list[dict[str, Any]] = []
    pump = Pump(braze, policy, FakeClock(), on_reject=rejects.append, on_failed=lambda _: None)
    data = orjson.dumps(objs)
    result = asyncio.run(pump.run(iter_elements([data], Format.ARRAY), Checkpoint(0, 0), lambda: True))
    assert result.outcome is Outcome.COMPLETED
    return rejects, pump


@pytest.mark.parametrize("status", [201, 400])
@pytest.mark.parametrize("rule", [BatchRule.COMBINED, BatchRule.PER_ARRAY])
def test_errors_in_a_batch_mixing_the_three_arrays_reject_exactly_the_objects_braze_named(
    status: int, rule: BatchRule
) -> None:
    objs = mixed(450)
    braze = FakeBraze(default=refusing(status))
    rejects, pump = run(braze, objs, SendPolicy(max_in_flight=1, batch_rule=rule))
    refused = [i for i, o in enumerate(objs) if "refuse" in o]
    assert all(len({k for k in r if r[k]}) == 3 for r in braze.requests[:3])  # each request mixes the arrays
    assert sorted(r["index"] for r in rejects) == refused
    data = orjson.dumps(objs)
    for reject in rejects:
        # Right object: its reason names it, and its offset points at it in the file.
        assert reject["reason"].endswith(f"bad {reject['index']}")
        assert data[reject["offset"] :].startswith(orjson.dumps(objs[reject["index"]]))
    assert sorted(braze.stored, key=lambda o: int(o["external_id"][1:])) == [o for o in objs if "refuse" not in o]
    assert pump.counters.accepted == len(objs) - len(refused)
    assert pump.counters.rejected == len(refused)
    if status == 201:
        assert len(braze.requests) == -(-len(objs) // (75 if rule is BatchRule.COMBINED else 225))  # never resent


@pytest.mark.parametrize(
    "error",
    [
        {"type": "x", "input_array": "events", "index": 25},  # past the end of that array
        {"type": "x", "input_array": "events", "index": -1},
        {"type": "x", "input_array": "event", "index": 0},  # no such array
        {"type": "x", "input_array": "events", "index": "zero"},
        {"type": "x", "index": 0},
        "x",
    ],
)
def test_an_error_that_names_no_object_of_the_request_rejects_nothing(error: Any) -> None:
    objs = mixed(30)  # 10 events in the request
    for obj in objs:
        obj.pop("refuse", None)
    braze = Scripted(answer(201, {"message": "success", "errors": [error]}))
    rejects, pump = run(braze, objs, SendPolicy(max_in_flight=1))
    assert rejects == [] and pump.counters.accepted == 30 and braze.requests == 1


class Scripted:
    """Answers every request the same (FakeBraze reads errors[] itself, so it needs them well formed)."""

    def __init__(self, reply: BrazeAnswer) -> None:
        self.reply = reply
        self.requests = 0

    async def send(self, endpoint: Endpoint, body: bytes) -> BrazeAnswer:
        self.requests += 1
        return self.reply
