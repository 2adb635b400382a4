"""Currents personalization: Braze Currents Avro files in S3 → generated content in DynamoDB,
served to Braze Connected Content by a keyed, authorized API."""

from __future__ import annotations

from typing import cast

from aws_cdk import Acknowledgment, CfnOutput, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from .config import AppConfig
from .constructs.alarm_topic import AlarmTopic
from .constructs.braze_importer import retention_days
from .constructs.currents_personalizer import CurrentsPersonalizer
from .constructs.dashboard import (
    FIVE_MINUTES,
    PipelineDashboard,
    api_traffic,
    denials,
    function_widgets,
    graph,
    queue_depth,
)
from .constructs.keyed_api import KeyedApi
from .constructs.secure_bucket import SecureBucket, nag_arn
from .import_stack import acknowledge_notification_handler
from .telemetry import currents as telemetry
from .telemetry import metric


class CurrentsStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        currents = config.currents
        self.bucket = SecureBucket(self, "CurrentsBucket").bucket
        self.personalization = CurrentsPersonalizer(
            self, "Personalization", config=currents, bucket=self.bucket, tracing=config.tracing
        )
        self.api = KeyedApi(
            self,
            "ContentApi",
            description="Personalized content for Braze Connected Content",
            rate_limit=currents.api_rate_limit,
            burst_limit=currents.api_burst_limit,
            log_retention=retention_days(currents.log_retention_days),
            tracing=config.tracing,
            trace_stage=False,  # its URLs carry Braze and external ids, which X-Ray would record
        )
        handler = self.personalization.api_function.function
        content = self.api.api.root.add_resource("content")
        self.api.add_method(
            content,
            "GET",
            handler,
            request_parameters={
                "method.request.querystring.user_id": False,
                "method.request.querystring.external_id": False,
                "method.request.querystring.format": False,
            },
        )
        by_id = content.add_resource("{braze_id}")
        self.api.add_method(by_id, "GET", handler, request_parameters={"method.request.querystring.format": False})
        if currents.braze_writer_principal:
            writer = iam.Role(
                self,
                "BrazeWriterRole",
                assumed_by=iam.ArnPrincipal(currents.braze_writer_principal),
                external_ids=[currents.braze_external_id],
                description="Assumed by Braze Currents to write event files",
            )
            for actions, resources in braze_writer_grants(self.bucket.bucket_arn, currents.prefix):
                writer.add_to_policy(iam.PolicyStatement(actions=actions, resources=resources))
            bucket_arn = nag_arn(self.bucket)
            Validations.of(writer).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::{bucket_arn}/{currents.prefix}*]",
                    reason="Braze Currents writes files under its prefix with names it chooses.",
                )
            )
            CfnOutput(self, "BrazeWriterRoleArn", value=writer.role_arn)
        alarms = AlarmTopic(self, "Alarms", email=config.alarm_email)
        alarms.watch(self.personalization.alarms)
        self.dashboard = self._dashboard()
        acknowledge_notification_handler(self)
        CfnOutput(self, "CurrentsBucketName", value=self.bucket.bucket_name)
        CfnOutput(self, "CurrentsPrefix", value=currents.prefix)
        CfnOutput(self, "ContentTableName", value=self.personalization.table.table_name)

    def _dashboard(self) -> PipelineDashboard:
        personalization = self.personalization
        files = graph(
            "Currents records and users (per 5 minutes)",
            [metric(spec) for spec in (telemetry.RECORDS, telemetry.KEPT, telemetry.DUPLICATES, telemetry.NO_INTENT)],
            right=[metric(spec) for spec in (telemetry.USERS, telemetry.UPDATED, telemetry.SCHEDULED)],
        )
        generations = graph(
            "Generations: generated, fallbacks, capped, failed",
            [metric(spec) for spec in (telemetry.GENERATED, telemetry.POLICY_FALLBACKS, telemetry.CAPPED)],
            right=[
                metric(spec)
                for spec in (
                    telemetry.FAILED,
                    telemetry.NO_TIME_LEFT,
                    telemetry.DEFERRED,
                    telemetry.SUPERSEDED,
                    telemetry.SKIPPED_FRESH,
                    telemetry.SKIPPED_CLAIMED,
                )
            ],
        )
        bedrock = graph(
            "Bedrock Converse latency (ms) and throttles",
            [
                metric(telemetry.BEDROCK_LATENCY, statistic=statistic, label=f"Latency {statistic}")
                for statistic in ("p50", "p99")
            ],
            right=[metric(telemetry.BEDROCK_THROTTLES, label="Throttled calls")],
        )
        api = self.api.api
        content_api = api_traffic("Content API: requests, 4xx, 5xx", api)
        latency = graph(
            "Content API latency (ms)",
            [
                api.metric_latency(statistic=statistic, period=FIVE_MINUTES, label=f"Latency {statistic}")
                for statistic in ("p50", "p99")
            ],
            right=[api.metric_integration_latency(statistic="p99", period=FIVE_MINUTES, label="Integration p99")],
        )
        access_logs = cast(logs.ILogGroup, self.api.node.find_child("AccessLogs"))
        dead_letters = queue_depth(
            "Dead-letter queues",
            [("Generations", personalization.dead_letter_queue), ("Currents files", personalization.failed_files)],
        )
        widgets: list[list[cloudwatch.IWidget]] = [
            [files, generations, bedrock],
            [content_api, latency, denials("Content API: denied calls (401/403)", access_logs)],
            [*function_widgets("Personalizer", personalization.personalizer.function), dead_letters],
            function_widgets("Generator", personalization.generator.function),
        ]
        return PipelineDashboard(
            self, "Dashboard", title="Braze Currents personalization", rows=widgets, alarms=personalization.alarms
        )


def braze_writer_grants(bucket_arn: str, prefix: str) -> list[tuple[list[str], list[str]]]:
    """What Braze's Amazon S3 (role ARN) set-up asks for, and no more: listing the bucket and its
    location (Braze's connection test), writing and reading back objects under the Currents prefix.
    The bucket is SSE-S3 encrypted, so no KMS grant is needed."""
    return [
        (["s3:ListBucket", "s3:GetBucketLocation"], [bucket_arn]),
        (["s3:PutObject", "s3:GetObject"], [f"{bucket_arn}/{prefix}*"]),
    ]
