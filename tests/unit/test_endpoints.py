"""Catalog items and user deletes: each folder's rows, endpoint, answers, order, pacing group and resume."""

from __future__ import annotations

import asyncio
import json
from itertools import count
from typing import Any

import httpx
import orjson
import pytest
from braze_importer.braze_http import BrazeHttp
from braze_importer.endpoints import (
    CATALOG_DELETE,
    CATALOG_UPSERT,
    CatalogDestination,
    Destination,
    UserDeleteDestination,
)
from braze_importer.engine import AmbiguousPolicy, Checkpoint, Outcome, Pump, PumpResult, SendPolicy, Share
from braze_importer.objects import Invalid
from braze_importer.ports import TRACK, USERS_DELETE, BrazeAnswer, Endpoint, Group, ObjectRef, catalog_items
from braze_importer.reader import Format, iter_elements
from braze_importer.rows import Route, catalog_item, delete_identifier, for_route
from braze_importer.service import _Heartbeat, handle_resume, handle_start
from braze_importer.settings import Settings

from tests.fakes import FakeBraze, FakeClock, FakeS3, MemoryActiveRuns, answer, make_deps, run_chain

BUCKET = "imports"
PUT = catalog_items("shoes", "PUT")
DELETE = catalog_items("shoes", "DELETE")
CATALOG_POLICY = SendPolicy(max_in_flight=8).for_group(Group.CATALOG)


def item(i: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"item-{i}", "size": i, **fields}


def jsonl(rows: list[Any]) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in rows) + b"\n"


def put(s3: FakeS3, key: str, rows: list[Any]) -> ObjectRef:
    s3.put_object(Bucket=BUCKET, Key=key, Body=jsonl(rows))
    return ObjectRef(BUCKET, key, "v1", key)


class Pumped:
    """A pump over one file's rows, shaped as the route's folder makes them."""

    def __init__(self, braze: FakeBraze, route: Route, policy: SendPolicy = CATALOG_POLICY) -> None:
        self.braze = braze
        self.route = route
        self.rejects: list[dict[str, Any]] = []
        self.failed: list[Any] = []
        destination: Destination = (
            CatalogDestination(route.catalog) if route.catalog else UserDeleteDestination() if route.user_deletes
            else Destination()
        )  # fmt: skip
        self.pump = Pump(
            braze, policy, FakeClock(), on_reject=self.rejects.append, on_failed=self.failed.append,
            destination=destination,
        )  # fmt: skip

    def go(self, rows: list[Any]) -> PumpResult:
        elements = for_route(iter_elements([jsonl(rows)], Format.LINES, Checkpoint(0, 0).position), self.route)
        return asyncio.run(self.pump.run(elements, Checkpoint(0, 0), lambda: True))


# -- rows --------------------------------------------------------------------------------------


def test_a_catalog_row_is_an_item_object_or_a_cdi_row_and_deleted_picks_the_delete() -> None:
    assert catalog_item({"id": "a-1", "price": 3}) == (CATALOG_UPSERT, {"id": "a-1", "price": 3})
    cdi = {"ID": "a_1", "PAYLOAD": '{"price": 3, "tags": ["x"]}'}
    assert catalog_item(cdi) == (CATALOG_UPSERT, {"id": "a_1", "price": 3, "tags": ["x"]})
    assert catalog_item({"id": "a", "payload": {"price": 1}, "deleted": "false"}) == (
        CATALOG_UPSERT,
        {"id": "a", "price": 1},
    )
    assert catalog_item({"ID": "a", "PAYLOAD": '{"id": "a", "price": 1}'}) == (CATALOG_UPSERT, {"id": "a", "price": 1})
    for spelling in (True, "true", "TRUE", "True", "1", 1, "yes", " t "):
        assert catalog_item({"ID": "a", "DELETED": spelling, "PAYLOAD": "{}"}) == (CATALOG_DELETE, {"id": "a"})
    assert catalog_item({"Id": "a", "Deleted": True}) == (CATALOG_DELETE, {"id": "a"})


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"price": 1}, "id: missing"),
        ({"id": "", "price": 1}, "id: missing"),
        ({"id": 7, "price": 1}, "must be a string"),
        ({"id": "a b", "price": 1}, "letters, digits"),
        ({"id": "x" * 251}, "up to 250"),
        ({"ID": "a", "PAYLOAD": "[1, 2]"}, "PAYLOAD: is a JSON array"),
        ({"ID": "a", "PAYLOAD": "{not json"}, "PAYLOAD: is not valid JSON"),
        ({"ID": "a", "PAYLOAD": ""}, "PAYLOAD: is empty"),
        ({"ID": "a", "PAYLOAD": '{"id": "b"}'}, "name different items"),
        ({"PAYLOAD": '{"price": 1}'}, "no ID"),
        ({"ID": "a", "DELETED": "maybe", "PAYLOAD": "{}"}, "DELETED: must be true or false"),
        ([1, 2], "not a JSON array"),
    ],
)
def test_catalog_rows_that_cannot_be_sent_are_rejects_with_a_reason(row: Any, reason: str) -> None:
    with pytest.raises(Invalid) as raised:
        catalog_item(row)
    assert reason in raised.value.reason


