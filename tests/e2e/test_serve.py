"""``python -m sandbox serve`` as users run it: a separate process, aimed at with ordinary clients
(boto3 as the AWS CLI would be, plain HTTP as curl would be), stopped with SIGTERM."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sandbox import currents_sample, sample_data
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], subprocess.Popen[str]]]:
    yield from start(tmp_path_factory.mktemp("serve") / "info.json")


def start(info_file: Path) -> Iterator[tuple[dict[str, Any], subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--info", str(info_file), "--flush-seconds", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not (info_file.exists() and info_file.read_text().endswith("\n")):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        yield json.loads(info_file.read_text()), proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def client(info: dict[str, Any], service: str) -> Any:
    return boto3.client(
        service, endpoint_url=info["aws_endpoint_url"], region_name=info["region"],
        aws_access_key_id="any", aws_secret_access_key="any",
    )  # fmt: skip


def http(url: str, *, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def eventually(check: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def _sent(info: dict[str, Any], names: set[str]) -> bool:
    """Whether the emulator holds an event of each of ``names``."""
    return names <= {o["object"].get("name") for o in emulator_objects(info)}


def emulator_objects(info: dict[str, Any]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = http(f"{info['braze_url']}/_emulator/objects")[1]
    return objects


def test_info_names_every_endpoint_and_credential(served: tuple[dict[str, Any], Any]) -> None:
    info, _ = served
    assert set(info) == {"aws_endpoint_url", "region", "braze_url", "import", "currents", "bulk_upload", "capture"}
    assert set(info["capture"]) == {
        "url", "cognito_endpoint_url", "user_pool_id", "app_client_id", "username", "password", "external_id"
    }  # fmt: skip
    assert set(info["currents"]) == {"bucket", "prefix", "content_url", "api_key", "token"}
    assert all(v.startswith("http://127.0.0.1:") for v in (info["aws_endpoint_url"], info["braze_url"]))


def test_a_file_put_with_any_s3_client_is_imported(served: tuple[dict[str, Any], Any], tmp_path: Path) -> None:
    info, _ = served
    path = sample_data.write(tmp_path / "users.json", 300, invalid_every=0)
    before = len(emulator_objects(info))
    client(info, "s3").upload_file(
        str(path), info["import"]["bucket"], f"{info['import']['incoming_prefix']}users.json"
    )
    assert eventually(lambda: len(emulator_objects(info)) - before >= 300, 60)
    assert len(emulator_objects(info)) - before == 300


def test_the_cognito_front_refuses_a_users_own_write_of_the_external_id(served: tuple[dict[str, Any], Any]) -> None:
    info, _ = served
    capture = info["capture"]
    cognito = boto3.client(
        "cognito-idp", endpoint_url=capture["cognito_endpoint_url"], region_name=info["region"],
        aws_access_key_id="any", aws_secret_access_key="any",
    )  # fmt: skip
    with pytest.raises(ClientError, match="NotAuthorizedException"):
        cognito.sign_up(
            ClientId=capture["app_client_id"], Username="mallory", Password="Mallory-Passw0rd!",
            UserAttributes=[{"Name": "email", "Value": "m@example.com"},
                            {"Name": "custom:external_id", "Value": capture["external_id"]}],
        )  # fmt: skip
    auth = cognito.initiate_auth(
        ClientId=capture["app_client_id"], AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": capture["username"], "PASSWORD": capture["password"]},
    )["AuthenticationResult"]  # fmt: skip
    with pytest.raises(ClientError, match="NotAuthorizedException"):
        cognito.update_user_attributes(
            AccessToken=auth["AccessToken"], UserAttributes=[{"Name": "custom:external_id", "Value": "someone"}]
        )
    me = cognito.get_user(AccessToken=auth["AccessToken"])
    assert {a["Name"]: a["Value"] for a in me["UserAttributes"]}["custom:external_id"] == capture["external_id"]
    # A sign-up writing only what the app client may write goes through to Cognito.
    cognito.sign_up(ClientId=capture["app_client_id"], Username=f"u{time.time_ns()}", Password="Fine-Passw0rd!!",
                    UserAttributes=[{"Name": "email", "Value": "u@example.com"}])  # fmt: skip


def test_captured_events_reach_braze_under_the_signed_in_users_external_id(served: tuple[dict[str, Any], Any]) -> None:
    info, _ = served
    capture = info["capture"]
    auth = client(info, "cognito-idp").initiate_auth(
        ClientId=capture["app_client_id"], AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": capture["username"], "PASSWORD": capture["password"]},
    )["AuthenticationResult"]  # fmt: skip
    marker = f"serve-{time.time_ns()}"
    entries = [{"entry": json.dumps({"eventType": marker, "schemaVersion": "1", "data": {"n": i}})} for i in range(4)]
    assert http(capture["url"], method="POST", body={"entries": entries},
                headers={"Authorization": auth["AccessToken"]}) == (200, {"accepted": 4, "refused": []})  # fmt: skip
    status, _ = http(capture["url"], method="POST", body={"events": [{"eventType": marker, "data": {"n": 4}}]},
                     headers={"Authorization": f"Bearer {auth['AccessToken']}"})  # fmt: skip
    assert status == 200
    assert http(capture["url"], method="POST", body={"events": [{"eventType": marker}]})[0] == 401
    # A web page on another origin asks first, then reads the answer.
    preflight = urllib.request.Request(capture["url"], method="OPTIONS", headers={"Origin": "http://localhost:3000"})
    with urllib.request.urlopen(preflight, timeout=10) as answer:
        assert answer.status == 204 and "Authorization" in answer.headers["Access-Control-Allow-Headers"]
    cors = urllib.request.Request(
        capture["url"], method="POST", data=json.dumps({"events": [{"eventType": marker}]}).encode(),
        headers={"Origin": "http://localhost:3000", "Authorization": auth["AccessToken"]},
    )  # fmt: skip
    with urllib.request.urlopen(cors, timeout=10) as answer:
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert http(capture["url"], method="POST", body={"events": [{"eventType": marker}]},
                headers={"Authorization": auth["IdToken"]})[0] == 401  # fmt: skip

    def mine() -> list[dict[str, Any]]:
        return [o["object"] for o in emulator_objects(info) if o["object"].get("name") == marker]

    assert len(eventually(lambda: len(mine()) >= 6 and mine(), 60)) == 6
    time.sleep(2)  # a later flush must not send any of them again
    events = mine()
    assert len(events) == 6 and {e["external_id"] for e in events} == {capture["external_id"]}
    assert sorted(e["properties"].get("n", -1) for e in events) == [-1, 0, 1, 2, 3, 4]


def test_keyed_apis_check_key_and_token_and_a_webhook_copies(
    served: tuple[dict[str, Any], Any], tmp_path: Path
) -> None:
    info, _ = served
    bulk = info["bulk_upload"]
    good = {"x-api-key": bulk["api_key"], "Authorization": f"Bearer {bulk['token']}"}
    assert http(bulk["url"], method="POST", body={}, headers={"x-api-key": bulk["api_key"]})[0] == 401
    assert http(bulk["url"], method="POST", body={}, headers={**good, "x-api-key": "wrong"})[0] == 403
    assert http(bulk["url"], method="POST", body={}, headers={**good, "Authorization": "Bearer wrong"})[0] == 403
    s3 = client(info, "s3")
    s3.create_bucket(Bucket="my-staging")
    s3.put_object(Bucket="my-staging", Key="data.csv", Body=b"id-1,10\nid-2,20\n")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "my-staging", "Key": "data.csv"}, ExpiresIn=600)
    webhook = {"presignedUrls": {"dataFile": url}, "sendParameters": {"s3_filename": "serve/a.csv"}}
    status, answer = http(bulk["url"], method="POST", body=webhook, headers=good)
    assert status == 202
    job = eventually(
        lambda: (j := http(f"{bulk['url']}/{answer['job_id']}", headers=good)[1])["status"] == "done" and j
    )
    assert job and job["s3_key"].endswith("serve/a.csv")


def test_a_currents_file_put_into_the_bucket_is_personalized(
    served: tuple[dict[str, Any], Any], tmp_path: Path
) -> None:
    info, _ = served
    currents = info["currents"]
    files = currents_sample.period(tmp_path, "braze-serve", start=int(time.time()) - 900)
    s3 = client(info, "s3")
    for path in files:  # Braze's layout: the event type is in the key
        s3.upload_file(str(path), currents["bucket"], currents["prefix"] + path.relative_to(tmp_path).as_posix())
    headers = {"x-api-key": currents["api_key"], "Authorization": f"Bearer {currents['token']}"}

    def generated() -> Any:
        status, body = http(f"{currents['content_url']}/braze-serve", headers=headers)
        return status == 200 and not body.get("default") and body

    assert eventually(generated, 60)


def test_sigterm_stops_it_cleanly(tmp_path: Path) -> None:
    # A server of its own: the module's server may be shared by tests on another worker.
    for info, proc in start(tmp_path / "info.json"):
        capture = info["capture"]
        auth = client(info, "cognito-idp").initiate_auth(
            ClientId=capture["app_client_id"], AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": capture["username"], "PASSWORD": capture["password"]},
        )["AuthenticationResult"]  # fmt: skip
        # A file the importer does not read, then one it does: the first must not hold up the second.
        s3 = client(info, "s3")
        s3.put_object(Bucket=info["import"]["bucket"], Key="incoming/notes.txt.gz", Body=gzip.compress(b"hello"))
        s3.put_object(Bucket=info["import"]["bucket"], Key="incoming/one.jsonl",
                      Body=b'{"external_id": "u-1", "name": "e", "time": "2026-11-30T10:00:00Z"}\n')  # fmt: skip
        body = {"events": [{"eventType": "before-stop"}]}
        assert http(capture["url"], method="POST", body=body, headers={"Authorization": auth["AccessToken"]})[0] == 200
        # The flush (every second here), the import it starts and one.jsonl's: both events reach Braze.
        assert eventually(partial(_sent, info, {"before-stop", "e"}), 60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert proc.stderr is not None
        log = proc.stderr.read()
        assert "stopped" in log.splitlines()[-1], log
        assert "capture: Firehose wrote 1 event(s)" in log and "import incoming/events/capture/" in log, log
        assert "import incoming/notes.txt.gz: ignored" in log, log
        assert "import incoming/one.jsonl: completed; objects read 1, accepted 1" in log, log
        with pytest.raises(OSError):
            urllib.request.urlopen(capture["url"], timeout=2)


def test_a_closed_terminal_stops_it_as_cleanly_as_sigterm(tmp_path: Path) -> None:
    for _info, proc in start(tmp_path / "info.json"):
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=60) == 0
        assert proc.stderr is not None and "stopped" in proc.stderr.read().splitlines()[-1]
