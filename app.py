#!/usr/bin/env python3
"""The CDK app: typed config from context, the stacks, and cdk-nag AwsSolutions on all of it."""

from __future__ import annotations

import sys

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.api_gateway_account_stack import ApiGatewayAccountStack
from stacks.bulk_upload_stack import BulkUploadStack
from stacks.capture_stack import CaptureStack
from stacks.config import AppConfig, ConfigError
from stacks.currents_stack import CurrentsStack
from stacks.import_stack import ImportStack


def build_app(app: cdk.App | None = None) -> cdk.App:
    app = app or cdk.App()
    config = AppConfig.from_settings(app.node.get_all_context())
    imports = ImportStack(
        app,
        f"{config.project}-Import",
        config=config,
        description="Braze import: JSON files in S3 streamed to Braze /users/track",
    )
    # The API stacks' stages log, which API Gateway refuses until the region has a CloudWatch role.
    account = (
        ApiGatewayAccountStack(
            app, f"{config.project}-ApiGatewayAccount", description="API Gateway's account-level CloudWatch Logs role"
        )
        if config.manage_api_gateway_account_role
        else None
    )
    currents = CurrentsStack(
        app,
        f"{config.project}-Currents",
        config=config,
        description="Braze Currents personalization: Avro events to generated content for Connected Content",
    )
    importer = imports.export_importer(config.project)
    bulk = BulkUploadStack(
        app,
        f"{config.project}-BulkUpload",
        config=config,
        importer=importer if config.bulk_upload.deliver_to_braze else None,
        description="SAS CI360 bulk upload: a keyed webhook copies staged files into S3 (and on to Braze)",
    )
    if config.bulk_upload.deliver_to_braze:
        bulk.add_stack_dependency(imports)
    # Capture's Firehose writes into the Import stack's bucket, found through an export of its own name.
    import_bucket_export = f"{config.project}-ImportBucketArn"
    imports.export_value(imports.bucket.bucket_arn, name=import_bucket_export)
    capture = CaptureStack(
        app,
        f"{config.project}-Capture",
        config=config,
        import_bucket_export=import_bucket_export,
        description="Client event capture: clients' events through EventBridge and Firehose into the import bucket",
    )
    capture.add_stack_dependency(imports)
    if account is not None:
        currents.add_stack_dependency(account)
        bulk.add_stack_dependency(account)
        capture.add_stack_dependency(account)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> None:
    """Synthesize; a setting the config refuses ends synth with its one-line reason and exit code 2,
    not a traceback (cdk prints this process's stderr and fails)."""
    try:
        app = build_app()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    app.synth()


if __name__ == "__main__":
    main()
