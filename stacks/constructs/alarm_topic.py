"""Where a stack's alarms go: an encrypted, TLS-only SNS topic, optionally mailed to someone."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class AlarmTopic(Construct):
    """Exposes ``topic``; ``watch(alarms)`` sends their state changes to it."""

    def __init__(self, scope: Construct, construct_id: str, *, email: str | None) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            master_key=kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
            enforce_ssl=True,
        )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))

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
