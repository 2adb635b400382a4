"""The Currents personalization capability, built from ``lambdas/currents_personalizer``: the
content table, the personalizer (S3), the generator (SQS fan-out) and the content API function."""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from ..config import CurrentsConfig, bedrock_base_model
from ..telemetry import currents as telemetry
from ..telemetry import metric
from .alarm_topic import alarms_at_one
from .braze_importer import retention_days
from .dead_letter_queue import dead_letter_queue
from .python_function import PythonFunction
from .secure_bucket import nag_arn
from .table import keyed_table

PACKAGE = "currents_personalizer"
METRICS_NAMESPACE = telemetry.NAMESPACE


class CurrentsPersonalizer(Construct):
    """Exposes ``table``, ``queue``, ``dead_letter_queue``, ``failed_files``, ``personalizer``,
    ``generator``, ``api_function`` and ``alarms``.

    The personalizer (S3) merges each file into per-user profiles and schedules generations on the
    queue with the settle window as delay; only the generator (SQS) calls the model, so the event
    source's maximum concurrency (``generationConcurrency``) bounds every Bedrock call."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: CurrentsConfig, bucket: s3.IBucket, tracing: bool
    ) -> None:
        super().__init__(scope, construct_id)
        retention = retention_days(config.log_retention_days)
        self.table = keyed_table(self, "Content", key="user_id", ttl_attribute="expires_at")
        self.table.add_global_secondary_index(
            index_name="by-external-id",
            partition_key=dynamodb.Attribute(name="external_id", type=dynamodb.AttributeType.STRING),
        )
        self.dead_letter_queue = dead_letter_queue(
            self, "GenerationDeadLetters", holds="generations that failed past their retries"
        )
        self.queue = sqs.Queue(
            self,
            "Generation",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.minutes(6),
            retention_period=Duration.days(4),  # Bedrock may throttle for a long time: nothing is lost
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=8),
        )
        environment = {
            "CONTENT_TABLE": self.table.table_name,
            "CONTENT_GENERATOR": config.generator,
            "BEDROCK_MODEL_ID": config.bedrock_model_id,
            "BEDROCK_MAX_TOKENS": str(config.bedrock_max_tokens),
            "EVENT_TYPES": config.event_types,
            "PASSIVE_EVENT_TYPES": config.passive_event_types,
            "COOLDOWN_SECONDS": str(config.cooldown_seconds),
            "SETTLE_SECONDS": str(config.settle_seconds),
            "CONTENT_TTL_DAYS": str(config.content_ttl_days),
            "HOURLY_GENERATION_CAP": str(config.hourly_generation_cap),
            "CONTENT_DEFAULTS": str(config.defaults_enabled).lower(),
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        }
        if config.guardrail_id:
            environment |= {
                "BEDROCK_GUARDRAIL_ID": config.guardrail_id,
                "BEDROCK_GUARDRAIL_VERSION": config.guardrail_version,
            }
        queued = {**environment, "GENERATION_QUEUE_URL": self.queue.queue_url}
        self.personalizer = PythonFunction(
            self,
            "Personalizer",
            package=PACKAGE,
            description="Merges Braze Currents files into user profiles and schedules generations",
            environment=queued,
            timeout=Duration.minutes(5),
            memory_mb=1024,
            log_retention=retention,
            tracing=tracing,
        )
        # S3 invokes it asynchronously: after Lambda's two retries the event for that file goes here.
        self.failed_files = dead_letter_queue(
            self, "FailedFiles", holds="S3 notifications of Currents files the personalizer failed on"
        )
        self.personalizer.function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.failed_files), retry_attempts=2
        )
        self.generator = PythonFunction(
            self,
            "Generator",
            package=PACKAGE,
            handler="generator_handler.handler",
            description="Generates content for users scheduled through SQS",
            environment=queued,
            timeout=Duration.minutes(5),
            memory_mb=512,
            log_retention=retention,
            tracing=tracing,
        )
        self.generator.function.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=5,
                report_batch_item_failures=True,
                max_concurrency=config.generation_concurrency,  # sized to the model's quota
            )
        )
        self.api_function = PythonFunction(
            self,
            "ContentApi",
            package=PACKAGE,
            handler="api_handler.handler",
            description="Serves personalized content to Braze Connected Content",
            environment=environment,
            timeout=Duration.seconds(5),
            memory_mb=512,
            log_retention=retention,
            tracing=tracing,
        )
        self._grant(config, bucket)
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.personalizer.function),
            s3.NotificationKeyFilter(prefix=config.prefix, suffix=".avro"),
        )
        self.alarms = self._alarms()

    def _grant(self, config: CurrentsConfig, bucket: s3.IBucket) -> None:
        stack = Stack.of(self)
        self.personalizer.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem"],
                resources=[self.table.table_arn],
            )
        )
        self.generator.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[self.table.table_arn],
            )
        )
        if config.generator == "bedrock":
            for statement in bedrock_statements(stack, config):
                self.generator.role.add_to_policy(statement)
            # cdk-nag names resources with tokens in angle brackets: the same grants, named that way.
            named = bedrock_grants("<AWS::Partition>", "<AWS::Region>", "<AWS::AccountId>", config.bedrock_model_id)
            for resource in (r for resources, _ in named for r in resources if "*" in r):
                Validations.of(self.generator.role).acknowledge(
                    Acknowledgment(
                        id=f"AwsSolutions-IAM5[Resource::{resource}]",
                        reason="The inference profile routes to the same foundation model in several Regions; the "
                        "grant only applies through that profile (bedrock:InferenceProfileArn condition).",
                    )
                )
            if config.guardrail_id:
                guardrail = stack.format_arn(service="bedrock", resource="guardrail", resource_name=config.guardrail_id)
                self.generator.role.add_to_policy(
                    iam.PolicyStatement(actions=["bedrock:ApplyGuardrail"], resources=[guardrail])
                )
            if config.marketplace_product_id:
                self._marketplace(config.marketplace_product_id)
        self.personalizer.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[bucket.arn_for_objects(f"{config.prefix}*")]
            )
        )
        self.queue.grant_send_messages(self.personalizer.role)
        self.queue.grant_send_messages(self.generator.role)  # generations deferred to the end of a cooldown
        # The API only reads: one item, or the external-id index.
        self.api_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:Query"],
                resources=[self.table.table_arn, f"{self.table.table_arn}/index/by-external-id"],
            )
        )
        bucket_arn = nag_arn(bucket)
        Validations.of(self.personalizer.role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{bucket_arn}/{config.prefix}*]",
                reason="Reads the Avro files Braze Currents writes under its prefix; names are not known in advance.",
            )
        )

    def _marketplace(self, product_id: str) -> None:
        """Bedrock subscribes the account to a Marketplace-served model (Anthropic's are) on its first
        invocation, with the caller's permissions: the generator may view and accept that one
        product's subscription, nothing else (no Unsubscribe)."""
        self.generator.role.add_to_policy(
            iam.PolicyStatement(
                actions=["aws-marketplace:ViewSubscriptions", "aws-marketplace:Subscribe"],
                resources=["*"],
                conditions={"ForAnyValue:StringEquals": {"aws-marketplace:ProductId": [product_id]}},
            )
        )
        Validations.of(self.generator.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="AWS Marketplace subscription actions have no resource types; the grant is limited by a "
                "condition to the configured model's product id, for Bedrock's first-invocation subscription.",
            )
        )

    def _alarms(self) -> list[cloudwatch.Alarm]:
        specs: list[tuple[str, cloudwatch.IMetric, str]] = [
            ("GenerationDeadLetters", self.dead_letter_queue.metric_approximate_number_of_messages_visible(),
             "Generations failed past their retries and wait in the dead-letter queue."),
            ("GenerationFailures", metric(telemetry.FAILED),
             "Generations failed (logged with the Bedrock error code); SQS retries them."),
            ("PersonalizerErrors", self.personalizer.function.metric_errors(period=Duration.minutes(5)),
             "A Currents file could not be processed."),
            ("FailedFiles", self.failed_files.metric_approximate_number_of_messages_visible(),
             "A Currents file failed past Lambda's retries; its S3 event waits in the FailedFiles queue."),
            ("GenerationCap", metric(telemetry.CAPPED),
             "The hourly generation cap was reached; users got offline content."),
        ]  # fmt: skip
        return alarms_at_one(self, specs)


