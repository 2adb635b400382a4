"""The importer capability: the function built from ``lambdas/braze_importer``, its runs table, the
table of what was last sent per user (import:deltas), its dead-letter queue, its S3 trigger, the
schedule that starts queued runs, and its alarms."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from ..config import LOG_RETENTION_DAYS, ImportConfig
from ..telemetry import importer as telemetry
from ..telemetry import metric
from .alarm_topic import alarms_at_one
from .dead_letter_queue import dead_letter_queue
from .python_function import PythonFunction
from .secure_bucket import nag_arn
from .table import keyed_table

# The suffixes the importer reads by name (service.format_for; .gz covers .csv.gz and .jsonl.gz). The
# notification cannot list them: warehouse exports (Athena, Redshift UNLOAD) write keys without a
# suffix, which an S3 filter (one prefix and one suffix per rule, rules for the same event never
# overlapping) cannot name beside the others. So every key under the incoming prefix is delivered,
# and the function ignores what it does not read (_SUCCESS, .crc, .tmp, empty suffix-less objects).
SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".gz", ".parquet", ".parq", ".avro")
METRICS_NAMESPACE = telemetry.NAMESPACE
SWEEP_EVERY = Duration.minutes(1)


class BrazeImporter(Construct):
    """Exposes ``function``, ``runs_table``, ``deltas_table`` (None without import:deltas),
    ``dead_letter_queue`` and ``alarms``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ImportConfig,
        bucket: s3.IBucket,
        api_key_secret: secretsmanager.ISecret,
        tracing: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.runs_table = keyed_table(self, "Runs", key="run_id", ttl_attribute="expires_at")
        # Turning deltas off takes the table out of the stack (kept, as every table); turning them on
        # again starts an empty one, so no record survives a time when files were sent without them.
        self.deltas_table = keyed_table(self, "Deltas", key="pk", ttl_attribute="expires_at") if config.deltas else None
        self.dead_letter_queue = dead_letter_queue(self, "DeadLetters", holds="importer events that failed")
        self.lambda_ = PythonFunction(
            self,
            "Importer",
            package="braze_importer",
            description="Streams JSON files from S3 to Braze /users/track",
            timeout=Duration.minutes(15),
            memory_mb=config.memory_mb,
            log_retention=retention_days(config.log_retention_days),
            tracing=tracing,
            # Off by default: Lambda refuses a reservation that leaves fewer than 100 unreserved,
            # and a new account's quota is 10. Concurrent runs are bounded in the runs table.
            reserved_concurrency=config.reserved_concurrency or None,
            environment={
                "BRAZE_REST_ENDPOINT": config.braze_rest_endpoint,
                "BRAZE_API_KEY_SECRET": api_key_secret.secret_arn,
                "RUNS_TABLE": self.runs_table.table_name,
                "IMPORT_BUCKET": bucket.bucket_name,
                "INCOMING_PREFIX": config.incoming_prefix,
                "REPORTS_PREFIX": config.reports_prefix,
                "REJECTS_PREFIX": config.rejects_prefix,
                "FAILED_PREFIX": config.failed_prefix,
                "MAX_IN_FLIGHT": str(config.max_in_flight),
                "WORKSPACE_REQUESTS_PER_SECOND": str(config.workspace_requests_per_second),
                **({"REQUESTS_PER_SECOND": str(config.requests_per_second)} if config.requests_per_second else {}),
                "BATCH_RULE": config.batch_rule,
                "AMBIGUOUS_POLICY": config.ambiguous_policy,
                "MAX_ATTEMPTS": str(config.max_attempts),
                "MAX_HOPS": str(config.max_hops),
                "MAX_CONCURRENT_RUNS": str(config.max_concurrent_runs),
                "CSV_TYPE_CAST": config.csv_type_cast,
                "CATALOG_REQUESTS_PER_MINUTE": str(config.catalog_requests_per_minute),
                "USER_DELETE_REQUESTS_PER_MINUTE": str(config.user_delete_requests_per_minute),
                "ALLOW_USER_DELETES": "true" if config.allow_user_deletes else "false",
                **({"DELTAS_TABLE": self.deltas_table.table_name} if self.deltas_table else {}),
                "DELTA_MAX_AGE_DAYS": str(config.delta_max_age_days),
                "MAX_ARRAY_LENGTH": str(config.max_array_length),
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
            # Long imports continue in fresh invocations of this function; the run records and
            # MAX_HOPS bound the chain, so Lambda's loop detection must not cut it.
            recursive_loop=lambda_.RecursiveLoop.ALLOW,
            retry_attempts=0,
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
            max_event_age=Duration.hours(6),
        )
        self.function = self.lambda_.function
        self._grant(config, bucket, api_key_secret)
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.function),
            s3.NotificationKeyFilter(prefix=config.incoming_prefix),
        )
        self.sweep_rule = self._sweep()
        self.alarms = self._alarms()

    def _sweep(self) -> events.Rule:
        """Queued runs wait in the runs table, not in invocations. A run that gives its slot back
        starts the oldest queued run; this schedule starts queued runs too, so a queue behind a
        holder that died (its lease ran out, nobody released) does not stay stuck."""
        rule = events.Rule(
            self,
            "SweepSchedule",
            description="Starts queued import runs while run slots are free",
            schedule=events.Schedule.rate(SWEEP_EVERY),
        )
        rule.add_target(
            targets.LambdaFunction(
                self.function,
                event=events.RuleTargetInput.from_object({"action": "sweep"}),
                # The next sweep comes in a minute: a stale one is not worth delivering late.
                retry_attempts=2,
                max_event_age=Duration.minutes(5),
                dead_letter_queue=self.dead_letter_queue,
            )
        )
        return rule

    def _grant(self, config: ImportConfig, bucket: s3.IBucket, secret: secretsmanager.ISecret) -> None:
        role = self.lambda_.role
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[bucket.arn_for_objects(f"{config.incoming_prefix}*")],
            )
        )
        outputs = [config.reports_prefix, config.rejects_prefix, config.failed_prefix]
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{p}*") for p in outputs])
        )
        # UpdateItem: a run's note among the active runs is one entry of a shared map item.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[self.runs_table.table_arn],
            )
        )
        if self.deltas_table is not None:
            self._grant_deltas(self.deltas_table, bucket.arn_for_objects(f"{config.incoming_prefix}*"))
        secret.grant_read(role)
        # Self-invocation: a separate policy, so the function does not depend on a policy that
        # depends on the function.
        iam.Policy(
            self,
            "ContinuePolicy",
            roles=[role],
            statements=[iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.function.function_arn])],
        )
        bucket_arn = nag_arn(bucket)
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{bucket_arn}/{config.incoming_prefix}*]",
                reason="Reads the files dropped under the incoming prefix; their names are not known at deploy time.",
            ),
            *[
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::{bucket_arn}/{prefix}*]",
                    reason="Writes run reports, rejects and failed files under its own output prefix.",
                )
                for prefix in outputs
            ],
        )

    def _grant_deltas(self, table: dynamodb.ITable, incoming_objects: str) -> None:
        """What send-only-what-changed needs: the users' records (read in batches, written whole or
        attribute by attribute; never scanned, queried or deleted: the TTL deletes), and the tags of
        the incoming files, one of which asks for a full send (S3 checks GetObjectTagging for an
        object's tags, and GetObjectVersionTagging too for a version's)."""
        role = self.lambda_.role
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[table.table_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObjectTagging", "s3:GetObjectVersionTagging"],
                resources=[incoming_objects],
            )
        )

    def _alarms(self) -> list[cloudwatch.Alarm]:
        dlq_depth = self.dead_letter_queue.metric_approximate_number_of_messages_visible()
        specs = [
            ("DeadLetters", dlq_depth, "An importer event failed and waits in the dead-letter queue."),
            ("Errors", self.function.metric_errors(period=Duration.minutes(5)), "An importer invocation raised."),
            ("FailedObjects", metric(telemetry.OBJECTS_FAILED), "Objects went to the failed file; replay them."),
            (
                "StoppedRuns",
                metric(telemetry.RUNS_STOPPED),
                "A run stopped (credentials, invalid JSON, an unreadable gzip file, hop limit).",
            ),
        ]
        return alarms_at_one(self, specs)


