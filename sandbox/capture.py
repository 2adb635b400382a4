"""Client event capture, locally: moto's Cognito signs users in, a front does what API Gateway does
(run the real authorizer, cache its decision per token, pass the proxy event to the real API
function), the function puts onto a bus on moto server, and the bus's rule (the stack's pattern,
evaluated by moto) feeds a stand-in for Firehose that writes into the import bucket.

moto stands in for everything but three steps. It does not enforce an app client's write
attributes, so the sandbox refuses a user's own sign-up or attribute update that writes one the app
client may not write (``custom:external_id`` above all: Cognito answers ``NotAuthorizedException``),
on its own Cognito client and, for ``sandbox serve``, on the Cognito front it hands out. It cannot
run Cognito triggers, so the sandbox runs the post-confirmation handler itself after sign-up
confirmation; and its EventBridge has no Firehose
target and its Firehose no transform, so the rule targets an SQS queue and ``CaptureRoute.flush()``
does what Firehose would: take the buffered events, run the real transform handler on them in
Firehose's event shape, write the gzip JSON Lines object under the capture prefix (refused records
under the error prefix), and only then take the events off the queue. ``CaptureSandbox`` then hands
the object's S3 notification to the real importer; ``sandbox serve`` lets the bucket's notification
do it.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from .importer import BUCKET, INCOMING, REGION, FakeContext, ImportSandbox, _environment, s3_event
from .services import LocalStack

PREFIX = "events/capture/"
ERROR_PREFIX = "capture-errors/"
BUS = "sandbox-capture"
STAND_IN_QUEUE = "sandbox-capture-firehose"
EXTERNAL_ID_ATTRIBUTE = "custom:external_id"
AUTHORIZER_CACHE_SECONDS = 300
DEMO_USER = "demo-client"
DEMO_PASSWORD = "Sandbox-Capture-1!"  # noqa: S105 - the sandbox's demo user, printed on purpose
UNAUTHORIZED = {"message": "Unauthorized"}
FORBIDDEN = {"message": "User is not authorized to access this resource"}
# What the app client may write, as the stack's client: never the external id.
CLIENT_WRITE_ATTRIBUTES = ("email",)
CLIENT_READ_ATTRIBUTES = ("email", "email_verified", EXTERNAL_ID_ATTRIBUTE)
# The user's own calls (no administrator credentials) that write attributes.
USER_WRITES = frozenset({"SignUp", "UpdateUserAttributes"})
UNWRITABLE = "A client attempted to write unauthorized attribute"


def unwritable_attributes(operation: str, params: dict[str, Any]) -> list[str]:
    """The attributes a user's own ``operation`` would write that the app client may not write."""
    if operation not in USER_WRITES:
        return []
    names = [str(a.get("Name")) for a in params.get("UserAttributes") or [] if isinstance(a, dict)]
    return [n for n in names if n not in CLIENT_WRITE_ATTRIBUTES]


def _refuse_unwritable(model: Any, params: dict[str, Any], **_: Any) -> None:
    from botocore.exceptions import ClientError

    if unwritable_attributes(model.name, params):
        error = {"Error": {"Code": "NotAuthorizedException", "Message": UNWRITABLE}}
        raise ClientError(error, model.name)


