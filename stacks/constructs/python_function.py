"""A Python 3.14 arm64 Lambda function bundled without Docker, with its own log group and role.

Bundling installs the package's requirements with pip for the Lambda platform and copies the
package next to them, with ``pipeline_common`` (what every package shares); handlers are
``<package>.<module>.<function>``. pip sees wheels for both
``manylinux_2_28_aarch64`` and ``manylinux2014_aarch64`` (Lambda's Amazon Linux 2023 has glibc
2.34), CPython 3.14 only, wheels only, so it never picks wheels for the Python running it. Every
distribution, transitive ones included, is pinned by the package's ``requirements.lock``
(``make lock`` writes it for this platform); the asset hash covers the package's files, the lock
and the pip arguments, so a bundle that would change gets a new hash and is uploaded again. The
bundle is refused if any wheel in it could not run on Lambda.

The role carries only what the function is granted plus writing to its own log group, instead of
the AWSLambdaBasicExecutionRole managed policy. With ``tracing`` the function traces actively in
X-Ray (Lambda adds the two X-Ray write actions, which have no resource types, to the role); without
it, it has no X-Ray mode and no X-Ray permissions, and the handlers' Powertools Tracer is told to
stay off (``POWERTOOLS_TRACE_DISABLED``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    Acknowledgment,
    AssetHashType,
    BundlingOptions,
    Duration,
    ILocalBundling,
    RemovalPolicy,
    Validations,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

LAMBDAS_DIR = Path(__file__).resolve().parents[2] / "lambdas"
RUNTIME = lambda_.Runtime.PYTHON_3_14
LAMBDA_GLIBC = (2, 34)  # Amazon Linux 2023, the OS of the python3.14 runtime
PIP_PLATFORM = (
    "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux2014_aarch64",
    "--implementation", "cp", "--python-version", "3.14", "--only-binary=:all:",
)  # fmt: skip
LOCK = "requirements.lock"
SHARED = "pipeline_common"  # copied into every bundle beside the package (telemetry and tracing helpers)
# The AWS SDK and what it needs ship with the Python runtime. A package that pulls them in (the
# X-Ray SDK needs botocore) must not bundle its own: a bundled botocore would shadow the runtime's
# and break its boto3, which expects the botocore it came with. Left out of the lock and the
# bundle unless the package's requirements.txt names one itself.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "python-dateutil", "six", "urllib3"})
_NOT_BUNDLED = ("__pycache__", "*.pyc", "requirements.txt", LOCK)


def bundle(package: str, output_dir: Path) -> None:
    """Install the package's pinned runtime requirements for Lambda and copy the package beside them."""
    source = LAMBDAS_DIR / package
    lock = source / LOCK
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            *PIP_PLATFORM, "--target", str(output_dir),
            "--requirement", str(source / "requirements.txt"),
            *(("--constraint", str(lock)) if lock.is_file() else ()),
        ],
        check=True,
    )  # fmt: skip
    remove_runtime_provided(output_dir, keep=set(pins(source / "requirements.txt")))
    problems = lambda_incompatible(output_dir)
    if problems:
        raise RuntimeError(f"the {package} bundle holds wheels Lambda cannot run: {'; '.join(problems)}")
    for name in (package, SHARED):
        shutil.copytree(
            LAMBDAS_DIR / name, output_dir / name, ignore=shutil.ignore_patterns(*_NOT_BUNDLED), dirs_exist_ok=True
        )


def lock(package: str) -> Path:
    """Resolve the package's requirements for the Lambda platform and pin every distribution."""
    source = LAMBDAS_DIR / package
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--dry-run",
                "--ignore-installed", *PIP_PLATFORM, "--target", str(Path(tmp) / "target"),
                "--report", str(report), "--requirement", str(source / "requirements.txt"),
            ],
            check=True,
        )  # fmt: skip
        installs = json.loads(report.read_text())["install"]
    wanted = set(pins(source / "requirements.txt"))
    pinned = sorted(
        f"{name}=={i['metadata']['version']}"
        for i in installs
        if (name := normalise(i["metadata"]["name"])) in wanted or name not in RUNTIME_PROVIDED
    )
    path = source / LOCK
    path.write_text(
        f"# Every runtime distribution of lambdas/{package}, pinned for Lambda (CPython 3.14, arm64).\n"
        "# Written by `make lock` from requirements.txt; do not edit by hand.\n" + "".join(f"{p}\n" for p in pinned)
    )
    return path