def test_a_delete_row_is_exactly_one_identifier_and_names_its_array() -> None:
    assert delete_identifier({"external_id": "u1"}) == ("external_ids", "u1")
    assert delete_identifier({"EXTERNAL_ID": "u1", "PAYLOAD": ""}) == ("external_ids", "u1")
    assert delete_identifier({"braze_id": "b1"}) == ("braze_ids", "b1")
    assert delete_identifier({"EMAIL": "a@example.com"}) == ("email_addresses", "a@example.com")
    assert delete_identifier({"phone": "+15555550100"}) == ("phone_numbers", "+15555550100")
    alias = {"alias_name": "n", "alias_label": "l"}
    assert delete_identifier({"user_alias": alias}) == ("user_aliases", alias)
    assert delete_identifier({"ALIAS_NAME": "n", "ALIAS_LABEL": "l"}) == ("user_aliases", alias)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"external_id": "u1", "PAYLOAD": '{"a": 1}'}, "a delete row carries only its identifier"),
        ({"external_id": "u1", "first_name": "x"}, "a delete row carries only its identifier"),
        ({"external_id": "u1", "braze_id": "b"}, "more than one identifier"),
        ({"ALIAS_NAME": "n"}, "needs both"),
        ({"user_alias": {"alias_name": "n"}}, "alias_name and alias_label"),
        ({}, "no identifier"),
        ({"external_id": 5}, "must be a string"),
        ("u1", "not a JSON string"),
    ],
)
def test_delete_rows_that_are_not_one_identifier_are_rejects(row: Any, reason: str) -> None:
    with pytest.raises(Invalid) as raised:
        delete_identifier(row)
    assert reason in raised.value.reason


# -- catalog sending ---------------------------------------------------------------------------


def test_catalog_items_go_50_a_request_upserts_by_put_and_deletes_by_delete_never_mixed() -> None:
    rows: list[Any] = [item(i) for i in range(120)]
    rows += [{"ID": f"gone-{i}", "DELETED": True} for i in range(60)]
    rows += [{"id": "bad id"}]
    braze = FakeBraze()
    run = Pumped(braze, Route(catalog="shoes"))
    result = run.go(rows)
    assert result.outcome is Outcome.COMPLETED
    puts = [p for e, p in braze.sent if e == PUT]
    deletes = [p for e, p in braze.sent if e == DELETE]
    assert [len(p["items"]) for p in puts] == [50, 50, 20]
    assert sorted(len(p["items"]) for p in deletes) == [10, 50]
    assert all(set(i) == {"id"} and i["id"].startswith("gone-") for p in deletes for i in p["items"])
    assert braze.catalogs["shoes"] == {f"item-{i}": item(i) for i in range(120)}
    assert [r["index"] for r in run.rejects] == [180] and "letters, digits" in run.rejects[0]["reason"]
    assert run.pump.counters.accepted == 180
    assert run.pump.endpoints == {
        "PUT /catalogs/shoes/items": {"requests": 3, "objects": 120},
        "DELETE /catalogs/shoes/items": {"requests": 2, "objects": 60},
    }


class SlowFirst(FakeBraze):
    """Answers the first catalog requests last: a request sent early may land after later ones,
    as requests in flight at once do against a real server."""

    def __init__(self) -> None:
        super().__init__()
        self._n = count()

    async def send(self, endpoint: Endpoint, body: bytes) -> BrazeAnswer:
        n = next(self._n)  # the first answers at once: until then the governor sends one at a time
        for _ in range(0 if n == 0 else max(0, 50 - 10 * n)):
            await asyncio.sleep(0)
        return await super().send(endpoint, body)


