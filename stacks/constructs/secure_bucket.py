"""An S3 bucket as every bucket of this app should be: private, encrypted, TLS only, versioned,
with server access logs in a companion bucket."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

# What every bucket of this app has, the access-log bucket included.
_PROTECTED: dict[str, Any] = {
    "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
    "encryption": s3.BucketEncryption.S3_MANAGED,
    "enforce_ssl": True,
    "removal_policy": RemovalPolicy.RETAIN,
}


def nag_arn(bucket: s3.IBucket) -> str:
    """The bucket's ARN as cdk-nag names it in a finding's resource (``<LogicalId.Arn>``), for
    acknowledging a wildcard under one of its prefixes."""
    return f"<{Stack.of(bucket).get_logical_id(bucket.node.default_child)}.Arn>"  # type: ignore[arg-type]


class SecureBucket(Construct):
    """Exposes ``bucket`` and ``access_logs``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        versioned: bool = True,
        lifecycle_rules: Sequence[s3.LifecycleRule] = (),
        noncurrent_version_days: int = 30,
        event_bridge_enabled: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = s3.Bucket(
            self, "AccessLogs", lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))], **_PROTECTED
        )
        rules = list(lifecycle_rules)
        if versioned:
            rules.append(
                s3.LifecycleRule(
                    noncurrent_version_expiration=Duration.days(noncurrent_version_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            versioned=versioned,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="access/",
            lifecycle_rules=rules,
            event_bridge_enabled=event_bridge_enabled,
            **_PROTECTED,
        )
