"""Import: files dropped into a bucket are streamed to Braze /users/track."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, CfnOutput, Duration, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from .config import AppConfig, ImportConfig
from .constructs.alarm_topic import AlarmTopic
from .constructs.braze_importer import BrazeImporter
from .constructs.dashboard import ONE_MINUTE, PipelineDashboard, function_widgets, graph, queue_depth
from .constructs.secure_bucket import SecureBucket
from .telemetry import importer as telemetry
from .telemetry import metric


@dataclass(frozen=True)
class ImporterExports:
    """Names of the Import stack's exports another stack may import to hand files to the importer:
    exported whether or not anything uses them, so turning a consumer on or off never has to
    remove an export that is still imported."""

    function_arn: str
    role_arn: str
    runs_table_arn: str
    runs_table_name: str


class ImportStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        importer_config = config.importer
        expire_outputs = Duration.days(importer_config.output_retention_days)
        storage = SecureBucket(
            self,
            "ImportBucket",
            lifecycle_rules=[
                s3.LifecycleRule(prefix=prefix, expiration=expire_outputs)
                for prefix in (importer_config.reports_prefix, importer_config.rejects_prefix)
            ],
        )
        self.bucket = storage.bucket
        self.api_key_secret = secretsmanager.Secret(
            self,
            "BrazeApiKey",
            description="Braze REST API key with the users.track permission (replace the generated value)",
        )
        Validations.of(self.api_key_secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason="Braze REST API keys are issued in the Braze dashboard; AWS cannot rotate them.",
            )
        )
        self.importer = BrazeImporter(
            self,
            "Importer",
            config=importer_config,
            bucket=self.bucket,
            api_key_secret=self.api_key_secret,
            tracing=config.tracing,
        )
        alarms = AlarmTopic(self, "Alarms", email=config.alarm_email)
        alarms.watch(self.importer.alarms)
        self.dashboard = self._dashboard(importer_config)
        acknowledge_notification_handler(self)

        CfnOutput(self, "ImportBucketName", value=self.bucket.bucket_name)
        CfnOutput(self, "IncomingPrefix", value=importer_config.incoming_prefix)
        CfnOutput(self, "BrazeApiKeySecretArn", value=self.api_key_secret.secret_arn)
        CfnOutput(self, "ImporterFunctionName", value=self.importer.function.function_name)
        CfnOutput(self, "RunsTableName", value=self.importer.runs_table.table_name)
        if self.importer.deltas_table is not None:
            CfnOutput(self, "DeltasTableName", value=self.importer.deltas_table.table_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.importer.dead_letter_queue.queue_url)

    def _dashboard(self, config: ImportConfig) -> PipelineDashboard:
        def per_minute(spec: telemetry.MetricSpec, label: str | None = None) -> cloudwatch.Metric:
            return metric(spec, period=ONE_MINUTE, label=label)

        limit = config.workspace_requests_per_second * 60
        objects = [
            per_minute(spec)
            for spec in (
                telemetry.OBJECTS_READ,
                telemetry.OBJECTS_ACCEPTED,
                telemetry.OBJECTS_REJECTED,
                telemetry.OBJECTS_FAILED,
                telemetry.OBJECTS_AMBIGUOUS,
            )
        ]
        pace = graph(
            "Braze requests per minute against the workspace limit",
            [per_minute(telemetry.REQUESTS, "Requests"), per_minute(telemetry.THROTTLED, "429 Throttled")],
            annotations=[cloudwatch.HorizontalAnnotation(value=limit, label="workspace limit (requests/min)")],
        )
        runs = graph(
            "Retries and runs",
            [per_minute(telemetry.RETRIES)],
            right=[
                per_minute(spec)
                for spec in (
                    telemetry.RUNS_STOPPED,
                    telemetry.RUNS_QUEUED,
                    telemetry.QUEUED_RUNS_STARTED,
                    telemetry.EVENTS_IGNORED,
                )
            ],
        )
        importer = self.importer
        rows: list[list[cloudwatch.IWidget]] = [
            [graph("Objects per minute", objects), pace, runs],
            [
                *function_widgets("Importer", importer.function),
                queue_depth("Dead-letter queue", [("Importer events", importer.dead_letter_queue)]),
            ],
        ]
        if importer.deltas_table is not None:
            rows.append([self._values_widget()])
        return PipelineDashboard(self, "Dashboard", title="Braze import", rows=rows, alarms=importer.alarms)

    @staticmethod
    def _values_widget() -> cloudwatch.GraphWidget:
        """What sending only what changed saves, and what it could not do: the users sent in full
        because their record was not read, will not fit, or was not written."""
        return graph(
            "Attribute values sent vs skipped",
            [
                metric(spec, period=ONE_MINUTE)
                for spec in (telemetry.VALUES_SENT, telemetry.VALUES_SKIPPED, telemetry.OBJECTS_UNCHANGED)
            ],
            right=[
                metric(spec, period=ONE_MINUTE)
                for spec in (telemetry.USERS_TOO_LARGE, telemetry.DELTA_LOOKUP_ERRORS, telemetry.DELTA_COMMIT_ERRORS)
            ],
            width=24,
        )

    def export_importer(self, project: str) -> ImporterExports:
        names = ImporterExports(
            function_arn=f"{project}-ImporterFunctionArn",
            role_arn=f"{project}-ImporterRoleArn",
            runs_table_arn=f"{project}-ImportRunsTableArn",
            runs_table_name=f"{project}-ImportRunsTableName",
        )
        self.export_value(self.importer.function.function_arn, name=names.function_arn)
        self.export_value(self.importer.lambda_.role.role_arn, name=names.role_arn)
        self.export_value(self.importer.runs_table.table_arn, name=names.runs_table_arn)
        self.export_value(self.importer.runs_table.table_name, name=names.runs_table_name)
        return names


def acknowledge_notification_handler(stack: Stack) -> None:
    """CDK's own function that applies bucket notifications at deploy time."""
    for child in stack.node.children:
        if child.node.id.startswith("BucketNotificationsHandler"):
            Validations.of(child).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                    reason="CDK's internal bucket-notifications handler; aws-cdk-lib defines its role.",
                )
            )