def test_rows_of_one_item_reach_braze_in_file_order_with_requests_in_flight() -> None:
    # item-7 is replaced, deleted, then created again; item-8 deleted then replaced; all among others.
    rows: list[Any] = [item(i) for i in range(1000, 1050)]  # a first request, to learn the pace
    rows += [item(i) for i in range(45)]
    rows += [{"ID": "item-7", "DELETED": "true"}, item(100), {"ID": "item-8", "DELETED": "true"}]
    rows += [item(i) for i in range(101, 140)]
    rows += [item(7, size=777), item(8, size=888)]
    braze = SlowFirst()
    result = Pumped(braze, Route(catalog="shoes")).go(rows)
    assert result.outcome is Outcome.COMPLETED
    shoes = braze.catalogs["shoes"]
    assert shoes["item-7"] == item(7, size=777) and shoes["item-8"] == item(8, size=888)
    assert len(shoes) == 50 + 45 + 1 + 39
    touching = [(e.method, i) for e, p in braze.sent for i in p["items"] if i["id"] == "item-7"]
    assert [m for m, _ in touching] == ["PUT", "DELETE", "PUT"]


def test_a_missing_catalog_stops_the_run_at_once_and_a_resume_sends_everything_once() -> None:
    s3 = FakeS3()
    ref = put(s3, "incoming/catalogs/shoes/day-1.jsonl", [item(i) for i in range(130)])
    braze = FakeBraze()
    braze.default_for_all = True
    braze.default = lambda payload: answer(404, {"message": "Not Found", "errors": [{"id": "catalog-not-found"}]})
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=4))
    first = handle_start(ref, "r1", deps, lambda: True)
    assert first.status == "stopped" and first.report is not None
    assert first.report["stop_reason"] == "catalog_not_found"
    assert "'shoes'" in first.report["error"]["message"] and "resume" in first.report["error"]["message"]
    assert first.report["resume"] == {"action": "resume", "run_id": first.run_id}
    assert len(braze.sent) <= 4 and braze.catalogs == {}  # stopped at the first answer, nothing created
    braze.default = lambda payload: answer(202)  # the user created the catalog
    again = handle_resume(first.run_id, "r2", deps, lambda: True, force=False)
    assert again.status == "completed"
    assert braze.catalogs["shoes"] == {f"item-{i}": item(i) for i in range(130)}
    assert again.report is not None and again.report["accepted"] == 130
    assert again.report["endpoints"]["PUT /catalogs/shoes/items"]["objects"] == 130


def test_items_braze_refuses_by_id_are_rejects_with_its_reason_and_the_rest_is_resent_without_them() -> None:
    refusal = {
        "errors": [
            {
                "id": "invalid-fields",
                "message": "Some of the fields given do not exist in the catalog",
                "parameters": ["id", "id"],
                "parameter_values": ["item-3", "item-9"],
            }
        ],
        "message": "Invalid Request",
    }
    braze = FakeBraze(script=[answer(400, refusal)])
    run = Pumped(braze, Route(catalog="shoes"))
    assert run.go([item(i) for i in range(20)]).outcome is Outcome.COMPLETED
    assert [r["index"] for r in run.rejects] == [3, 9]
    assert all("invalid-fields" in r["reason"] and r["source"] == "braze" for r in run.rejects)
    assert len(braze.sent) == 2 and [i["id"] for i in braze.sent[1][1]["items"]] == [
        f"item-{i}" for i in range(20) if i not in (3, 9)
    ]
    assert run.pump.counters.accepted == 18 and run.pump.counters.splits == 0


@pytest.mark.parametrize("status", [400, 404])
def test_deleting_an_item_braze_does_not_have_is_settled_not_rejected(status: int) -> None:
    not_found = {
        "errors": [
            {
                "id": "item-not-found",
                "message": "Could not find item",
                "parameters": ["id"],
                "parameter_values": ["gone-1"],
            }
        ],
        "message": "Invalid Request",
    }
    braze = FakeBraze(script=[answer(status, not_found)])
    run = Pumped(braze, Route(catalog="shoes"))
    rows = [{"ID": f"gone-{i}", "DELETED": True} for i in range(3)]
    assert run.go(rows).outcome is Outcome.COMPLETED
    assert run.rejects == [] and run.pump.counters.accepted == 3
    assert [i["id"] for i in braze.sent[1][1]["items"]] == ["gone-0", "gone-2"]  # the rest, resent once