class CaptureRoute:
    """The capture route's resources on the moto server the environment points at, and the steps
    API Gateway, Cognito's trigger and Firehose would take. The handlers' settings go into
    ``os.environ`` (``environment()``), as Lambda sets them."""

    def __init__(self, import_bucket: str = BUCKET) -> None:
        self.import_bucket = import_bucket
        self.endpoint = os.environ["AWS_ENDPOINT_URL"]
        self.decisions: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self.cognito = boto3.client("cognito-idp")
        self.pool_id = self.cognito.create_user_pool(
            PoolName="sandbox-capture",
            Schema=[{"Name": "external_id", "AttributeDataType": "String", "Mutable": True}],
            AutoVerifiedAttributes=["email"],
        )["UserPool"]["Id"]
        self.client_id = self.cognito.create_user_pool_client(
            UserPoolId=self.pool_id,
            ClientName="sandbox-app",
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            GenerateSecret=False,
            ReadAttributes=list(CLIENT_READ_ATTRIBUTES),
            WriteAttributes=list(CLIENT_WRITE_ATTRIBUTES),
        )["UserPoolClient"]["ClientId"]
        # moto keeps the write attributes but does not enforce them: this client does, as Cognito would.
        self.cognito.meta.events.register("provide-client-params.cognito-idp", _refuse_unwritable)
        events = boto3.client("events")
        events.create_event_bus(Name=BUS)
        self.sqs = boto3.client("sqs")
        self.s3 = boto3.client("s3")
        self.queue_url = self.sqs.create_queue(QueueName=STAND_IN_QUEUE)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        from client_capture.submit import SOURCE

        events.put_rule(Name="all-client-events", EventBusName=BUS, EventPattern=json.dumps({"source": [SOURCE]}))
        events.put_targets(
            Rule="all-client-events",
            EventBusName=BUS,
            Targets=[{"Id": "firehose-stand-in", "Arn": queue_arn["Attributes"]["QueueArn"]}],
        )

    def environment(self) -> dict[str, str]:
        return {
            "AWS_REGION": REGION,
            "USER_POOL_ID": self.pool_id,
            "APP_CLIENT_IDS": self.client_id,
            "JWKS_URL": f"{self.endpoint}/{self.pool_id}/.well-known/jwks.json",
            "EXTERNAL_ID_ATTRIBUTE": EXTERNAL_ID_ATTRIBUTE,
            "EVENT_BUS_NAME": BUS,
        }

    # -- identity ----------------------------------------------------------------------------------

    def create_user(self, username: str, password: str, *, email: str, external_id: str | None = None) -> str:
        """Sign up and confirm a user as the README's steps do; returns their external id. Without
        ``external_id`` the post-confirmation trigger gives them their ``sub``; with one, an
        administrator sets it."""
        self.cognito.sign_up(
            ClientId=self.client_id,
            Username=username,
            Password=password,
            UserAttributes=[{"Name": "email", "Value": email}],
        )
        self.cognito.admin_confirm_sign_up(UserPoolId=self.pool_id, Username=username)
        if external_id:
            self.cognito.admin_update_user_attributes(
                UserPoolId=self.pool_id,
                Username=username,
                UserAttributes=[{"Name": EXTERNAL_ID_ATTRIBUTE, "Value": external_id}],
            )
        else:
            self._run_confirmation_trigger(username)
        user = self.cognito.admin_get_user(UserPoolId=self.pool_id, Username=username)
        return next(a["Value"] for a in user["UserAttributes"] if a["Name"] == EXTERNAL_ID_ATTRIBUTE)

    def _run_confirmation_trigger(self, username: str) -> None:
        from client_capture.confirmation_handler import handler

        user = self.cognito.admin_get_user(UserPoolId=self.pool_id, Username=username)
        attributes = {a["Name"]: a["Value"] for a in user["UserAttributes"]}
        event = {
            "version": "1",
            "triggerSource": "PostConfirmation_ConfirmSignUp",
            "region": REGION,
            "userPoolId": self.pool_id,
            "userName": username,
            "callerContext": {"clientId": self.client_id},
            "request": {"userAttributes": attributes},
            "response": {},
        }
        handler(event, FakeContext(5, "sandbox-capture-confirmation"))

    def sign_in(self, username: str = DEMO_USER, password: str = DEMO_PASSWORD) -> dict[str, str]:
        """Cognito's ``InitiateAuth`` with USER_PASSWORD_AUTH: the tokens, as a client gets them."""
        auth = self.cognito.initiate_auth(
            ClientId=self.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": password},
        )
        return dict(auth["AuthenticationResult"])

    # -- the API front -----------------------------------------------------------------------------

    def post(self, body: bytes | dict[str, Any], authorization: str | None) -> tuple[int, dict[str, Any]]:
        """``POST /event`` as API Gateway would serve it."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Authorization": authorization} if authorization is not None else {}
        status, answer, _ = api_gateway_response(raw, headers, self.decisions)
        return status, answer

    # -- the Firehose stand-in ---------------------------------------------------------------------

    def pending(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    def flush(self) -> dict[str, Any]:
        """What Firehose does when its buffer is due: transform the buffered events and write one
        gzip JSON Lines object under the capture prefix (refused records under the error prefix).
        Returns ``{"events", "written", "failed", "key", "size", "etag", "version_id"}``."""
        messages = self._drain()
        result: dict[str, Any] = {"events": len(messages), "written": 0, "failed": 0, "key": None}
        if not messages:
            return result
        lines, failed = transform([m["Body"] for m in messages])
        stamp = time.strftime("%Y/%m/%d/%H", time.gmtime())
        name = f"sandbox-capture-{time.strftime('%Y-%m-%d-%H-%M-%S', time.gmtime())}-{uuid.uuid4()}"
        if failed:
            self.s3.put_object(
                Bucket=self.import_bucket,
                Key=f"{ERROR_PREFIX}processing-failed/{stamp}/{name}",
                Body="".join(json.dumps(f) + "\n" for f in failed).encode(),
            )
        if lines:
            key = f"{INCOMING}{PREFIX}{stamp}/{name}.jsonl.gz"
            data = gzip.compress(b"".join(lines))
            put = self.s3.put_object(Bucket=self.import_bucket, Key=key, Body=data)
            result.update(key=key, size=len(data), etag=put["ETag"].strip('"'), version_id=put.get("VersionId"))
        # Only now that the object is written are the events taken off the buffer: none lost, none twice.
        for start in range(0, len(messages), 10):
            batch = messages[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )
        result.update(written=len(lines), failed=len(failed))
        return result

    def _drain(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=300, WaitTimeSeconds=0
            ).get("Messages", [])
            if not got:
                return messages
            messages += got


@dataclass
class CaptureSandbox(LocalStack):
    """The capture route ending in the import pipeline's sandbox (``imports``), each on its own
    moto server and Braze emulator. ``route`` holds the capture steps."""

    braze_url: str | None = None
    braze_api_key: str | None = None
    emulator_settings: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[str], None] | None = None
    imports: ImportSandbox = field(init=False)
    route: CaptureRoute = field(init=False)
    external_id: str = ""

    def _start(self) -> None:
        self.imports = self._stack.enter_context(
            ImportSandbox(
                braze_url=self.braze_url,
                braze_api_key=self.braze_api_key,
                emulator_settings=self.emulator_settings,
                progress=self.progress,
            )
        )
        self.route = CaptureRoute()
        self._stack.enter_context(_environment(self.route.environment()))
        self._stack.callback(clear_caches)
        clear_caches()
        self.external_id = self.route.create_user(DEMO_USER, DEMO_PASSWORD, email="demo-client@example.com")

    def create_user(self, username: str, password: str, *, email: str, external_id: str | None = None) -> str:
        return self.route.create_user(username, password, email=email, external_id=external_id)

    def sign_in(self, username: str = DEMO_USER, password: str = DEMO_PASSWORD) -> dict[str, str]:
        return self.route.sign_in(username, password)

    def post(self, body: bytes | dict[str, Any], authorization: str | None) -> tuple[int, dict[str, Any]]:
        return self.route.post(body, authorization)

    def pending(self) -> int:
        return self.route.pending()

    def deliver(self) -> dict[str, Any]:
        """Flush the Firehose stand-in, then deliver the object's S3 notification to the importer.
        Returns the flush's figures and the run ``report`` (None when nothing was buffered)."""
        result = self.route.flush()
        result["report"] = None
        if result["key"] is not None:
            event = s3_event(BUCKET, result["key"], result["size"], result["etag"], result["version_id"])
            runs = self.imports.deliver(event)[0].get("runs", [])
            if runs and runs[0].get("run_id"):
                result["report"] = self.imports.report(runs[0]["run_id"])
        return result


