"""Client event capture: web and mobile clients post events with a Cognito access token; they travel
API Gateway -> a function -> a custom EventBridge bus -> Firehose (transform) -> gzip JSON Lines
under the import bucket's incoming prefix, where the import pipeline sends them to Braze. Optional:
chosen event types also go to an HTTP API through an API destination."""

from __future__ import annotations

from typing import Any, cast

import jsii
from aws_cdk import Acknowledgment, CfnOutput, Duration, Fn, RemovalPolicy, SecretValue, Stack, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .config import AppConfig, CaptureConfig
from .constructs.alarm_topic import AlarmTopic, alarms_at_one
from .constructs.braze_importer import retention_days
from .constructs.dashboard import (
    FIVE_MINUTES,
    PipelineDashboard,
    api_traffic,
    denials,
    function_widgets,
    graph,
    queue_depth,
)
from .constructs.dead_letter_queue import dead_letter_queue
from .constructs.keyed_api import logged_rest_api
from .constructs.python_function import PythonFunction
from .telemetry import capture as telemetry
from .telemetry import metric

PACKAGE = "client_capture"
# The source the API function gives every event (lambdas/client_capture/submit.py; a test holds them equal).
CAPTURE_SOURCE = "braze.client-capture"
EXTERNAL_ID = "external_id"  # the user pool's custom attribute: custom:external_id
METRICS_NAMESPACE = telemetry.NAMESPACE
# How long EventBridge keeps trying a target before the event goes to the target's dead-letter queue.
TARGET_RETRY_ATTEMPTS = 185
TARGET_MAX_EVENT_AGE_SECONDS = 86400


@jsii.implements(events.IRuleTarget)
class _FirehoseWithDeadLetters:
    """A Firehose target with a retry policy and a dead-letter queue (CDK's Firehose targets take neither)."""

    def __init__(self, stream: firehose.CfnDeliveryStream, role: iam.IRole, dead_letters: sqs.IQueue) -> None:
        self._stream, self._role, self._dead_letters = stream, role, dead_letters

    def bind(self, rule: events.IRule, id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(
            arn=self._stream.attr_arn,
            role=self._role,
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=self._dead_letters.queue_arn),
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_retry_attempts=TARGET_RETRY_ATTEMPTS,
                maximum_event_age_in_seconds=TARGET_MAX_EVENT_AGE_SECONDS,
            ),
        )


def refusal_cors_origin(origins: list[str]) -> str | None:
    """The CORS header value of the API's own refusals (401/403). A gateway response only maps
    static values or request values, it cannot choose: one configured origin (or ``*``) is named;
    with several, none is, rather than echoing whatever origin asked."""
    if "*" in origins:
        return "'*'"
    return f"'{origins[0]}'" if len(origins) == 1 else None


class CaptureStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        import_bucket_export: str,
        **kwargs: Any,
    ) -> None:
        """``import_bucket_export``: the name of the Import stack's export of its bucket's ARN."""
        super().__init__(scope, construct_id, **kwargs)
        import_bucket = s3.Bucket.from_bucket_arn(self, "ImportBucket", Fn.import_value(import_bucket_export))
        capture = config.capture
        self.retention = retention_days(capture.log_retention_days)
        self.tracing = config.tracing
        self.output_prefix = f"{config.importer.incoming_prefix}{capture.prefix}"
        self._identity(capture.self_sign_up, capture.access_token_minutes)
        self.bus = events.EventBus(self, "Bus", description="Events posted by web and mobile clients")
        self._api(capture.authorizer_cache_seconds, capture.api_rate_limit, capture.api_burst_limit, capture.origins)
        self._delivery(import_bucket, import_bucket_export, capture)
        self.forward_dead_letters: sqs.Queue | None = None
        if capture.forwarded_types:
            self._forward(capture)
        self.alarms = self._alarms(config.alarm_email)
        self.dashboard = self._dashboard()
        CfnOutput(self, "UserPoolId", value=self.user_pool.user_pool_id)
        CfnOutput(self, "AppClientId", value=self.app_client.user_pool_client_id)
        CfnOutput(self, "EventBusName", value=self.bus.event_bus_name)
        CfnOutput(self, "DeliveryStreamName", value=self.stream.ref)
        CfnOutput(self, "OutputPrefix", value=self.output_prefix)

    # -- identity --------------------------------------------------------------------------------

    def _identity(self, self_sign_up: bool, token_minutes: int) -> None:
        self.confirmation = PythonFunction(
            self, "Confirmation", package=PACKAGE, handler="confirmation_handler.handler",
            description="Gives a newly confirmed user their Cognito sub as Braze external id",
            environment={"EXTERNAL_ID_ATTRIBUTE": f"custom:{EXTERNAL_ID}"}, timeout=Duration.seconds(5),
            memory_mb=256, log_retention=self.retention, tracing=self.tracing,
        )  # fmt: skip
        self.user_pool = cognito.UserPool(
            self,
            "Users",
            self_sign_up_enabled=self_sign_up,
            sign_in_aliases=cognito.SignInAliases(username=True, email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            custom_attributes={EXTERNAL_ID: cognito.StringAttribute(min_len=1, max_len=512, mutable=True)},
            password_policy=cognito.PasswordPolicy(
                min_length=12, require_digits=True, require_lowercase=True, require_uppercase=True, require_symbols=True
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            lambda_triggers=cognito.UserPoolTriggers(post_confirmation=self.confirmation.function),
            removal_policy=RemovalPolicy.RETAIN,  # users and their external ids outlive the stack
        )
        # A policy of its own: the pool depends on the trigger, so the trigger's role cannot name the pool
        # in its default policy without a dependency cycle.
        iam.Policy(
            self,
            "ConfirmationPolicy",
            roles=[self.confirmation.role],
            statements=[
                iam.PolicyStatement(
                    actions=["cognito-idp:AdminUpdateUserAttributes"], resources=[self.user_pool.user_pool_arn]
                )
            ],
        )
        self.app_client = self.user_pool.add_client(
            "AppClient",
            auth_flows=cognito.AuthFlow(user_password=True, user_srp=True),
            generate_secret=False,  # web and mobile clients cannot keep one
            disable_o_auth=True,  # clients sign in with the pool's API (USER_PASSWORD_AUTH or SRP), no hosted UI
            prevent_user_existence_errors=True,
            access_token_validity=Duration.minutes(token_minutes),
            id_token_validity=Duration.minutes(token_minutes),
            # Users may read their external id but never write it: it decides whose events they send.
            read_attributes=cognito.ClientAttributes()
            .with_standard_attributes(email=True, email_verified=True)
            .with_custom_attributes(EXTERNAL_ID),
            write_attributes=cognito.ClientAttributes().with_standard_attributes(email=True),
        )
        Validations.of(self.user_pool).acknowledge(
            Acknowledgment(
                id="AwsSolutions-COG2",
                reason="Consumer web and mobile app users: MFA is offered (TOTP) but cannot be forced on them.",
            ),
            *[
                Acknowledgment(
                    id=rule,
                    reason="Threat protection needs Cognito's Plus feature plan, a per-user cost the deployer "
                    "chooses; these tokens only let a user post events about themselves.",
                )
                for rule in ("AwsSolutions-COG3", "AwsSolutions-COG8")
            ],
        )

    # -- API ---------------------------------------------------------------------------------------

    def _api(self, cache_seconds: int, rate_limit: int, burst_limit: int, origins: list[str]) -> None:
        self.authorizer_fn = PythonFunction(
            self, "Authorizer", package=PACKAGE, handler="authorizer_handler.handler",
            description="Verifies Cognito access tokens and passes the user's Braze external id on",
            environment={
                "USER_POOL_ID": self.user_pool.user_pool_id,
                "APP_CLIENT_IDS": self.app_client.user_pool_client_id,
                "EXTERNAL_ID_ATTRIBUTE": f"custom:{EXTERNAL_ID}",
                "EXTERNAL_ID_CACHE_SECONDS": str(cache_seconds),
            },
            timeout=Duration.seconds(5), memory_mb=512, log_retention=self.retention, tracing=self.tracing,
        )  # fmt: skip
        self.authorizer_fn.role.add_to_policy(
            iam.PolicyStatement(actions=["cognito-idp:AdminGetUser"], resources=[self.user_pool.user_pool_arn])
        )
        self.receiver = PythonFunction(
            self, "Receiver", package=PACKAGE, handler="api_handler.handler",
            description="Puts clients' events on the capture bus and answers for every entry",
            environment={
                "EVENT_BUS_NAME": self.bus.event_bus_name,
                "CORS_ORIGINS": ",".join(origins),
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
            timeout=Duration.seconds(10), memory_mb=512, log_retention=self.retention, tracing=self.tracing,
        )  # fmt: skip
        self.bus.grant_put_events_to(self.receiver.role)
        self.api = logged_rest_api(
            self,
            description="Client event capture: POST /event with a Cognito access token",
            rate_limit=rate_limit,
            burst_limit=burst_limit,
            log_retention=self.retention,
            trace_stage=False,  # its callers are end users: X-Ray would record their IP addresses
            url_path="/event",
        )
        authorizer = apigw.RequestAuthorizer(
            self,
            "TokenCheck",
            handler=self.authorizer_fn.function,
            identity_sources=[apigw.IdentitySource.header("Authorization")],
            results_cache_ttl=Duration.seconds(cache_seconds),  # per token: Cognito is not asked per request
        )
        validator = apigw.RequestValidator(
            self, "Validator", rest_api=self.api, validate_request_body=True, validate_request_parameters=True
        )
        # API Gateway checks the shape; the function checks every entry and answers for each.
        body = self.api.add_model(
            "Events",
            content_type="application/json",
            schema=apigw.JsonSchema(
                type=apigw.JsonSchemaType.OBJECT,
                properties={
                    "entries": apigw.JsonSchema(type=apigw.JsonSchemaType.ARRAY, min_items=1, max_items=10),
                    "events": apigw.JsonSchema(type=apigw.JsonSchemaType.ARRAY, min_items=1, max_items=10),
                },
            ),
        )
        resource = self.api.root.add_resource("event")
        method = resource.add_method(
            "POST",
            apigw.LambdaIntegration(self.receiver.function, allow_test_invoke=False),
            authorizer=authorizer,
            authorization_type=apigw.AuthorizationType.CUSTOM,
            request_validator=validator,
            request_models={"application/json": body},
        )
        refusal_origin = refusal_cors_origin(origins)
        for response, status in ((apigw.ResponseType.UNAUTHORIZED, "401"), (apigw.ResponseType.ACCESS_DENIED, "403")):
            self.api.add_gateway_response(
                f"Json{status}",
                type=response,
                status_code=status,
                # messageString is substituted already quoted: the template must not quote it again.
                templates={"application/json": '{"message":$context.error.messageString}'},
                # A browser reads a refusal only with the CORS header; it carries no data.
                response_headers={"Access-Control-Allow-Origin": refusal_origin} if refusal_origin else None,
            )
        if origins:
            self._cors(resource, origins)
        Validations.of(method).acknowledge(
            Acknowledgment(
                id="AwsSolutions-COG4",
                reason="A Lambda authorizer verifies this user pool's JWTs: it accepts the bare token the capture "
                "client sends as well as Bearer, requires an access token of this app client, and supplies the "
                "user's external id, which access tokens do not carry.",
            )
        )
        Validations.of(self.api).acknowledge(
            Acknowledgment(
                id="AwsSolutions-APIG3",
                reason="Web and mobile clients call from anywhere; the JWT authorizer and stage throttling guard "
                "the API. Attach a WAF web ACL to the stage where policy requires one.",
            )
        )

    def _cors(self, resource: apigw.Resource, origins: list[str]) -> None:
        """Browsers ask before posting with an Authorization header: answer the preflight for the
        configured origins (the function adds the header to its own answers)."""
        resource.add_cors_preflight(
            allow_origins=origins,
            allow_methods=["POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=Duration.hours(1),
        )
        preflight = resource.node.find_child("OPTIONS")
        Validations.of(preflight).acknowledge(
            *[
                Acknowledgment(
                    id=rule,
                    reason="The CORS preflight: browsers send it without credentials by design; it answers from a "
                    "mock integration with the allowed origins, methods and headers only.",
                )
                for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4")
            ]
        )

    # -- bus -> Firehose -> import bucket ----------------------------------------------------------

    def _delivery(self, bucket: s3.IBucket, bucket_export: str, capture: CaptureConfig) -> None:
        error_prefix, buffer_seconds = capture.error_prefix, capture.buffer_seconds
        self.transform = PythonFunction(
            self, "Transform", package=PACKAGE, handler="transform_handler.handler",
            description="Turns capture events into Braze custom events for the importer (Firehose transform)",
            environment={"POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE},
            timeout=Duration.minutes(1), memory_mb=512, log_retention=self.retention, tracing=self.tracing,
        )  # fmt: skip
        stream_logs = logs.LogGroup(self, "DeliveryLogs", retention=self.retention, removal_policy=RemovalPolicy.RETAIN)
        stream_log = stream_logs.add_stream("S3Delivery")
        role = iam.Role(self, "DeliveryRole", assumed_by=iam.ServicePrincipal("firehose.amazonaws.com"))
        outputs = [bucket.arn_for_objects(f"{self.output_prefix}*"), bucket.arn_for_objects(f"{error_prefix}*")]
        role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=outputs))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                resources=[bucket.bucket_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"],
                resources=[self.transform.function.function_arn],
            )
        )
        role.add_to_policy(iam.PolicyStatement(actions=["logs:PutLogEvents"], resources=[stream_logs.log_group_arn]))
        self.stream = firehose.CfnDeliveryStream(
            self,
            "Delivery",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix=f"{self.output_prefix}!{{timestamp:yyyy/MM/dd/HH}}/",
                error_output_prefix=f"{error_prefix}!{{firehose:error-output-type}}/!{{timestamp:yyyy/MM/dd/HH}}/",
                compression_format="GZIP",
                file_extension=".jsonl.gz",  # the importer's notification and reader take gzip JSON Lines
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=buffer_seconds, size_in_m_bs=capture.buffer_mb
                ),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=stream_logs.log_group_name, log_stream_name=stream_log.log_stream_name
                ),
                processing_configuration=firehose.CfnDeliveryStream.ProcessingConfigurationProperty(
                    enabled=True,
                    processors=[
                        firehose.CfnDeliveryStream.ProcessorProperty(
                            type="Lambda",
                            parameters=[
                                firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                    parameter_name="LambdaArn", parameter_value=self.transform.function.function_arn
                                ),
                                firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                    parameter_name="BufferIntervalInSeconds",
                                    parameter_value=str(max(0, min(60, buffer_seconds))),
                                ),
                                firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                    parameter_name="BufferSizeInMBs", parameter_value="1"
                                ),
                                firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                    parameter_name="NumberOfRetries", parameter_value="3"
                                ),
                            ],
                        )
                    ],
                ),
            ),
        )
        # The stream's first delivery must not race its role's policy.
        self.stream.node.add_dependency(role.node.find_child("DefaultPolicy"))
        self.firehose_dead_letters = dead_letter_queue(
            self, "DeliveryDeadLetters", holds="client events EventBridge could not put into Firehose"
        )
        put_role = iam.Role(self, "RuleRole", assumed_by=iam.ServicePrincipal("events.amazonaws.com"))
        put_role.add_to_policy(
            iam.PolicyStatement(
                actions=["firehose:PutRecord", "firehose:PutRecordBatch"], resources=[self.stream.attr_arn]
            )
        )
        self.rule = events.Rule(
            self,
            "AllEvents",
            event_bus=self.bus,
            description="Every client event to Firehose, on its way to the import bucket",
            event_pattern=events.EventPattern(source=[CAPTURE_SOURCE]),
            targets=[
                cast(events.IRuleTarget, _FirehoseWithDeadLetters(self.stream, put_role, self.firehose_dead_letters))
            ],
        )
        _allow_rule_to_dead_letter(self.firehose_dead_letters, self.rule)
        token = bucket_export  # cdk-nag names an imported ARN by its export
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{token}/{self.output_prefix}*]",
                reason="Firehose writes capture files under the capture prefix of the import bucket only.",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{token}/{error_prefix}*]",
                reason="Firehose writes events the transform refused under the capture error prefix only.",
            ),
        )

    def _forward(self, capture: CaptureConfig) -> None:
        """Chosen event types also go to an HTTP API (the seed's loyalty purchases to the help desk)."""
        connection = events.Connection(
            self,
            "ForwardConnection",
            description="Credential EventBridge sends to the forward endpoint",
            authorization=events.Authorization.api_key(
                capture.forward_header_name, SecretValue.secrets_manager(capture.forward_secret_name)
            ),
        )
        destination = events.ApiDestination(
            self,
            "ForwardDestination",
            connection=connection,
            endpoint=capture.forward_endpoint,
            http_method=events.HttpMethod.POST,
            rate_limit_per_second=capture.forward_rate_per_second,
        )
        self.forward_dead_letters = dead_letter_queue(
            self, "ForwardDeadLetters", holds="client events the forward endpoint did not take"
        )
        self.forward_rule = events.Rule(
            self,
            "ForwardEvents",
            event_bus=self.bus,
            description="Chosen client event types to the forward endpoint",
            event_pattern=events.EventPattern(source=[CAPTURE_SOURCE], detail={"event_type": capture.forwarded_types}),
            targets=[
                targets.ApiDestination(
                    destination,
                    dead_letter_queue=self.forward_dead_letters,
                    retry_attempts=TARGET_RETRY_ATTEMPTS,
                    max_event_age=Duration.seconds(TARGET_MAX_EVENT_AGE_SECONDS),
                )
            ],
        )

    # -- alarms ------------------------------------------------------------------------------------

    def _alarms(self, email: str | None) -> list[cloudwatch.Alarm]:
        five = Duration.minutes(5)
        specs: list[tuple[str, cloudwatch.IMetric, str]] = [
            ("DeliveryDeadLetters", self.firehose_dead_letters.metric_approximate_number_of_messages_visible(),
             "Client events EventBridge could not put into Firehose wait in the dead-letter queue."),
            ("TransformErrors", self.transform.function.metric_errors(period=five),
             "The Firehose transform raised; Firehose retries, then writes the batch to the error prefix."),
            ("EventsFailedTransform", metric(telemetry.EVENTS_FAILED_TRANSFORM),
             "Client events could not become Braze events and went to the capture error prefix."),
            ("ReceiverErrors", self.receiver.function.metric_errors(period=five), "The capture API function raised."),
            ("AuthorizerErrors", self.authorizer_fn.function.metric_errors(period=five),
             "The capture authorizer raised (beyond refusing tokens)."),
            ("ConfirmationErrors", self.confirmation.function.metric_errors(period=five),
             "A confirmed user may have no external id: the post-confirmation trigger raised."),
        ]  # fmt: skip
        if self.forward_dead_letters is not None:
            specs.append(
                ("ForwardDeadLetters", self.forward_dead_letters.metric_approximate_number_of_messages_visible(),
                 "Client events the forward endpoint did not take wait in the dead-letter queue.")
            )  # fmt: skip
        alarms = alarms_at_one(self, specs)
        # Firehose stopped delivering: the oldest record waits far longer than the buffer allows.
        alarms.append(
            cloudwatch.Alarm(
                self,
                "DeliveryStalledAlarm",
                metric=cloudwatch.Metric(
                    namespace="AWS/Firehose",
                    metric_name="DeliveryToS3.DataFreshness",
                    dimensions_map={"DeliveryStreamName": self.stream.ref},
                    statistic="Maximum",
                    period=five,
                ),
                threshold=900,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description="Firehose has not delivered capture events to the import bucket for 15 minutes.",
            )
        )
        AlarmTopic(self, "Alarms", email=email).watch(alarms)
        return alarms

    def _dashboard(self) -> PipelineDashboard:
        def firehose(name: str, statistic: str = "Sum", label: str | None = None) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/Firehose", metric_name=name, dimensions_map={"DeliveryStreamName": self.stream.ref},
                statistic=statistic, period=FIVE_MINUTES, label=label,
            )  # fmt: skip

        received = graph(
            "Events received by the capture API",
            [metric(telemetry.EVENTS_ACCEPTED), metric(telemetry.EVENTS_REFUSED)],
            right=[metric(telemetry.EVENTS_PUT_FAILED, label="Put failures (retryable refusals)")],
        )
        delivery = graph(
            "Firehose: records in, delivery freshness (s)",
            [firehose("IncomingRecords"), firehose("DeliveryToS3.Records")],
            right=[firehose("DeliveryToS3.DataFreshness", "Maximum", "Oldest record not yet delivered (s)")],
        )
        transform = graph(
            "Transform: events transformed and failed",
            [metric(telemetry.EVENTS_TRANSFORMED)],
            right=[
                metric(telemetry.EVENTS_FAILED_TRANSFORM),
                self.transform.function.metric_errors(period=FIVE_MINUTES, label="Transform errors"),
            ],
        )
        api = api_traffic("Capture API: requests, 4xx, 5xx", self.api)
        latency = graph(
            "Capture API latency (ms)",
            [
                self.api.metric_latency(statistic=statistic, period=FIVE_MINUTES, label=f"Latency {statistic}")
                for statistic in ("p50", "p99")
            ],
        )
        access_logs = cast(logs.ILogGroup, self.node.find_child("AccessLogs"))
        queues: list[tuple[str, sqs.IQueue]] = [("Firehose delivery", self.firehose_dead_letters)]
        if self.forward_dead_letters is not None:
            queues.append(("Forwarding", self.forward_dead_letters))
        widgets: list[list[cloudwatch.IWidget]] = [
            [received, delivery, transform],
            [api, latency, denials("Capture API: denied calls (401/403)", access_logs)],
            [
                *function_widgets("Capture API function", self.receiver.function),
                queue_depth("Dead-letter queues", queues),
            ],
            function_widgets("Transform", self.transform.function),
        ]
        return PipelineDashboard(self, "Dashboard", title="Client event capture", rows=widgets, alarms=self.alarms)


def _allow_rule_to_dead_letter(queue: sqs.Queue, rule: events.Rule) -> None:
    queue.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("events.amazonaws.com")],
            actions=["sqs:SendMessage"],
            resources=[queue.queue_arn],
            conditions={"ArnEquals": {"aws:SourceArn": rule.rule_arn}},
        )
    )