def test_a_catalog_file_resumes_exactly_across_invocations() -> None:
    rows: list[Any] = []
    for i in range(200):
        rows.append(item(i))
        if i % 7 == 3:
            rows.append({"ID": f"item-{i - 1}", "DELETED": "TRUE"})
        if i % 31 == 5:
            rows.append({"id": "no good"})
    s3 = FakeS3()
    ref = put(s3, "incoming/catalogs/shoes/a.jsonl", rows)
    braze = FakeBraze()
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=3))
    statuses = run_chain(deps, ref, batches_per_invocation=1)
    assert statuses[-1] == "completed" and len(statuses) > 3
    sent = [(e.method, i["id"]) for e, p in braze.sent for i in p["items"]]
    expected = [
        ("DELETE" if "DELETED" in r else "PUT", r.get("id") or r.get("ID")) for r in rows if r.get("id") != "no good"
    ]
    assert sorted(sent) == sorted(expected)  # each row sent exactly once
    deleted = {r["ID"] for r in rows if "DELETED" in r}
    assert braze.catalogs["shoes"] == {f"item-{i}": item(i) for i in range(200) if f"item-{i}" not in deleted}
    report = orjson.loads(deps.outputs.files[next(k for k in deps.outputs.files if k.startswith("reports/"))])  # type: ignore[attr-defined]
    assert report["rejected"] == sum(1 for r in rows if r.get("id") == "no good")


# -- user deletes -------------------------------------------------------------------------------


def delete_rows() -> list[Any]:
    rows: list[Any] = []
    for i in range(130):
        rows.append(
            [
                {"external_id": f"u{i}"},
                {"EMAIL": f"p{i}@example.com", "PAYLOAD": ""},
                {"braze_id": f"b{i}"},
                {"ALIAS_NAME": f"n{i}", "ALIAS_LABEL": "crm"},
                {"phone": f"+1555555{i:04d}"},
            ][i % 5]
        )
        if i % 40 == 11:
            rows.append({"external_id": f"x{i}", "PAYLOAD": '{"first_name": "A"}'})
    return rows


def test_user_deletes_go_50_a_request_of_one_identifier_type_each() -> None:
    braze = FakeBraze()
    run = Pumped(braze, Route(user_deletes=True), SendPolicy(max_in_flight=4).for_group(Group.USER_DELETE))
    rows = [{"external_id": f"u{i}"} for i in range(120)] + delete_rows()
    assert run.go(rows).outcome is Outcome.COMPLETED
    assert all(e == USERS_DELETE and len(p) == 1 and len(next(iter(p.values()))) <= 50 for e, p in braze.sent)
    sizes = sorted((next(iter(p)), len(next(iter(p.values())))) for _, p in braze.sent)
    assert sizes == sorted(
        [("external_ids", 50), ("external_ids", 50), ("external_ids", 46)]
        + [(a, 26) for a in ("email_addresses", "braze_ids", "user_aliases", "phone_numbers")]
    )
    assert ("user_aliases", {"alias_name": "n3", "alias_label": "crm"}) in braze.deleted
    assert len(run.rejects) == 3 and all(
        r["reason"].startswith("PAYLOAD: a delete row carries only") for r in run.rejects
    )
    assert run.pump.endpoints == {"/users/delete": {"requests": 7, "objects": 250}}


def test_user_deletes_are_refused_without_the_setting_nothing_sent_and_resumable_once_allowed() -> None:
    s3 = FakeS3()
    ref = put(s3, "incoming/user-deletes/churned.jsonl", delete_rows())
    braze = FakeBraze()
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=2))
    first = handle_start(ref, "r1", deps, lambda: True)
    assert first.status == "stopped" and first.report is not None
    assert first.report["stop_reason"] == "user_deletes_not_allowed"
    assert "import:allowUserDeletes" in first.report["error"]["message"]
    assert braze.sent == [] and first.report["objects_read"] == 0 and first.report["rejected"] == 0
    assert first.report["resume"] == {"action": "resume", "run_id": first.run_id}
    deps.allow_user_deletes = True
    again = handle_resume(first.run_id, "r2", deps, lambda: True, force=False)
    assert again.status == "completed" and again.report is not None
    assert len(braze.deleted) == 130 and again.report["rejected"] == 3
    assert again.report["endpoints"] == {"/users/delete": {"requests": 5, "objects": 130}}