def transform(bodies: list[str]) -> tuple[list[bytes], list[dict[str, Any]]]:
    """Run the real transform handler over events in Firehose's event shape; returns the JSON Lines
    of the records it made ``Ok`` and Firehose's error-output records of the others."""
    from client_capture.transform_handler import handler

    records: list[dict[str, Any]] = [
        {"recordId": str(i), "approximateArrivalTimestamp": int(time.time() * 1000),
         "data": base64.b64encode(body.encode()).decode()}
        for i, body in enumerate(bodies)
    ]  # fmt: skip
    event = {
        "invocationId": str(uuid.uuid4()),
        "deliveryStreamArn": f"arn:aws:firehose:{REGION}:123456789012:deliverystream/sandbox-capture",
        "region": REGION,
        "records": records,
    }
    answer = handler(event, FakeContext(60, "sandbox-capture-transform"))
    if sorted(r["recordId"] for r in answer["records"]) != sorted(r["recordId"] for r in records):
        raise RuntimeError("the transform did not answer for every record")  # Firehose would retry the batch
    lines = [base64.b64decode(r["data"]) for r in answer["records"] if r["result"] == "Ok"]
    failed = [
        {"errorCode": "Lambda.ProcessingFailed", "rawData": r["data"]} for r in answer["records"] if r["result"] != "Ok"
    ]
    return lines, failed


