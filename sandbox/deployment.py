"""The sandbox as a deployment, for ``python -m deploycheck --sandbox``: moto server holds the
stacks (with the outputs the real stacks have), the buckets, topics, secrets and API keys, and a
local HTTP front serves the Content API and the bulk-upload API through the real handlers, after
the API-key check and the token authorizer (``sandbox.api_front``), as API Gateway would.

Each API's function has its own environment on Lambda; here both run in one process, so the front
swaps the environment per request, under a lock.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import boto3

from stacks.config import DEFAULT_BEDROCK_MODEL

from . import bulk_upload as bulk_sandbox
from . import currents as currents_sandbox
from .api_front import refused
from .importer import REGION, FakeContext, _environment
from .services import PLACEHOLDER_CREDENTIALS, HttpFront, LocalStack, moto_server

MODEL_ID = DEFAULT_BEDROCK_MODEL  # what a deployment with default settings calls


def _offline_bedrock() -> Any:
    from deploycheck.bedrock import FakeBedrock

    return FakeBedrock()


@dataclass
class SandboxDeployment(LocalStack):
    """``alarm_email=None`` leaves the alarm topics without a subscription; ``check_api_keys=False``
    makes the front admit any API key (a broken deployment, for the check to catch)."""

    project: str = "BrazePipelines"
    alarm_email: str | None = "oncall@example.com"
    check_api_keys: bool = True
    bedrock: Any = field(default_factory=_offline_bedrock)
    region: str = REGION

    def _start(self) -> None:
        endpoint = self._stack.enter_context(moto_server())
        common = {
            "AWS_ENDPOINT_URL": endpoint,
            **PLACEHOLDER_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            "POWERTOOLS_LOG_LEVEL": os.environ.get("SANDBOX_LOG_LEVEL", "WARNING"),
        }
        self._stack.enter_context(_environment(common))
        self._front = self._stack.enter_context(_Front())
        self._stack.callback(currents_sandbox.clear_caches)
        self._stack.callback(bulk_sandbox.clear_caches)
        self._import_stack()
        self._currents_stack()
        self._bulk_upload_stack()
        if self.alarm_email:
            sns = boto3.client("sns")
            for topic in self.alarm_topics:
                sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=self.alarm_email)

    # -- what each stack would create -----------------------------------------------------------

    def _import_stack(self) -> None:
        s3 = boto3.client("s3")
        bucket = f"{self.project.lower()}-import-{secrets.token_hex(4)}"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        function = f"arn:aws:lambda:{self.region}:123456789012:function:{self.project}-importer"
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                # As the stack: every key under the prefix (the function ignores what it does not read).
                "LambdaFunctionConfigurations": [
                    {"LambdaFunctionArn": function, "Events": ["s3:ObjectCreated:*"],
                     "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "incoming/"}]}}}
                ]
            },
        )  # fmt: skip
        self._create_stack("Import", {}, {"ImportBucketName": bucket, "IncomingPrefix": "incoming/"})

    def _currents_stack(self) -> None:
        table, secret = f"{self.project}-content", f"{self.project}/content-api-token"
        currents_sandbox.create_content_table(boto3.client("dynamodb"), table)
        token_arn = boto3.client("secretsmanager").create_secret(Name=secret, SecretString=secrets.token_urlsafe(24))
        key = boto3.client("apigateway").create_api_key(name=f"{self.project}-content", enabled=True)
        env = {"CONTENT_TABLE": table, "CONTENT_GENERATOR": "offline", "CONTENT_DEFAULTS": "true",
               "API_TOKEN_SECRET": token_arn["ARN"]}  # fmt: skip
        self._front.route("currents", "content", env, key["value"] if self.check_api_keys else None,
                          currents_sandbox.clear_caches, _content_handler)  # fmt: skip
        # The personalizer as deployed: its environment names the model the check asks.
        personalizer = {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Runtime": "python3.12", "Handler": "handler.handler", "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Code": {"ZipFile": "def handler(event, context): pass"},
                "Environment": {"Variables": {"CONTENT_GENERATOR": "bedrock", "BEDROCK_MODEL_ID": MODEL_ID}},
            },
        }  # fmt: skip
        role = {
            "Type": "AWS::IAM::Role",
            "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}},
        }  # fmt: skip
        self._create_stack(
            "Currents",
            {"Role": role, "Personalizer": personalizer},
            {"ContentApiUrl0FEFCBC5": f"{self._front.url}/currents/v1/", "ContentApiApiKeyIdBB0C5FC4": key["id"],
             "ContentApiTokenSecretArn171B7C79": token_arn["ARN"], "ContentTableName": table},
        )  # fmt: skip

    def _bulk_upload_stack(self) -> None:
        bucket, table, secret = (f"{self.project.lower()}-uploads-{secrets.token_hex(4)}", f"{self.project}-jobs",
                                 f"{self.project}/bulk-upload-token")  # fmt: skip
        boto3.client("s3").create_bucket(Bucket=bucket)
        boto3.client("dynamodb").create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        queue = boto3.client("sqs").create_queue(QueueName=f"{self.project}-copies")["QueueUrl"]
        token_arn = boto3.client("secretsmanager").create_secret(Name=secret, SecretString=secrets.token_urlsafe(24))
        key = boto3.client("apigateway").create_api_key(name=f"{self.project}-bulk-upload", enabled=True)
        env = {"UPLOAD_BUCKET": bucket, "JOBS_TABLE": table, "COPY_QUEUE_URL": queue,
               "API_TOKEN_SECRET": token_arn["ARN"]}  # fmt: skip
        self._front.route("bulk", "bulk-upload", env, key["value"] if self.check_api_keys else None,
                          bulk_sandbox.clear_caches, _bulk_upload_handler)  # fmt: skip
        self._create_stack(
            "BulkUpload",
            {},
            {"ApiUrlDDEE0114": f"{self._front.url}/bulk/v1/", "ApiApiKeyId05B7A5A4": key["id"],
             "ApiTokenSecretArnE777282D": token_arn["ARN"], "UploadBucketName": bucket},
        )  # fmt: skip

    def _create_stack(self, pipeline: str, resources: dict[str, Any], outputs: dict[str, str]) -> None:
        template = {
            "Resources": {**resources, "AlarmsTopic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {
                **{key: {"Value": value} for key, value in outputs.items()},
                "AlarmsAlarmTopicArn213BFBE7": {"Value": {"Ref": "AlarmsTopic"}},
            },
        }
        cloudformation = boto3.client("cloudformation")
        cloudformation.create_stack(StackName=f"{self.project}-{pipeline}", TemplateBody=json.dumps(template))

    @property
    def alarm_topics(self) -> list[str]:
        cloudformation = boto3.client("cloudformation")
        return [
            o["OutputValue"]
            for pipeline in ("Import", "Currents", "BulkUpload")
            for o in cloudformation.describe_stacks(StackName=f"{self.project}-{pipeline}")["Stacks"][0]["Outputs"]
            if "AlarmTopicArn" in o["OutputKey"]
        ]


Handler = Callable[[str, str, dict[str, str], dict[str, str], bytes], tuple[int, Any]]


def _content_handler(method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Any:
    from currents_personalizer.api_handler import handler

    braze_id = urllib.parse.unquote(path.removeprefix("/content/")) if path.startswith("/content/") else None
    event = {"resource": "/content/{braze_id}" if braze_id else "/content", "path": path, "httpMethod": method,
             "headers": headers, "pathParameters": {"braze_id": braze_id} if braze_id else None,
             "queryStringParameters": query or None}  # fmt: skip
    return handler(event, FakeContext(5, "sandbox-content-api"))


def _bulk_upload_handler(method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Any:
    from bulk_upload.api_handler import handler

    job_id = path.removeprefix("/bulk-upload/") if path.startswith("/bulk-upload/") else None
    event = {"httpMethod": method, "path": path, "headers": headers, "body": body.decode(errors="replace"),
             "pathParameters": {"job_id": job_id} if job_id else None}  # fmt: skip
    return handler(event, FakeContext(29, "sandbox-bulk-upload-receiver"))


@dataclass
class _Route:
    resource: str
    env: dict[str, str]
    api_key: str | None
    clear_caches: Callable[[], None]
    handler: Callable[..., Any]


class _Front(HttpFront):
    """``/<api>/v1/<path>`` → the route's handler, as API Gateway's proxy integration would call it."""

    def __init__(self) -> None:
        self.routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                front._serve(self)

            def do_POST(self) -> None:
                front._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler, "api-front")

    def route(self, api: str, resource: str, env: dict[str, str], api_key: str | None,
              clear_caches: Callable[[], None], handler: Callable[..., Any]) -> None:  # fmt: skip
        self.routes[api] = _Route(resource, env, api_key, clear_caches, handler)

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(request.path)
        api, stage, rest = [*url.path.split("/", 3), "", "", ""][1:4]
        route = self.routes.get(api)
        path = "/" + rest
        if route is None or stage != "v1" or not path.startswith(f"/{route.resource}"):
            return _answer(request, 403, {"message": "Missing Authentication Token"})  # API Gateway's "no route"
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in request.headers.items()}
        api_key = request.headers.get("x-api-key", "")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock, _environment(route.env):
            route.clear_caches()
            denied = refused(
                path, str(request.command), api_key=api_key,
                expected_key=api_key if route.api_key is None else route.api_key,
                token=token if scheme.lower() == "bearer" else "",
            )  # fmt: skip
            if denied:
                return _answer(request, *denied)
            query = dict(urllib.parse.parse_qsl(url.query))
            response = route.handler(str(request.command), path, query, headers, body)
        _answer(request, int(response["statusCode"]), response["body"])


def _answer(request: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)
