"""Client capture end to end: sign in to moto's Cognito, post batches through the API front, and
see every event in the Braze emulator exactly once, under the signed-in user's external id."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest

from sandbox.capture import CaptureSandbox

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def box() -> Iterator[CaptureSandbox]:
    with CaptureSandbox() as running:
        yield running


def entry(event_type: str, **data: object) -> dict[str, str]:
    return {"entry": json.dumps({"eventType": event_type, "schemaVersion": "1.0", "data": data})}


def stored_events(box: CaptureSandbox) -> list[dict[str, object]]:
    assert box.imports.emulator is not None
    return [o["object"] for o in box.imports.emulator.objects() if o["array"] == "events"]


def test_signed_in_clients_events_reach_braze_once_under_their_own_external_id(box: CaptureSandbox) -> None:
    # Given: the demo user (external id from the post-confirmation trigger) and one an admin mapped.
    other_id = box.create_user("second", "Second-Passw0rd!", email="second@example.com", external_id="crm-00042")
    demo = box.sign_in()["AccessToken"]
    second = box.sign_in("second", "Second-Passw0rd!")["AccessToken"]

    # When: batches in both wire formats, both header forms, one malformed entry, and a body that
    # names someone else (ignored: the token decides whose events these are).
    first = {"entries": [entry("pageview", page=f"/p/{i}") for i in range(10)]}
    assert box.post(first, demo) == (200, {"accepted": 10, "refused": []})
    status, answer = box.post(
        {"events": [{"eventType": "loyaltypurchase", "data": {"sku": 'A "1"'}, "time": "2026-11-30T10:00:00Z",
                     "external_id": "victim"}, {"eventType": ""}]},
        f"Bearer {second}",
    )  # fmt: skip
    assert (status, answer["accepted"], answer["refused"][0]["index"]) == (207, 1, 1)
    assert box.pending() == 11
    delivered = box.deliver()

    # Then: one gzip JSON Lines object under the capture prefix, imported, each event stored once.
    assert (delivered["events"], delivered["written"], delivered["failed"]) == (11, 11, 0)
    assert delivered["key"].startswith("incoming/events/capture/") and delivered["key"].endswith(".jsonl.gz")
    assert delivered["report"]["accepted"] == 11 and delivered["report"]["status"] == "completed"
    events = stored_events(box)
    assert len(events) == 11
    owners = Counter(str(e["external_id"]) for e in events)
    assert owners == {box.external_id: 10, "crm-00042": 1}
    assert other_id == "crm-00042" and box.external_id
    pages = Counter(str(e["properties"]["page"]) for e in events if e["name"] == "pageview")  # type: ignore[index]
    assert pages == {f"/p/{i}": 1 for i in range(10)}
    purchase = next(e for e in events if e["name"] == "loyaltypurchase")
    assert purchase["time"] == "2026-11-30T10:00:00Z"
    assert purchase["properties"] == {"sku": 'A "1"'}  # quotes intact; no schemaVersion given, none added

    # A second flush finds nothing: nothing is sent twice.
    assert box.deliver()["events"] == 0
    assert len(stored_events(box)) == 11


def test_missing_forged_and_id_tokens_are_refused_and_nothing_is_put(box: CaptureSandbox) -> None:
    tokens = box.sign_in()
    body = {"events": [{"eventType": "x"}]}
    assert box.post(body, None) == (401, {"message": "Unauthorized"})
    assert box.post(body, "Bearer not.a.token")[0] == 401
    assert box.post(body, tokens["IdToken"])[0] == 401
    assert box.post(body, tokens["AccessToken"][:-6] + "AAAAAA")[0] == 401
    assert box.pending() == 0


def test_users_cannot_write_their_own_external_id_in_the_sandbox_either(box: CaptureSandbox) -> None:
    from botocore.exceptions import ClientError

    route = box.route
    client = route.cognito.describe_user_pool_client(UserPoolId=route.pool_id, ClientId=route.client_id)
    assert "custom:external_id" not in client["UserPoolClient"]["WriteAttributes"]
    # Sign-up naming someone else's external id is refused, as Cognito refuses it for the stack's client.
    with pytest.raises(ClientError, match="NotAuthorizedException"):
        route.cognito.sign_up(
            ClientId=route.client_id, Username="mallory", Password="Mallory-Passw0rd!",
            UserAttributes=[{"Name": "email", "Value": "m@example.com"}, {"Name": "custom:external_id", "Value": "x"}],
        )  # fmt: skip
    # So is a signed-in user rewriting their own.
    demo = box.sign_in()["AccessToken"]
    with pytest.raises(ClientError, match="NotAuthorizedException"):
        route.cognito.update_user_attributes(
            AccessToken=demo, UserAttributes=[{"Name": "custom:external_id", "Value": "crm-00042"}]
        )
    me = route.cognito.get_user(AccessToken=demo)
    assert {a["Name"]: a["Value"] for a in me["UserAttributes"]}["custom:external_id"] == box.external_id
    # Writing an attribute the client may write still works.
    route.cognito.update_user_attributes(AccessToken=demo, UserAttributes=[{"Name": "email", "Value": "d@example.com"}])