def api_gateway_response(
    body: bytes, headers: dict[str, str], decisions: dict[str, tuple[float, dict[str, Any] | None]]
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """What API Gateway does for ``POST /event``: a missing Authorization header is 401 without
    calling the authorizer; the authorizer's decision is cached per token; Allow passes its context
    to the function in a proxy event. Returns the status, the answer and its headers (the
    function's own; none for refusals)."""
    from client_capture.api_handler import handler as receive
    from client_capture.authorizer_handler import handler as authorize

    token = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    if not token:
        return 401, UNAUTHORIZED, {}
    now = time.monotonic()
    cached = decisions.get(token)
    if cached is None or cached[0] < now:
        method_arn = f"arn:aws:execute-api:{REGION}:123456789012:sandbox/v1/POST/event"
        try:
            decision: dict[str, Any] | None = authorize(
                {"type": "REQUEST", "methodArn": method_arn, "headers": headers}, FakeContext(5, "capture-authorizer")
            )
        except Exception as exc:
            if str(exc) != "Unauthorized":
                raise
            decision = None
        cached = (now + AUTHORIZER_CACHE_SECONDS, decision)
        decisions[token] = cached
    decision = cached[1]
    if decision is None:
        return 401, UNAUTHORIZED, {}
    if decision["policyDocument"]["Statement"][0]["Effect"] != "Allow":
        return 403, FORBIDDEN, {}
    event = {
        "resource": "/event",
        "path": "/event",
        "httpMethod": "POST",
        "headers": headers,
        "body": body.decode("utf-8", errors="replace"),
        "isBase64Encoded": False,
        "requestContext": {
            "authorizer": {**decision.get("context", {}), "principalId": decision["principalId"]},
            "requestTimeEpoch": int(time.time() * 1000),
            "stage": "v1",
        },
    }
    response = receive(event, FakeContext(10, "capture-receiver"))
    return int(response["statusCode"]), json.loads(response["body"]), dict(response.get("headers") or {})


def clear_caches() -> None:
    """Settings, clients and keys are cached per container; a new sandbox is a new container."""
    settings = sys.modules.get("client_capture.settings")
    if settings is not None:
        for name in ("authorizer_settings", "api_settings", "confirmation_settings"):
            getattr(settings, name).cache_clear()
    authorizer = sys.modules.get("client_capture.authorizer_handler")
    if authorizer is not None:
        authorizer._keys.cache_clear()
        authorizer._cognito.cache_clear()
        authorizer._EXTERNAL_IDS.clear()
    api = sys.modules.get("client_capture.api_handler")
    if api is not None:
        api._events.cache_clear()
    confirmation = sys.modules.get("client_capture.confirmation_handler")
    if confirmation is not None:
        confirmation._cognito.cache_clear()