# CloudWatch Logs' retention periods (stacks.config.LOG_RETENTION_DAYS, which synth checks), in order.
_RETENTION = dict(
    zip(
        LOG_RETENTION_DAYS,
        (
            logs.RetentionDays.ONE_DAY,
            logs.RetentionDays.THREE_DAYS,
            logs.RetentionDays.FIVE_DAYS,
            logs.RetentionDays.ONE_WEEK,
            logs.RetentionDays.TWO_WEEKS,
            logs.RetentionDays.ONE_MONTH,
            logs.RetentionDays.TWO_MONTHS,
            logs.RetentionDays.THREE_MONTHS,
            logs.RetentionDays.FOUR_MONTHS,
            logs.RetentionDays.FIVE_MONTHS,
            logs.RetentionDays.SIX_MONTHS,
            logs.RetentionDays.ONE_YEAR,
            logs.RetentionDays.THIRTEEN_MONTHS,
            logs.RetentionDays.EIGHTEEN_MONTHS,
            logs.RetentionDays.TWO_YEARS,
            logs.RetentionDays.THREE_YEARS,
            logs.RetentionDays.FIVE_YEARS,
            logs.RetentionDays.SIX_YEARS,
            logs.RetentionDays.SEVEN_YEARS,
            logs.RetentionDays.EIGHT_YEARS,
            logs.RetentionDays.NINE_YEARS,
            logs.RetentionDays.TEN_YEARS,
        ),
        strict=True,
    )
)


def retention_days(days: int) -> logs.RetentionDays:
    return _RETENTION[days]
