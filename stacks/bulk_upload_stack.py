"""Bulk upload: SAS CI360's bulk connector calls a keyed webhook; the staged file lands in S3,
with its header row, whatever its size, and (``bulkUpload:deliverToBraze``) goes on to Braze
through the Import stack's importer."""

from __future__ import annotations

from typing import cast

from aws_cdk import Acknowledgment, CfnOutput, Duration, Fn, Stack, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .config import AppConfig
from .constructs.alarm_topic import AlarmTopic, alarms_at_one
from .constructs.braze_importer import retention_days
from .constructs.dashboard import (
    ONE_MINUTE,
    PipelineDashboard,
    api_traffic,
    denials,
    function_widgets,
    graph,
    queue_depth,
)
from .constructs.dead_letter_queue import dead_letter_queue
from .constructs.keyed_api import KeyedApi
from .constructs.python_function import PythonFunction
from .constructs.secure_bucket import SecureBucket, nag_arn
from .constructs.table import keyed_table
from .import_stack import ImporterExports
from .telemetry import bulk_upload as telemetry
from .telemetry import metric

PACKAGE = "bulk_upload"


class BulkUploadStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        importer: ImporterExports | None = None,
        **kwargs: object,
    ) -> None:
        """``importer``: the Import stack's exports; given, every landed file is also imported into Braze."""
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        bulk = config.bulk_upload
        retention = retention_days(bulk.log_retention_days)
        # Versioned: a recurring CI360 task reuses its file name; earlier files stay as versions.
        self.bucket = SecureBucket(self, "UploadBucket", versioned=True).bucket
        self.jobs = keyed_table(self, "Jobs", key="job_id", ttl_attribute="expires_at")
        self.dead_letters = dead_letter_queue(self, "CopyDeadLetters", holds="copies that failed past their retries")
        self.queue = sqs.Queue(
            self,
            "Copies",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.minutes(16),
            # AWS advises at least 5 receives for a Lambda event source; with a maximum concurrency
            # throttling no longer spends them either.
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letters, max_receive_count=6),
        )
        environment = {
            "UPLOAD_BUCKET": self.bucket.bucket_name,
            "UPLOAD_PREFIX": bulk.prefix,
            "JOBS_TABLE": self.jobs.table_name,
            "COPY_QUEUE_URL": self.queue.queue_url,
            "ALLOWED_URL_SCHEMES": bulk.allowed_url_schemes,
            "ALLOWED_URL_HOSTS": bulk.allowed_url_hosts,
            "POWERTOOLS_METRICS_NAMESPACE": telemetry.NAMESPACE,
        }
        if importer is not None:
            environment["RUNS_TABLE"] = Fn.import_value(importer.runs_table_name)
        copier_environment = {
            **environment,
            "COPY_HANDOVER_SECONDS": str(bulk.handover_seconds),
            "COPY_PARTS_IN_FLIGHT": str(bulk.parts_in_flight),
        }
        if importer is not None:
            copier_environment["IMPORTER_FUNCTION"] = Fn.import_value(importer.function_arn)
            copier_environment["BRAZE_ID_COLUMN"] = bulk.braze_id_column
        self.receiver = PythonFunction(
            self, "Receiver", package=PACKAGE, handler="api_handler.handler",
            description="Takes CI360 bulk-connector webhooks and queues the copy",
            environment=environment, timeout=Duration.seconds(10), memory_mb=512, log_retention=retention,
            tracing=config.tracing,
        )  # fmt: skip
        self.copier = PythonFunction(
            self, "Copier", package=PACKAGE, handler="copier_handler.handler",
            description="Streams CI360's staged file into S3 with its header row",
            environment=copier_environment, timeout=Duration.minutes(15), memory_mb=bulk.copier_memory_mb,
            log_retention=retention, tracing=config.tracing,
            # A long copy continues itself through its queue (Lambda -> SQS -> Lambda); the function
            # keeps its own hop limit (COPY_MAX_HOPS) instead of Lambda's loop detection.
            recursive_loop=lambda_.RecursiveLoop.ALLOW,
        )  # fmt: skip
        self.copier.function.add_event_source(
            sources.SqsEventSource(
                self.queue, batch_size=1, report_batch_item_failures=True, max_concurrency=bulk.copier_max_concurrency
            )
        )
        self.dead_letter_consumer = PythonFunction(
            self, "DeadLetterConsumer", package=PACKAGE, handler="dead_letter_handler.handler",
            description="Marks a copy job failed, with its last reason, when its message gives up",
            environment=environment, timeout=Duration.seconds(30), memory_mb=256, log_retention=retention,
            tracing=config.tracing,
        )  # fmt: skip
        self.dead_letter_consumer.function.add_event_source(
            sources.SqsEventSource(self.dead_letters, batch_size=10, report_batch_item_failures=True)
        )
        self._grant(bulk.prefix)
        if importer is not None:
            self._deliver_to_braze(importer, bulk.prefix, read_tags=config.importer.deltas)
        self.api = KeyedApi(
            self, "Api", description="SAS CI360 bulk-connector webhook", rate_limit=bulk.api_rate_limit,
            burst_limit=bulk.api_burst_limit, log_retention=retention, tracing=config.tracing,
            trace_stage=config.tracing,
        )  # fmt: skip
        body = self.api.api.add_model(
            "Webhook",
            content_type="application/json",
            schema=apigw.JsonSchema(
                type=apigw.JsonSchemaType.OBJECT,
                required=["presignedUrls", "sendParameters"],
                properties={
                    "presignedUrls": apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT, required=["dataFile"]),
                    "sendParameters": apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT, required=["s3_filename"]),
                },
            ),
        )
        resource = self.api.api.root.add_resource("bulk-upload")
        self.api.add_method(resource, "POST", self.receiver.function, request_models={"application/json": body})
        self.api.add_method(resource.add_resource("{job_id}"), "GET", self.receiver.function)
        failed = metric(telemetry.COPIES_FAILED)
        alarms = AlarmTopic(self, "Alarms", email=config.alarm_email)
        self.alarms = alarms_at_one(
            self,
            [
                (
                    "CopyDeadLetters",
                    # Its consumer empties the queue at once: count what it takes, not what waits.
                    self.dead_letters.metric_number_of_messages_received(period=Duration.minutes(5), statistic="Sum"),
                    "A copy failed past its retries and waits in the dead-letter queue.",
                ),
                (
                    "DeadLetterConsumerErrors",
                    self.dead_letter_consumer.function.metric_errors(period=Duration.minutes(5)),
                    "A job whose copy gave up could not be marked failed; its message waits in the dead-letter queue.",
                ),
                (
                    "CopierErrors",
                    self.copier.function.metric_errors(period=Duration.minutes(5)),
                    "A copy attempt failed and will be retried.",
                ),
                ("CopiesFailed", failed, "A copy failed for good (expired URL, refused host, bad metadata)."),
            ],
        )
        alarms.watch(self.alarms)
        self.dashboard = self._dashboard()
        CfnOutput(self, "UploadBucketName", value=self.bucket.bucket_name)
        CfnOutput(self, "UploadPrefix", value=bulk.prefix)

    def _dashboard(self) -> PipelineDashboard:
        jobs = graph(
            "Jobs done and failed, imports requested",
            [metric(spec) for spec in (telemetry.COPIES_DONE, telemetry.COPIES_FAILED, telemetry.IMPORTS_REQUESTED)],
            right=[metric(spec) for spec in (telemetry.COPY_RETRIES, telemetry.COPY_HANDOVERS)],
        )
        copied = graph("Bytes copied", [metric(telemetry.BYTES_COPIED, label="Bytes copied")])
        duration = graph(
            "Copy duration (ms, one attempt or hop)",
            [
                metric(telemetry.COPY_DURATION, statistic=statistic, label=f"Copy {statistic}")
                for statistic in ("p50", "p99", "Maximum")
            ],
        )
        api = self.api.api
        webhook = api_traffic("Webhook: requests, 4xx, 5xx", api)
        access_logs = cast(logs.ILogGroup, self.api.node.find_child("AccessLogs"))
        widgets: list[list[cloudwatch.IWidget]] = [
            [jobs, copied, duration],
            [
                webhook,
                denials("Webhook: denied calls (401/403)", access_logs),
                queue_depth("Dead-letter queue", [("Copies", self.dead_letters)]),
            ],
            [*function_widgets("Copier", self.copier.function), graph(
                "Copy queue", [self.queue.metric_approximate_number_of_messages_visible(period=ONE_MINUTE)],
                right=[self.queue.metric_approximate_age_of_oldest_message(period=ONE_MINUTE)],
            )],
            function_widgets("Webhook receiver", self.receiver.function),
        ]  # fmt: skip
        return PipelineDashboard(self, "Dashboard", title="SAS CI360 bulk upload", rows=widgets, alarms=self.alarms)

    def _deliver_to_braze(self, importer: ImporterExports, prefix: str, *, read_tags: bool) -> None:
        """The copier asks the importer to import each landed file where it lies; the importer may
        read the files under the upload prefix (and, with import:deltas, their tags: one asks for a
        full send); the API reads the import's run for a job's status. Every grant is made here, so
        the Import stack never depends on this one."""
        self.copier.role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[Fn.import_value(importer.function_arn)])
        )
        self.receiver.role.add_to_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[Fn.import_value(importer.runs_table_arn)])
        )
        importer_role = iam.Role.from_role_arn(self, "ImporterRole", Fn.import_value(importer.role_arn))
        reads = iam.Policy(
            self,
            "ImporterReadsUploads",
            roles=[importer_role],
            statements=[
                iam.PolicyStatement(
                    actions=[
                        "s3:GetObject",
                        "s3:GetObjectVersion",
                        *(["s3:GetObjectTagging", "s3:GetObjectVersionTagging"] if read_tags else []),
                    ],
                    resources=[self.bucket.arn_for_objects(f"{prefix}*")],
                )
            ],
        )
        bucket_arn = nag_arn(self.bucket)
        Validations.of(reads).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{bucket_arn}/{prefix}*]",
                reason="The importer reads the CI360 files it is asked to send to Braze, under the upload prefix only.",
            )
        )

    def _grant(self, prefix: str) -> None:
        objects = self.bucket.arn_for_objects(f"{prefix}*")
        # Multipart uploads need PutObject (create, upload part, complete) and their abort.
        self.copier.role.add_to_policy(
            iam.PolicyStatement(actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=[objects])
        )
        self.dead_letter_consumer.role.add_to_policy(
            iam.PolicyStatement(actions=["s3:AbortMultipartUpload"], resources=[objects])
        )
        for role in (self.copier.role, self.dead_letter_consumer.role):
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["dynamodb:GetItem", "dynamodb:UpdateItem"], resources=[self.jobs.table_arn]
                )
            )
        self.queue.grant_send_messages(self.copier.role)  # hand-over: the next part of a long copy
        self.receiver.role.add_to_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem", "dynamodb:PutItem"], resources=[self.jobs.table_arn])
        )
        self.queue.grant_send_messages(self.receiver.role)
        bucket_arn = nag_arn(self.bucket)
        for role, does in ((self.copier.role, "Writes"), (self.dead_letter_consumer.role, "Aborts uploads of")):
            Validations.of(role).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::{bucket_arn}/{prefix}*]",
                    reason=f"{does} the files CI360 names, under the fixed upload prefix only.",
                )
            )