@pytest.mark.parametrize("allowed", [False, True])
def test_a_dry_run_of_user_deletes_sends_nothing_and_says_whether_a_real_run_would_be_refused(allowed: bool) -> None:
    s3 = FakeS3()
    ref = put(s3, "incoming/dry-run/user-deletes/churned.jsonl", delete_rows())
    braze = FakeBraze()
    deps = make_deps(braze, s3, allow_user_deletes=allowed)
    result = handle_start(ref, "r1", deps, lambda: True)
    assert result.status == "completed" and result.report is not None and braze.sent == []
    assert result.report["would_send"] == {"/users/delete": {"requests": 5, "objects": 130}}
    assert result.report["rejected"] == 3 and result.report["accepted"] == 0
    assert result.report["real_run"]["refused"] is (not allowed)
    if not allowed:
        assert "import:allowUserDeletes" in result.report["real_run"]["message"]


def test_a_user_delete_file_resumes_exactly_across_invocations() -> None:
    s3 = FakeS3()
    rows = delete_rows() * 3
    ref = put(s3, "incoming/user-deletes/a.jsonl", rows)
    braze = FakeBraze()
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=2), allow_user_deletes=True)
    statuses = run_chain(deps, ref, batches_per_invocation=1)
    assert statuses[-1] == "completed" and len(statuses) > 3
    assert len(braze.deleted) == 390  # each identifier once, not resent by a continuation


def test_a_dry_run_of_a_catalog_counts_requests_and_items_per_endpoint() -> None:
    s3 = FakeS3()
    rows = [item(i) for i in range(70)] + [{"ID": f"item-{i}", "DELETED": 1} for i in range(5)] + [{"id": 3}]
    ref = put(s3, "incoming/dry-run/catalogs/shoes/a.jsonl", rows)
    braze = FakeBraze()
    result = handle_start(ref, "r1", make_deps(braze, s3), lambda: True)
    assert result.status == "completed" and result.report is not None and braze.sent == []
    assert result.report["would_send"] == {
        "PUT /catalogs/shoes/items": {"requests": 2, "objects": 70},
        "DELETE /catalogs/shoes/items": {"requests": 1, "objects": 5},
    }
    assert result.report["rejected"] == 1 and result.report["source"]["catalog"] == "shoes"
    assert any("idempotent" in note for note in result.report["notes"])


def test_a_real_track_run_reports_its_endpoint_too() -> None:
    s3 = FakeS3()
    ref = put(s3, "incoming/a.jsonl", [{"external_id": f"u{i}", "age": i} for i in range(80)])
    result = handle_start(ref, "r1", make_deps(FakeBraze(), s3), lambda: True)
    assert result.report is not None and result.report["endpoints"] == {"/users/track": {"requests": 2, "objects": 80}}


# -- pacing per group ----------------------------------------------------------------------------


def test_each_endpoint_group_has_its_own_limit_and_window() -> None:
    policy = SendPolicy(workspace_requests_per_second=1000.0, catalog_requests_per_second=10.0)
    assert policy.for_group(Group.TRACK) is policy
    catalog = policy.for_group(Group.CATALOG)
    assert catalog.workspace_requests_per_second == 10.0 and catalog.max_batch_objects == 50
    assert catalog.window_guess_seconds >= 60
    assert policy.for_group(Group.USER_DELETE).workspace_requests_per_second == pytest.approx(20_000 / 60)


def test_a_catalog_run_and_a_track_run_at_once_each_get_their_own_groups_full_limit() -> None:
    active = MemoryActiveRuns()
    deps = make_deps(FakeBraze(), FakeS3(), active_runs=active)
    active.beat("track-run", deps.clock.time(), 60.0)  # /users/track's run, sending
    catalog_share = Share(16_000 / 60)
    _Heartbeat("catalog-run", deps, catalog_share, Group.CATALOG)._note()
    assert catalog_share.requests_per_second == pytest.approx(16_000 / 60)  # not halved by the track run
    track_share = Share(1000.0)
    _Heartbeat("track-run", deps, track_share, Group.TRACK)._note()
    assert track_share.requests_per_second == 1000.0
    other = Share(16_000 / 60)
    _Heartbeat("catalog-run-2", deps, other, Group.CATALOG)._note()
    assert other.requests_per_second == pytest.approx(16_000 / 60 / 2)  # two catalog runs split theirs


def test_a_catalog_run_notes_itself_in_its_own_group_and_leaves_it() -> None:
    s3, active = FakeS3(), MemoryActiveRuns()
    seen: list[tuple[set[str], set[str]]] = []

    def look(endpoint: Endpoint, payload: dict[str, Any]) -> BrazeAnswer:
        seen.append((set(active.leases), set(active.groups.get("catalog", ({}, {}))[0])))
        return answer(202)

    braze = FakeBraze(script=[look])
    deps = make_deps(braze, s3, active_runs=active)
    result = handle_start(put(s3, "incoming/catalogs/shoes/a.jsonl", [item(1)]), "r", deps, lambda: True)
    assert result.status == "completed"
    assert seen == [(set(), {result.run_id})]  # counted among catalog runs, never among /users/track's
    assert active.groups["catalog"][0] == {}