def bedrock_statements(stack: Stack, config: CurrentsConfig) -> list[iam.PolicyStatement]:
    """``bedrock:InvokeModel`` (Converse) on exactly the configured model, whatever form it takes."""
    grants = bedrock_grants(stack.partition, stack.region, stack.account, config.bedrock_model_id)
    return [
        iam.PolicyStatement(actions=["bedrock:InvokeModel"], resources=resources, conditions=conditions)
        for resources, conditions in grants
    ]


def bedrock_grants(
    partition: str, region: str, account: str, model: str
) -> list[tuple[list[str], dict[str, Any] | None]]:
    """(resources, conditions) to invoke ``model``: a foundation model in this Region; or an
    inference profile (any geography prefix — ``us.``, ``eu.``, ``jp.``, ``au.``, ``global.`` … —
    given as an id or an ARN) and the foundation model in whichever Regions it routes to, only
    through that profile."""
    if model.startswith("arn:") and ":foundation-model/" in model:
        return [([model], None)]
    if model.startswith("arn:"):
        profile = model
    elif len(model.split(".")) >= 3:
        profile = f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model}"
    else:
        return [([f"arn:{partition}:bedrock:{region}::foundation-model/{model}"], None)]
    base = bedrock_base_model(model)
    named = ":inference-profile/" in profile and base != profile.split("/", 1)[1]
    routed = f"arn:{partition}:bedrock:*::foundation-model/{base if named else '*'}"
    return [([profile], None), ([routed], {"StringEquals": {"bedrock:InferenceProfileArn": profile}})]
