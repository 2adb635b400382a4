"""A Python 3.14 arm64 Lambda function bundled without Docker, with its own log group and role.

Bundling installs the package's requirements with pip for the Lambda platform (manylinux2014
aarch64, CPython 3.14, wheels only, so pip never picks wheels for the Python running it) and
copies the package next to them; handlers are ``<package>.<module>.<function>``.

The role carries only what the function is granted plus writing to its own log group, instead of
the AWSLambdaBasicExecutionRole managed policy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, Duration, ILocalBundling, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

LAMBDAS_DIR = Path(__file__).resolve().parents[2] / "lambdas"
RUNTIME = lambda_.Runtime.PYTHON_3_14
PIP_PLATFORM = ("--platform", "manylinux2014_aarch64", "--implementation", "cp", "--python-version", "3.14")


def bundle(package: str, output_dir: Path) -> None:
    """Install the package's runtime requirements for Lambda and copy the package beside them."""
    source = LAMBDAS_DIR / package
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            *PIP_PLATFORM, "--only-binary=:all:", "--target", str(output_dir),
            "--requirement", str(source / "requirements.txt"),
        ],
        check=True,
    )  # fmt: skip
    shutil.copytree(
        source,
        output_dir / package,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.txt"),
        dirs_exist_ok=True,
    )


@jsii.implements(ILocalBundling)
class _PipBundler:
    def __init__(self, package: str) -> None:
        self._package = package

    def try_bundle(self, output_dir: str, *, image: Any = None, **_: Any) -> bool:
        bundle(self._package, Path(output_dir))
        return True


class PythonFunction(Construct):
    """Exposes ``function``, ``role`` and ``log_group``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        package: str,
        description: str,
        environment: dict[str, str],
        timeout: Duration,
        memory_mb: int,
        log_retention: logs.RetentionDays,
        reserved_concurrency: int | None = None,
        handler: str = "handler.handler",
        **function_props: Any,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN)
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        code = lambda_.Code.from_asset(
            str(LAMBDAS_DIR / package),
            asset_hash_type=AssetHashType.SOURCE,
            bundling=BundlingOptions(image=RUNTIME.bundling_image, local=_PipBundler(package)),
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"{package}.{handler}",
            code=code,
            description=description,
            environment={"POWERTOOLS_SERVICE_NAME": package.replace("_", "-"), **environment},
            timeout=timeout,
            memory_size=memory_mb,
            role=self.role,
            log_group=self.log_group,
            reserved_concurrent_executions=reserved_concurrency,
            **function_props,
        )