def test_settings_carry_the_group_limits_and_the_delete_switch() -> None:
    base = {
        "BRAZE_REST_ENDPOINT": "https://rest.iad-01.braze.com",
        "BRAZE_API_KEY_SECRET": "s",
        "RUNS_TABLE": "runs",
        "IMPORT_BUCKET": "b",
        "AWS_LAMBDA_FUNCTION_NAME": "f",
    }
    default = Settings.model_validate(base)
    assert default.allow_user_deletes is False
    assert default.policy().catalog_requests_per_second == pytest.approx(16_000 / 60)
    assert default.policy().user_delete_requests_per_second == pytest.approx(20_000 / 60)
    env = base | {"CATALOG_REQUESTS_PER_MINUTE": "600", "USER_DELETE_REQUESTS_PER_MINUTE": "120"}
    custom = Settings.model_validate(env | {"ALLOW_USER_DELETES": "true"})
    assert custom.allow_user_deletes is True and custom.policy().catalog_requests_per_second == 10.0
    assert custom.policy().user_delete_requests_per_second == 2.0
    with pytest.raises(ValueError, match="CATALOG_REQUESTS_PER_MINUTE"):
        Settings.model_validate(base | {"CATALOG_REQUESTS_PER_MINUTE": "0"})


def test_cdk_context_turns_into_the_group_settings() -> None:
    from stacks.config import AppConfig, ConfigError

    config = AppConfig.from_context({}.get).importer
    assert (config.catalog_requests_per_minute, config.user_delete_requests_per_minute) == (16_000, 20_000)
    assert config.allow_user_deletes is False
    context = {"import:allowUserDeletes": "true", "import:catalogRequestsPerMinute": "600"}
    custom = AppConfig.from_context(context.get).importer
    assert custom.allow_user_deletes is True and custom.catalog_requests_per_minute == 600
    with pytest.raises(ConfigError, match="catalogRequestsPerMinute"):
        AppConfig.from_context({"import:catalogRequestsPerMinute": "0"}.get)


# -- the HTTP adapter ------------------------------------------------------------------------------


def test_the_http_adapter_sends_each_endpoints_method_and_path() -> None:
    seen: list[tuple[str, str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content))
        return httpx.Response(202, json={"message": "success"}, headers={"X-RateLimit-Remaining": "9"})

    async def go() -> list[BrazeAnswer]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            braze = BrazeHttp(client, "https://rest.example.test/", "k")
            return [await braze.send(e, b'{"items": []}') for e in (PUT, DELETE, USERS_DELETE, TRACK)]

    answers = asyncio.run(go())
    assert [(m, p) for m, p, _ in seen] == [
        ("PUT", "/catalogs/shoes/items"),
        ("DELETE", "/catalogs/shoes/items"),
        ("POST", "/users/delete"),
        ("POST", "/users/track"),
    ]
    assert all(a.status == 202 and a.remaining == 9 for a in answers)
    assert PUT.label == "PUT /catalogs/shoes/items" and USERS_DELETE.label == "/users/delete"


def test_failed_catalog_rows_and_user_deletes_are_written_as_rows_that_replay_the_same_way() -> None:
    policy = SendPolicy(max_in_flight=1, ambiguous=AmbiguousPolicy.FAIL)
    catalog = Pumped(FakeBraze(script=["ambiguous_lost", "ambiguous_lost"]), Route(catalog="shoes"),
                     policy.for_group(Group.CATALOG))  # fmt: skip
    catalog.go([item(1), {"ID": "item-2", "DELETED": "true"}])
    assert catalog.failed == [item(1), {"ID": "item-2", "DELETED": True}]
    assert [catalog_item(row) for row in catalog.failed] == [
        (CATALOG_UPSERT, item(1)),
        (CATALOG_DELETE, {"id": "item-2"}),  # not a replace with an empty item
    ]
    deletes = Pumped(FakeBraze(script=["ambiguous_lost"] * 2), Route(user_deletes=True),
                     policy.for_group(Group.USER_DELETE))  # fmt: skip
    alias = {"alias_name": "n", "alias_label": "l"}
    deletes.go([{"EXTERNAL_ID": "u1"}, {"ALIAS_NAME": "n", "ALIAS_LABEL": "l"}])
    assert deletes.failed == [{"external_id": "u1"}, {"user_alias": alias}]
    assert [delete_identifier(row) for row in deletes.failed] == [("external_ids", "u1"), ("user_aliases", alias)]


