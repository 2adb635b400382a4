"""The Currents personalization capability, built from ``lambdas/currents_personalizer``: the
content table, the personalizer (S3), the generator (SQS fan-out) and the content API function."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from ..config import CurrentsConfig
from .alarm_topic import alarms_at_one
from .braze_importer import retention_days
from .dead_letter_queue import dead_letter_queue
from .python_function import PythonFunction
from .table import keyed_table

PACKAGE = "currents_personalizer"
METRICS_NAMESPACE = "BrazeCurrents"


class CurrentsPersonalizer(Construct):
    """Exposes ``table``, ``queue``, ``dead_letter_queue``, ``personalizer``, ``generator``,
    ``api_function`` and ``alarms``."""

    def __init__(self, scope: Construct, construct_id: str, *, config: CurrentsConfig, bucket: s3.IBucket) -> None:
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
            "COOLDOWN_SECONDS": str(config.cooldown_seconds),
            "CONTENT_TTL_DAYS": str(config.content_ttl_days),
            "MAX_INLINE_USERS": str(config.max_inline_users),
            "GENERATION_CONCURRENCY": "4",
            "HOURLY_GENERATION_CAP": str(config.hourly_generation_cap),
            "CONTENT_DEFAULTS": str(config.defaults_enabled).lower(),
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        }
        if config.guardrail_id:
            environment |= {
                "BEDROCK_GUARDRAIL_ID": config.guardrail_id,
                "BEDROCK_GUARDRAIL_VERSION": config.guardrail_version,
            }
        self.personalizer = PythonFunction(
            self,
            "Personalizer",
            package=PACKAGE,
            description="Personalizes content from Braze Currents files",
            environment={**environment, "GENERATION_QUEUE_URL": self.queue.queue_url},
            timeout=Duration.minutes(5),
            memory_mb=1024,
            log_retention=retention,
        )
        self.generator = PythonFunction(
            self,
            "Generator",
            package=PACKAGE,
            handler="generator_handler.handler",
            description="Generates content for users fanned out through SQS",
            environment=environment,
            timeout=Duration.minutes(5),
            memory_mb=512,
            log_retention=retention,
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
        read_write = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
        for fn in (self.personalizer, self.generator):
            fn.role.add_to_policy(iam.PolicyStatement(actions=read_write, resources=[self.table.table_arn]))
            if config.generator == "bedrock":
                fn.role.add_to_policy(
                    iam.PolicyStatement(actions=["bedrock:InvokeModel"], resources=_model_arns(stack, config))
                )
                if config.guardrail_id:
                    guardrail = stack.format_arn(
                        service="bedrock", resource="guardrail", resource_name=config.guardrail_id
                    )
                    fn.role.add_to_policy(
                        iam.PolicyStatement(actions=["bedrock:ApplyGuardrail"], resources=[guardrail])
                    )
        self.personalizer.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[bucket.arn_for_objects(f"{config.prefix}*")]
            )
        )
        self.queue.grant_send_messages(self.personalizer.role)
        # The API only reads: one item, or the external-id index.
        self.api_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:Query"],
                resources=[self.table.table_arn, f"{self.table.table_arn}/index/by-external-id"],
            )
        )
        bucket_arn = f"<{stack.get_logical_id(bucket.node.default_child)}.Arn>"  # type: ignore[arg-type]
        Validations.of(self.personalizer.role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{bucket_arn}/{config.prefix}*]",
                reason="Reads the Avro files Braze Currents writes under its prefix; names are not known in advance.",
            )
        )

    def _alarms(self) -> list[cloudwatch.Alarm]:
        capped = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name="Capped",
            dimensions_map={"service": "currents-personalizer"},
            statistic="Sum",
            period=Duration.minutes(5),
        )
        specs = [
            ("GenerationDeadLetters", self.dead_letter_queue.metric_approximate_number_of_messages_visible(),
             "Generations failed past their retries and wait in the dead-letter queue."),
            ("PersonalizerErrors", self.personalizer.function.metric_errors(period=Duration.minutes(5)),
             "A Currents file could not be processed."),
            ("GenerationCap", capped, "The hourly generation cap was reached; users got offline content."),
        ]  # fmt: skip
        return alarms_at_one(self, specs)


def _model_arns(stack: Stack, config: CurrentsConfig) -> list[str]:
    """Exactly the configured model: a foundation model, or an inference profile and the models it routes to."""
    model = config.bedrock_model_id
    if model.startswith("arn:"):
        return [model]
    if model.split(".", 1)[0] in ("us", "eu", "apac", "global"):  # a cross-Region inference profile
        base = model.split(".", 1)[1]
        return [
            stack.format_arn(service="bedrock", resource="inference-profile", resource_name=model),
            f"arn:{stack.partition}:bedrock:*::foundation-model/{base}",
        ]
    return [f"arn:{stack.partition}:bedrock:{stack.region}::foundation-model/{model}"]
