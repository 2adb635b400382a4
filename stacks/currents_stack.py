"""Currents personalization: Braze Currents Avro files in S3 → generated content in DynamoDB,
served to Braze Connected Content by a keyed, authorized API."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnOutput, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct

from .config import AppConfig
from .constructs.alarm_topic import AlarmTopic
from .constructs.braze_importer import retention_days
from .constructs.currents_personalizer import CurrentsPersonalizer
from .constructs.keyed_api import KeyedApi
from .constructs.secure_bucket import SecureBucket
from .import_stack import acknowledge_notification_handler


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
            bucket_arn = f"<{self.get_logical_id(self.bucket.node.default_child)}.Arn>"  # type: ignore[arg-type]
            Validations.of(writer).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::{bucket_arn}/{currents.prefix}*]",
                    reason="Braze Currents writes files under its prefix with names it chooses.",
                )
            )
            CfnOutput(self, "BrazeWriterRoleArn", value=writer.role_arn)
        alarms = AlarmTopic(self, "Alarms", email=config.alarm_email)
        alarms.watch(self.personalization.alarms)
        acknowledge_notification_handler(self)
        CfnOutput(self, "CurrentsBucketName", value=self.bucket.bucket_name)
        CfnOutput(self, "CurrentsPrefix", value=currents.prefix)
        CfnOutput(self, "ContentTableName", value=self.personalization.table.table_name)


def braze_writer_grants(bucket_arn: str, prefix: str) -> list[tuple[list[str], list[str]]]:
    """What Braze's Amazon S3 (role ARN) set-up asks for, and no more: listing the bucket and its
    location (Braze's connection test), writing and reading back objects under the Currents prefix.
    The bucket is SSE-S3 encrypted, so no KMS grant is needed."""
    return [
        (["s3:ListBucket", "s3:GetBucketLocation"], [bucket_arn]),
        (["s3:PutObject", "s3:GetObject"], [f"{bucket_arn}/{prefix}*"]),
    ]