def test_a_delete_waits_for_the_replace_of_its_item_however_many_retries_that_takes() -> None:
    rows: list[Any] = [item(i) for i in range(1000, 1050)]  # a first request, to learn the pace
    rows += [item(i) for i in range(50)] + [{"ID": "item-7", "DELETED": True}]
    busy = answer(429, {"message": "Too Many Requests"})
    braze = FakeBraze(script=[answer(202), busy, busy, "ambiguous_lost"])
    result = Pumped(braze, Route(catalog="shoes")).go(rows)
    assert result.outcome is Outcome.COMPLETED
    assert "item-7" not in braze.catalogs["shoes"] and len(braze.catalogs["shoes"]) == 99
    touching = [e.method for e, p in braze.sent for i in p["items"] if i["id"] == "item-7"]
    assert touching == ["PUT", "PUT", "PUT", "PUT", "DELETE"]


def test_once_a_row_of_an_item_fails_its_later_rows_follow_it_into_the_failed_file_in_order() -> None:
    rows: list[Any] = [item(i) for i in range(1000, 1050)]  # a first request, to learn the pace
    rows += [item(i) for i in range(50)] + [{"ID": "item-7", "DELETED": True}, item(8, size=88), item(60)]
    braze = FakeBraze(script=[answer(202), "not_sent", "not_sent"])  # the batch of item-7 never gets through
    run = Pumped(braze, Route(catalog="shoes"), SendPolicy(max_in_flight=4, max_attempts=2).for_group(Group.CATALOG))
    assert run.go(rows).outcome is Outcome.COMPLETED
    failed_ids = [r.get("id") or r.get("ID") for r in run.failed]
    assert failed_ids == [f"item-{i}" for i in range(50)] + ["item-7", "item-8"]
    assert run.failed[50] == {"ID": "item-7", "DELETED": True} and run.failed[51] == item(8, size=88)
    assert run.pump.failure_reasons == {"not_sent_connection": 50, "earlier_row_of_item_failed": 2}
    assert braze.catalogs["shoes"].keys() == {f"item-{i}" for i in (*range(1000, 1050), 60)}


def _cut_catalog_run(batches_per_invocation: int) -> tuple[dict[str, Any], list[Any], list[str]]:
    """A catalog file whose first request never gets through: its items' later rows (a delete, a
    newer replace) come after many other items, so a short invocation ends between them."""
    rows: list[Any] = [item(i) for i in range(50)]  # the first request: it fails
    rows += [item(i) for i in range(100, 260)]
    rows += [{"ID": "item-3", "DELETED": True}, item(4, size=444), item(300)]
    s3 = FakeS3()
    ref = put(s3, "incoming/catalogs/shoes/cut.jsonl", rows)
    braze = FakeBraze(script=[answer(500)])
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=1, max_attempts=1))
    statuses = run_chain(deps, ref, batches_per_invocation)
    assert statuses[-1] == "completed"
    failed = [orjson.loads(line) for k in sorted(deps.outputs.files) if k.startswith("failed/")  # type: ignore[attr-defined]
              for line in deps.outputs.files[k].splitlines() if line]  # type: ignore[attr-defined]  # fmt: skip
    return braze.catalogs["shoes"], failed, statuses


def test_later_rows_of_a_failed_item_follow_it_into_the_failed_file_however_the_run_is_cut() -> None:
    whole_catalog, whole_failed, statuses = _cut_catalog_run(10_000)
    assert statuses == ["completed"]
    assert [r.get("id") or r.get("ID") for r in whole_failed][-2:] == ["item-3", "item-4"]
    for budget in (1, 2, 3):
        catalog, failed, statuses = _cut_catalog_run(budget)
        assert len(statuses) >= 3  # cut into several invocations
        assert catalog == whole_catalog and failed == whole_failed
    # replaying the failed file in order on top of Braze gives what every row sent in order gives
    replayed = dict(whole_catalog)
    for row in whole_failed:
        endpoint, obj = catalog_item(row)
        if endpoint == CATALOG_DELETE:
            replayed.pop(obj["id"], None)
        else:
            replayed[obj["id"]] = obj
    assert "item-3" not in replayed and replayed["item-4"] == item(4, size=444)


