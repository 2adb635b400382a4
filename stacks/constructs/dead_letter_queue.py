"""The dead-letter queues of this app: encrypted, TLS only, messages kept two weeks, and the queue
kept on ``cdk destroy`` like the buckets and tables (its messages are work that failed)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_sqs as sqs
from constructs import Construct


def dead_letter_queue(scope: Construct, construct_id: str, *, holds: str) -> sqs.Queue:
    """A queue for what failed; ``holds`` says what, for the acknowledgement of AwsSolutions-SQS3."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
        removal_policy=RemovalPolicy.RETAIN,
    )
    Validations.of(queue).acknowledge(
        Acknowledgment(id="AwsSolutions-SQS3", reason=f"This queue is itself a dead-letter queue: {holds}.")
    )
    return queue
