"""A pipeline's CloudWatch dashboard: a title, rows of graphs, and the state of the stack's alarms.

Each pipeline stack builds one (CloudFormation names it, so two deployments of the app never
collide) and a stack output links to it in the console. Custom metrics come from the Lambda
packages' declarations (``stacks.telemetry.metric``), AWS metrics from the constructs' helpers.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, CfnMapping, CfnOutput, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

ONE_MINUTE = Duration.minutes(1)
FIVE_MINUTES = Duration.minutes(5)
WIDTH = 8  # three graphs a row
HEIGHT = 6


def graph(
    title: str,
    left: Sequence[cloudwatch.IMetric],
    *,
    right: Sequence[cloudwatch.IMetric] = (),
    annotations: Sequence[cloudwatch.HorizontalAnnotation] = (),
    width: int = WIDTH,
) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(
        title=title,
        left=list(left),
        right=list(right),
        left_annotations=list(annotations) or None,
        left_y_axis=cloudwatch.YAxisProps(min=0),
        width=width,
        height=HEIGHT,
    )


def function_widgets(title: str, function: lambda_.IFunction) -> list[cloudwatch.IWidget]:
    """Invocations and errors, and duration p50/p99/max, of one function."""
    return [
        graph(
            f"{title}: invocations and errors",
            [function.metric_invocations(period=FIVE_MINUTES)],
            right=[function.metric_errors(period=FIVE_MINUTES), function.metric_throttles(period=FIVE_MINUTES)],
        ),
        graph(
            f"{title}: duration (ms)",
            [
                function.metric_duration(statistic=statistic, period=FIVE_MINUTES, label=f"Duration {statistic}")
                for statistic in ("p50", "p99", "Maximum")
            ],
        ),
    ]


def api_traffic(title: str, api: apigw.RestApiBase) -> cloudwatch.GraphWidget:
    """Requests of a REST API, and its 4XX and 5XX answers."""
    return graph(
        title,
        [api.metric_count(period=FIVE_MINUTES, label="Requests")],
        right=[
            api.metric_client_error(period=FIVE_MINUTES, label="4XX"),
            api.metric_server_error(period=FIVE_MINUTES, label="5XX"),
        ],
    )


def queue_depth(title: str, queues: Sequence[tuple[str, sqs.IQueue]]) -> cloudwatch.GraphWidget:
    """Messages waiting (and the oldest's age) in dead-letter queues."""
    return graph(
        title,
        [q.metric_approximate_number_of_messages_visible(period=ONE_MINUTE, label=label) for label, q in queues],
        right=[
            q.metric_approximate_age_of_oldest_message(period=ONE_MINUTE, label=f"{label} oldest (s)")
            for label, q in queues
        ],
    )


def denials(title: str, access_logs: logs.ILogGroup) -> cloudwatch.LogQueryWidget:
    """401 and 403 answers of a REST API from its JSON access log: the authorizer's denials (and calls
    without an API key). API Gateway publishes no metric of its own for them."""
    return cloudwatch.LogQueryWidget(
        title=title,
        log_group_names=[access_logs.log_group_name],
        query_lines=[
            "fields @timestamp, status",
            'filter status = "401" or status = "403"',
            "stats count() as denied by bin(5m), status",
        ],
        view=cloudwatch.LogQueryVisualizationType.BAR,
        width=WIDTH,
        height=HEIGHT,
    )


class PipelineDashboard(Construct):
    """``dashboard``; its console URL is the stack output ``DashboardUrl``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        title: str,
        rows: Sequence[Sequence[cloudwatch.IWidget]],
        alarms: Sequence[cloudwatch.IAlarm],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"# {title}\nStack `{stack.stack_name}`. Runbook: the README's *Dashboards, alarms and runbook*."
                ),
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                alarms=list(alarms),
                width=24,
                height=max(2, 1 + (len(alarms) + 3) // 4),
                sort_by=cloudwatch.AlarmStatusWidgetSortBy.STATE_UPDATED_TIMESTAMP,
            )
        )
        for row in rows:
            self.dashboard.add_widgets(*row)
        consoles = CfnMapping(
            self,
            "Console",
            mapping={
                "aws": {"console": "console.aws.amazon.com"},
                "aws-cn": {"console": "console.amazonaws.cn"},
                "aws-us-gov": {"console": "console.amazonaws-us-gov.com"},
            },
        )
        console = consoles.find_in_map(Aws.PARTITION, "console")
        self.url = (
            f"https://{stack.region}.{console}/cloudwatch/home?region={stack.region}"
            f"#dashboards/dashboard/{self.dashboard.dashboard_name}"
        )
        CfnOutput(stack, "DashboardUrl", value=self.url, description="This pipeline's CloudWatch dashboard")
