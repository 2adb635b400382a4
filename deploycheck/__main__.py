"""``python -m deploycheck [--project NAME] [--region REGION] [-c key=value]... [--sandbox]``

Prints one line per check and exits 1 if any failed (0 otherwise, 2 on usage errors). Needs the
credentials of someone allowed to read the stacks, the API keys and tokens, write and delete one
object in the import bucket, list the alarm topics' subscriptions and call the Bedrock model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

import boto3
import httpx
from botocore.exceptions import BotoCoreError, ClientError

from stacks.config import AppConfig, ConfigError

from . import bedrock as bedrock_check
from . import checks
from .deployment import HEALTHY, MissingOutput, Stack, describe, function_environments
from .results import Result, failed

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = (ClientError, BotoCoreError, httpx.HTTPError, MissingOutput)


def run(
    session: boto3.Session, project: str, *, http: httpx.Client, bedrock: bedrock_check.Converse | None = None
) -> Iterable[Result]:
    cloudformation = session.client("cloudformation")
    try:
        stacks = describe(cloudformation, project)
    except EXPECTED as exc:
        yield failed("stacks", f"cannot read the stacks in {session.region_name}: {exc}")
        return
    if all(stack is None for stack in stacks.values()):
        yield failed("stacks", f"no {project}-* stack in {session.region_name}: run make deploy, or pass --project "
                     "and --region")  # fmt: skip
        return
    for pipeline, stack in stacks.items():
        if stack is None:
            yield Result(f"{project}-{pipeline}", None, "not deployed in this region")
        elif stack.status not in HEALTHY:
            yield failed(stack.name, f"stack status {stack.status}")
        else:
            yield from _pipeline(pipeline, stack, session, http, bedrock, cloudformation)
            yield from _alarms(stack, session)


def _pipeline(
    pipeline: str, stack: Stack, session: boto3.Session, http: httpx.Client, bedrock: Any, cloudformation: Any
) -> Iterable[Result]:
    if pipeline == "Import":
        yield from _attempt("import bucket", lambda: [checks.import_bucket(session.client("s3"), stack)])
    elif pipeline == "Currents":
        yield from _attempt("content API", lambda: list(checks.content_api(http, *_credentials(session, stack), stack)))
        yield from _attempt(bedrock_check.NAME, lambda: [_bedrock(cloudformation, stack, session, bedrock)])
    elif pipeline == "BulkUpload":
        yield from _attempt(
            "bulk-upload API", lambda: list(checks.bulk_upload_api(http, *_credentials(session, stack), stack))
        )


def _credentials(session: boto3.Session, stack: Stack) -> tuple[str, str]:
    return checks.credentials(session.client("apigateway"), session.client("secretsmanager"), stack)


def _alarms(stack: Stack, session: boto3.Session) -> list[Result]:
    return _attempt(f"alarms of {stack.name}", lambda: [checks.alarm_topic(session.client("sns"), stack)])


def _bedrock(cloudformation: Any, stack: Stack, session: boto3.Session, bedrock: Any) -> Result:
    models = sorted(
        {
            env["BEDROCK_MODEL_ID"]
            for env in function_environments(cloudformation, stack)
            if env.get("CONTENT_GENERATOR") == "bedrock" and isinstance(env.get("BEDROCK_MODEL_ID"), str)
        }
    )
    if not models:
        return Result(bedrock_check.NAME, None, "the offline generator is configured (currents:generator)")
    client = bedrock or session.client("bedrock-runtime")
    results = [bedrock_check.model_answers(client, model, str(session.region_name)) for model in models]
    return next((r for r in results if not r.ok), results[0])


def _attempt(name: str, check: Callable[[], list[Result]]) -> list[Result]:
    try:
        return check()
    except EXPECTED as exc:
        return [failed(name, _short(exc))]


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def report(results: Iterable[Result], out: TextIO) -> int:
    counts = {True: 0, False: 0, None: 0}
    for result in results:
        counts[result.ok] += 1
        out.write(result.line + "\n")
        out.flush()
    out.write(f"{counts[True]} passed, {counts[False]} failed, {counts[None]} skipped\n")
    return 1 if counts[False] or not counts[True] else 0


def check_sandbox(deployment: Any, out: TextIO) -> int:
    """Run the checks against a ``sandbox.deployment.SandboxDeployment`` (not yet entered)."""
    with deployment, httpx.Client(timeout=30, follow_redirects=False) as http:
        session = boto3.Session(region_name=deployment.region)
        return report(run(session, deployment.project, http=http, bedrock=deployment.bedrock), out)


def _settings(items: list[str]) -> AppConfig:
    """cdk.json's settings with the ``-c`` ones over them, refused as synth refuses them: checking a
    deployment with a setting it could not have been deployed with would check something else."""
    context = dict(json.loads((ROOT / "cdk.json").read_text()).get("context", {}))
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"-c takes key=value, not {item!r}")
        context[key] = value
    return AppConfig.from_settings(context)


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m deploycheck", description=__doc__.splitlines()[0])
    parser.add_argument("--project", help="stack-name prefix (default: -c project=…, else cdk.json's)")
    parser.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                        help="the -c settings you deployed with, checked as synth checks them "
                             "(project names the stacks)")  # fmt: skip
    parser.add_argument("--sandbox", action="store_true", help="check the local sandbox instead of AWS")
    args = parser.parse_args(argv)
    try:
        # --project names the stacks as -c project=… would: checked the same way.
        config = _settings([*args.context, *([f"project={args.project}"] if args.project else [])])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    project = config.project
    if args.sandbox:
        from sandbox.deployment import SandboxDeployment

        return check_sandbox(SandboxDeployment(project=project), out)
    # cdk reads AWS_REGION before the profile's region; botocore reads only AWS_DEFAULT_REGION and the
    # config file, so without this the check could look at another region than the one deployed to.
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    session = boto3.Session(region_name=region) if region else boto3.Session()
    if not session.region_name:
        parser.error("no AWS region: pass --region, or set AWS_REGION or a region in your AWS profile")
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        return report(run(session, project, http=http), out)


if __name__ == "__main__":
    sys.exit(main())