def remove_runtime_provided(bundle_dir: Path, *, keep: set[str]) -> None:
    """Uninstall from a pip ``--target`` directory every runtime-provided distribution not in ``keep``
    (each file its RECORD lists, then the emptied directories)."""
    removed = False
    for info in sorted(bundle_dir.glob("*.dist-info")):
        name = normalise(info.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        if name not in RUNTIME_PROVIDED or name in keep:
            continue
        record = info / "RECORD"
        files = [line.split(",", 1)[0] for line in record.read_text().splitlines() if line] if record.is_file() else []
        for relative in files:
            path = (bundle_dir / relative).resolve()
            if path.is_relative_to(bundle_dir.resolve()) and path.is_file():
                path.unlink()
        shutil.rmtree(info, ignore_errors=True)
        removed = True
    if removed:
        for directory in sorted((p for p in bundle_dir.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(directory.iterdir()):
                directory.rmdir()


def pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements or lock file, names normalised."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[normalise(name.split("[", 1)[0])] = version.strip()
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lambda_incompatible(bundle_dir: Path) -> list[str]:
    """What in an installed bundle could not run on Lambda: a wheel none of whose tags fits."""
    problems = []
    for wheel in sorted(bundle_dir.glob("*.dist-info/WHEEL")):
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        if not any(tag_runs_on_lambda(tag) for tag in tags):
            problems.append(f"{wheel.parent.name}: {', '.join(tags) or 'no tags'}")
    return problems


def tag_runs_on_lambda(tag: str) -> bool:
    """Whether a wheel tag (``interpreter-abi-platform``) runs on CPython 3.14, arm64, glibc 2.34."""
    try:
        interpreter, abi, platform = tag.split("-")
    except ValueError:
        return False
    if platform != "any":
        manylinux = re.fullmatch(r"manylinux_(\d+)_(\d+)_aarch64", platform)
        legacy = {"manylinux2014_aarch64": (2, 17)}.get(platform)
        glibc = (int(manylinux[1]), int(manylinux[2])) if manylinux else legacy
        if glibc is None or glibc > LAMBDA_GLIBC:
            return False
    version = re.fullmatch(r"(py|cp)3(\d*)", interpreter)
    if version is None:
        return False
    minor = int(version[2]) if version[2] else 0
    if abi == "none":
        return minor <= 14 and (version[1] == "py" or platform == "any" or minor == 14)
    if abi == "abi3":
        return version[1] == "cp" and minor <= 14
    return abi == "cp314" and interpreter == "cp314"


def asset_hash(package: str) -> str:
    """A hash of everything the bundle is built from: the package's files, its pins, pip's target."""
    digest = hashlib.sha256(json.dumps(PIP_PLATFORM).encode())
    for name in (package, SHARED):
        source = LAMBDAS_DIR / name
        for path in sorted(source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                relative = (Path(name) / path.relative_to(source)).as_posix()
                digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


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
        tracing: bool,
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
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=asset_hash(package),
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
            environment={
                "POWERTOOLS_SERVICE_NAME": package.replace("_", "-"),
                # Off: the Tracer sends nothing and patches nothing (no daemon is listening).
                **({} if tracing else {"POWERTOOLS_TRACE_DISABLED": "true"}),
                **environment,
            },
            timeout=timeout,
            memory_size=memory_mb,
            role=self.role,
            log_group=self.log_group,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE if tracing else lambda_.Tracing.DISABLED,
            **function_props,
        )
        if tracing:
            # Lambda put the X-Ray statement in the role's default policy; the acknowledgement stays
            # on that policy, beside this function's own statements only.
            Validations.of(self.role.node.find_child("DefaultPolicy")).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::*]",
                    reason="X-Ray active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords have no "
                    "resource-level permissions, so they can only be granted on *.",
                )
            )


if __name__ == "__main__":  # make lock: python -m stacks.constructs.python_function lock [PACKAGE...]
    if sys.argv[1:2] != ["lock"]:
        sys.exit("usage: python -m stacks.constructs.python_function lock [PACKAGE...]")
    for name in sys.argv[2:] or sorted(p.parent.name for p in LAMBDAS_DIR.glob("*/requirements.txt")):
        print(lock(name))
