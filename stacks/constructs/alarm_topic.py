"""Where a stack's alarms go: a TLS-only SNS topic that CloudWatch can actually publish to,
optionally mailed to someone.

CloudWatch cannot use the AWS-managed ``alias/aws/sns`` key (its policy cannot admit
``cloudwatch.amazonaws.com``), so the topic is encrypted with a customer-managed key whose policy
lets CloudWatch alarms of this account and region use it, and the topic policy lets them publish.

The key lives in each stack rather than in a shared stack: a cross-stack key would be an export
that pins every pipeline stack to it (no stack could be deployed, destroyed or renamed on its own,
which the app promises); a key costs about 1 USD a month.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from .outputs import output

CLOUDWATCH = "cloudwatch.amazonaws.com"


class AlarmTopic(Construct):
    """Exposes ``topic`` and ``key``; ``watch(alarms)`` sends their state changes to it."""

    def __init__(self, scope: Construct, construct_id: str, *, email: str | None) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # Only alarms of this account and region: no other account's alarm can use key or topic.
        from_our_alarms = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {
                "aws:SourceArn": stack.format_arn(
                    service="cloudwatch",
                    resource="alarm",
                    resource_name="*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            },
        }
        self.key = kms.Key(
            self,
            "Key",
            description=f"Encrypts the alarm topic of {stack.stack_name}; CloudWatch alarms may use it",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,  # it protects only notifications in flight
            pending_window=Duration.days(7),
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsEncryptNotifications",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions=from_our_alarms,
            )
        )
        self.topic = sns.Topic(self, "Topic", master_key=self.key, enforce_ssl=True)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal(CLOUDWATCH)],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=from_our_alarms,
            )
        )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        output(self, "AlarmTopicArn", value=self.topic.topic_arn, description="Alarm topic of this stack")

    def watch(self, alarms: Iterable[cloudwatch.Alarm]) -> None:
        action = actions.SnsAction(self.topic)
        for alarm in alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)


def alarms_at_one(scope: Construct, specs: Iterable[tuple[str, cloudwatch.IMetric, str]]) -> list[cloudwatch.Alarm]:
    """An alarm per (name, metric, description) that fires as soon as the metric reaches 1."""
    return [
        cloudwatch.Alarm(
            scope,
            f"{name}Alarm",
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        for name, metric, description in specs
    ]
