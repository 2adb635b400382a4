"""A REST API that callers with static headers (Braze, CI360) can use safely: an API key for the
usage plan's throttling and a real credential check, a REQUEST authorizer comparing a bearer token
held in Secrets Manager; access logs, request validation, no data trace."""

from __future__ import annotations

from typing import cast

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from .outputs import output
from .python_function import PythonFunction


def logged_rest_api(
    scope: Construct,
    *,
    description: str,
    rate_limit: int,
    burst_limit: int,
    log_retention: logs.RetentionDays,
    trace_stage: bool,
    url_path: str = "/",
) -> apigw.RestApi:
    """A regional REST API (``Api``, named ``<stack>-Api``: API Gateway's metrics are per name) with
    its stage ``v1`` throttled, JSON access logs in ``AccessLogs`` (no caller or user fields),
    errors-only execution logs, no data trace, and X-Ray stage tracing with ``trace_stage`` (X-Ray
    records each request's URL and caller IP: only for APIs whose URLs and callers name no user).
    The stack's ``ApiUrl`` output is the stage's URL of ``url_path``."""
    access_logs = logs.LogGroup(scope, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN)
    api = apigw.RestApi(
        scope,
        "Api",
        rest_api_name=f"{Stack.of(scope).stack_name}-Api",
        description=description,
        cloud_watch_role=False,  # the account's role lives in the ApiGatewayAccount stack, once
        endpoint_types=[apigw.EndpointType.REGIONAL],
        deploy_options=apigw.StageOptions(
            stage_name="v1",
            access_log_destination=apigw.LogGroupLogDestination(access_logs),
            access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                caller=False,
                http_method=True,
                ip=True,
                protocol=True,
                request_time=True,
                resource_path=True,
                response_length=True,
                status=True,
                user=False,
            ),
            logging_level=apigw.MethodLoggingLevel.ERROR,
            data_trace_enabled=False,
            tracing_enabled=trace_stage,
            throttling_rate_limit=rate_limit,
            throttling_burst_limit=burst_limit,
        ),
    )
    # RestApi outputs its stage's URL itself, under an id with a hash (ApiEndpoint1541504C).
    url = cast(CfnOutput, api.node.find_child("Endpoint"))
    url.value = api.url_for_path(url_path)
    url.override_logical_id("ApiUrl")
    return api


class KeyedApi(Construct):
    """Exposes ``api``, ``authorizer``, ``validator``, ``token_secret`` and ``api_key``;
    ``add_method`` adds a keyed, authorized, validated Lambda-proxy method."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        description: str,
        rate_limit: int,
        burst_limit: int,
        log_retention: logs.RetentionDays,
        tracing: bool,
        trace_stage: bool,
    ) -> None:
        """``tracing``: the authorizer function traces; ``trace_stage``: so does the API's stage."""
        super().__init__(scope, construct_id)
        self.api = logged_rest_api(
            self,
            description=description,
            rate_limit=rate_limit,
            burst_limit=burst_limit,
            log_retention=log_retention,
            trace_stage=trace_stage,
        )
        self.token_secret = secretsmanager.Secret(
            self,
            "Token",
            description="Bearer token callers send in the Authorization header",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=48, exclude_punctuation=True),
        )
        Validations.of(self.token_secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason="The token is configured in Braze or CI360 by hand, so automatic rotation would break "
                "sends; it is rotated deliberately (README: new token as AWSCURRENT, callers move while "
                "AWSPREVIOUS is still accepted, then the old one is retired).",
            )
        )
        authorizer_fn = PythonFunction(
            self,
            "Authorizer",
            package="token_authorizer",
            description="Compares the caller's bearer token with the current and previous ones in Secrets Manager",
            environment={"API_TOKEN_SECRET": self.token_secret.secret_arn},
            timeout=Duration.seconds(5),
            memory_mb=256,
            log_retention=log_retention,
            tracing=tracing,
        )
        self.token_secret.grant_read(authorizer_fn.role)
        self.authorizer = apigw.RequestAuthorizer(
            self,
            "TokenCheck",
            handler=authorizer_fn.function,
            identity_sources=[apigw.IdentitySource.header("Authorization")],
            # Decisions (Deny too) are cached per token: short, so a token put in during a rotation
            # works within a minute everywhere, and a retired one stops as soon.
            results_cache_ttl=Duration.minutes(1),
        )
        self.validator = apigw.RequestValidator(
            self, "Validator", rest_api=self.api, validate_request_parameters=True, validate_request_body=True
        )
        self.api_key = self.api.add_api_key("Key")
        plan = self.api.add_usage_plan(
            "Plan", throttle=apigw.ThrottleSettings(rate_limit=rate_limit, burst_limit=burst_limit)
        )
        plan.add_api_key(self.api_key)
        plan.add_api_stage(stage=self.api.deployment_stage)
        Validations.of(self.api).acknowledge(
            Acknowledgment(
                id="AwsSolutions-APIG3",
                reason="Callers are Braze or CI360 from changing IP ranges; throttling, the API key and the token "
                "authorizer guard the API. Attach a WAF web ACL to the stage where policy requires one.",
            )
        )
        output(self, "ApiKeyId", value=self.api_key.key_id)
        output(self, "TokenSecretArn", value=self.token_secret.secret_arn)

    def add_method(
        self,
        resource: apigw.IResource,
        http_method: str,
        handler: lambda_.IFunction,
        *,
        request_parameters: dict[str, bool] | None = None,
        request_models: dict[str, apigw.IModel] | None = None,
    ) -> apigw.Method:
        method = resource.add_method(
            http_method,
            apigw.LambdaIntegration(handler, allow_test_invoke=False),
            api_key_required=True,
            authorizer=self.authorizer,
            authorization_type=apigw.AuthorizationType.CUSTOM,
            request_validator=self.validator,
            request_parameters=request_parameters,
            request_models=request_models,
        )
        Validations.of(method).acknowledge(
            Acknowledgment(
                id="AwsSolutions-COG4",
                reason="Braze Connected Content and CI360 webhooks send static headers and cannot use Cognito; "
                "a REQUEST authorizer checks a secret bearer token instead.",
            )
        )
        return method