def test_a_resumed_run_still_sends_later_rows_of_items_that_failed_before_it_stopped_to_the_failed_file() -> None:
    rows: list[Any] = [item(i) for i in range(50)] + [item(i) for i in range(100, 150)]
    rows += [{"ID": "item-3", "DELETED": True}, item(4, size=444), item(300)]
    s3 = FakeS3()
    ref = put(s3, "incoming/catalogs/shoes/stop.jsonl", rows)
    braze = FakeBraze(script=[answer(500), answer(401)])  # the first batch fails, then the key is refused
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=1, max_attempts=1))
    first = handle_start(ref, "r", deps, lambda: True)
    assert first.status == "stopped" and deps.store.get(first.run_id).failed_items  # type: ignore[union-attr]
    again = handle_resume(first.run_id, "r2", deps, lambda: True, force=False)
    assert again.status == "completed"
    failed = deps.outputs.lines("failed/")  # type: ignore[attr-defined]
    assert [r.get("id") or r.get("ID") for r in failed] == [f"item-{i}" for i in range(50)] + ["item-3", "item-4"]
    assert braze.catalogs["shoes"].keys() == {f"item-{i}" for i in (*range(100, 150), 300)}


def test_a_run_that_fails_rows_of_more_items_than_its_record_can_keep_stops_with_a_reason() -> None:
    rows = [item(i) for i in range(400)]
    braze = FakeBraze(script=[answer(500)] * 8)
    failed: list[Any] = []
    pump = Pump(braze, SendPolicy(max_in_flight=2, max_attempts=1).for_group(Group.CATALOG), FakeClock(),
                on_reject=[].append, on_failed=failed.append, destination=CatalogDestination("shoes"),
                failed_items_limit=120)  # fmt: skip
    elements = for_route(iter_elements([jsonl(rows)], Format.LINES, Checkpoint(0, 0).position), Route(catalog="shoes"))
    result = asyncio.run(pump.run(elements, Checkpoint(0, 0), lambda: True))
    assert result.outcome is Outcome.STOPPED and result.stop_reason == "too_many_failed_items"
    assert "more than 120 items" in (result.error or {})["message"]
    assert 120 < len(failed) <= 120 + 2 * 50  # what was on its way when the bound was passed
    assert len(pump.failed_items) == 16 * len(failed)  # a fixed 16 characters an item, whatever its id
    # nothing is lost: the checkpoint restarts at the first row neither sent nor in the failed file
    assert result.checkpoint.index == len(failed)


def test_the_failed_items_a_run_record_can_keep_fit_in_a_dynamodb_item() -> None:
    from braze_importer.engine import FAILED_ITEMS_LIMIT, item_mark
    from braze_importer.runs import RunRecord

    run = RunRecord("r" * 200, "b" * 63, "k" * 1024, "v" * 64, "e" * 34, "lines", False)
    run.failed_items = "".join(sorted(item_mark(f"{'x' * 250}{i}") for i in range(FAILED_ITEMS_LIMIT + 8 * 50)))
    run.checkpoint = {"offset": 10**12, "index": 10**9, "skip": [[i * 3, i * 3 + 1] for i in range(2000)], "read": 1}
    assert len(orjson.dumps(run.to_item())) < 300_000  # DynamoDB's limit is 400 KB


def test_a_later_row_of_a_failed_item_nested_too_deep_to_write_is_a_reject_not_a_crash() -> None:
    deep: dict[str, Any] = {"v": 0}
    for level in range(300):
        deep = {"v": level, "next": deep}
    rows: list[Any] = [item(i) for i in range(50)] + [item(3, deep=deep), item(300)]
    s3 = FakeS3()
    key = "incoming/catalogs/shoes/deep.jsonl"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"\n".join(json.dumps(r).encode() for r in rows) + b"\n")
    braze = FakeBraze(script=[answer(500)])
    deps = make_deps(braze, s3, SendPolicy(max_in_flight=1, max_attempts=1))
    result = handle_start(ObjectRef(BUCKET, key, "v1", key), "r", deps, lambda: True)
    assert result.status == "completed"
    assert len(deps.outputs.lines("failed/")) == 50  # type: ignore[attr-defined]
    rejects = deps.outputs.lines("rejects/")  # type: ignore[attr-defined]
    assert [r["index"] for r in rejects] == [50] and "nesting deeper than Braze takes" in rejects[0]["reason"]
    assert braze.catalogs["shoes"].keys() == {"item-300"}
