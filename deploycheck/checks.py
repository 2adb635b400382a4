"""The checks. Each proves one pipeline answers, sends nothing to Braze and leaves no data behind;
none prints a key, a token or a response body that could hold personal data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx

from .deployment import Stack
from .results import Result, failed, passed

CHECK_PREFIX = "deploy-check/"  # outside every prefix the app reacts to
WRONG = "deploy-check-not-the-credential"


# -- import -----------------------------------------------------------------------------------------


def import_bucket(s3: Any, stack: Stack) -> Result:
    name = "import bucket accepts a write that starts no run"
    bucket, incoming = stack.output("ImportBucketName"), stack.output("IncomingPrefix")
    key = f"{CHECK_PREFIX}{uuid.uuid4().hex}.txt"
    if key.startswith(incoming):
        return failed(name, f"the incoming prefix {incoming!r} covers {CHECK_PREFIX}: every file would start a run")
    trigger = _matching_notification(s3.get_bucket_notification_configuration(Bucket=bucket), key)
    if trigger:
        return failed(name, f"a bucket notification ({trigger}) would fire for {key}")
    put = s3.put_object(Bucket=bucket, Key=key, Body=b"deploy check: safe to delete\n")
    version = put.get("VersionId")
    # Deleting the version itself leaves no delete marker behind in the versioned bucket.
    s3.delete_object(Bucket=bucket, Key=key, **({"VersionId": version} if version else {}))
    return passed(name, f"wrote and deleted s3://{bucket}/{key}")


def _matching_notification(config: dict[str, Any], key: str) -> str | None:
    for kind in ("LambdaFunctionConfigurations", "QueueConfigurations", "TopicConfigurations"):
        for notification in config.get(kind, []):
            rules = {r["Name"].lower(): r["Value"] for r in notification.get("Filter", {}).get("Key", {}).get(
                "FilterRules", [])}  # fmt: skip
            if key.startswith(rules.get("prefix", "")) and key.endswith(rules.get("suffix", "")):
                return f"{kind[:-14]} {rules}"
    return None


# -- keyed APIs (Content API, bulk upload) ----------------------------------------------------------


def credentials(apigateway: Any, secrets: Any, stack: Stack) -> tuple[str, str]:
    """The API key's value and the bearer token, as Braze or CI360 is configured with them."""
    key = apigateway.get_api_key(apiKey=stack.output("ApiKeyId"), includeValue=True)["value"]
    token = secrets.get_secret_value(SecretId=stack.output("TokenSecretArn"))["SecretString"].strip()
    return str(key), str(token)


def _headers(key: str, token: str) -> dict[str, str]:
    return {"x-api-key": key, "Authorization": f"Bearer {token}", "Accept": "application/json"}


def _refused(response: httpx.Response, allowed: tuple[int, ...]) -> tuple[bool, str]:
    return response.status_code in allowed, f"HTTP {response.status_code}"


def content_api(http: httpx.Client, key: str, token: str, stack: Stack) -> Iterator[Result]:
    url = stack.output("ApiUrl").rstrip("/") + f"/content/deploy-check-{uuid.uuid4().hex}"
    name = "content API answers an unknown user with default content"
    answer = http.get(url, headers=_headers(key, token))
    body = _json(answer)
    if answer.status_code == 200 and isinstance(body.get("content"), dict) and body["content"]:
        yield passed(name, f"HTTP 200 with default content ({', '.join(sorted(body['content']))})")
    elif answer.status_code == 404:
        yield passed(name, "HTTP 404: default content is switched off (currents:defaultsEnabled=false)")
    else:
        yield failed(name, f"HTTP {answer.status_code}, expected 200 with a content object")
    ok, detail = _refused(http.get(url, headers=_headers(WRONG, token)), (403,))
    yield (passed if ok else failed)("content API refuses a wrong API key", f"{detail}, expected 403")
    ok, detail = _refused(http.get(url, headers=_headers(key, WRONG)), (401, 403))
    yield (passed if ok else failed)("content API refuses a wrong token", f"{detail}, expected 401 or 403")


def bulk_upload_api(http: httpx.Client, key: str, token: str, stack: Stack) -> Iterator[Result]:
    url = stack.output("ApiUrl").rstrip("/") + "/bulk-upload"
    # Invalid on purpose (no file URLs): even a wrongly admitted request could start no copy.
    invalid: dict[str, Any] = {"presignedUrls": {}, "sendParameters": {}}
    ok, detail = _refused(http.post(url, json=invalid, headers=_headers(WRONG, token)), (403,))
    yield (passed if ok else failed)("bulk-upload API refuses a wrong API key", f"{detail}, expected 403")
    ok, detail = _refused(http.post(url, json=invalid, headers=_headers(key, token)), (400,))
    yield (passed if ok else failed)("bulk-upload API refuses an invalid body", f"{detail}, expected 400")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# -- alarms -----------------------------------------------------------------------------------------


def alarm_topic(sns: Any, stack: Stack) -> Result:
    name = f"alarms of {stack.name} reach a person"
    topics = stack.outputs_containing("AlarmTopicArn")
    if not topics:
        return failed(name, "the stack has no AlarmTopicArn output (deployed from an older version?)")
    subscriptions = [s for topic in topics for s in _subscriptions(sns, topic)]
    confirmed = [s for s in subscriptions if str(s["SubscriptionArn"]).startswith("arn:")]
    pending = [s for s in subscriptions if s["SubscriptionArn"] == "PendingConfirmation"]
    if confirmed:
        return passed(name, f"{len(confirmed)} confirmed subscription(s) ({', '.join(_kinds(confirmed))})")
    if pending:
        return failed(name, f"{len(pending)} subscription(s) wait for confirmation: open the mail AWS sent and "
                      "choose Confirm subscription")  # fmt: skip
    return failed(name, "nobody is subscribed: deploy with -c alarms:email=you@example.com (or subscribe to "
                  f"{topics[0]})")  # fmt: skip


def _subscriptions(sns: Any, topic: str) -> list[dict[str, Any]]:
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
    return [s for page in pages for s in page.get("Subscriptions", [])]


def _kinds(subscriptions: list[dict[str, Any]]) -> list[str]:
    return sorted({str(s.get("Protocol")) for s in subscriptions})
