"""The post-deploy check's pieces: finding outputs, refusing a check object that would start a run,
turning Bedrock's refusals into the step a person must take, and the exit code."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import deploycheck.__main__ as deploycheck_main
from deploycheck import checks
from deploycheck.__main__ import report, run
from deploycheck.bedrock import FakeBedrock, missing_step, model_answers
from deploycheck.deployment import MissingOutput, Stack
from deploycheck.results import Result


def test_outputs_are_found_by_name_and_in_older_stacks_by_path_name_and_hash() -> None:
    older = {"ContentApiUrl0FEFCBC5": "u", "ContentApiApiKeyIdBB0C5FC4": "k", "ContentApiUrlLike": "x", "Plain": "p"}
    stack = Stack("P-Currents", "CREATE_COMPLETE", older)
    assert (stack.output("ApiUrl"), stack.output("ApiKeyId"), stack.output("Plain")) == ("u", "k", "p")
    assert Stack("P-Currents", "CREATE_COMPLETE", {"ApiUrl": "u"}).output("ApiUrl") == "u"
    with pytest.raises(MissingOutput):
        stack.output("TokenSecretArn")


class _S3:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.calls: list[str] = []

    def get_bucket_notification_configuration(self, Bucket: str) -> dict[str, Any]:
        return self.config

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(f"put {kwargs['Key']}")
        return {"VersionId": "v1"}

    def delete_object(self, **kwargs: Any) -> None:
        self.calls.append(f"delete {kwargs['Key']} {kwargs.get('VersionId')}")


def _rule(prefix: str, suffix: str = "") -> dict[str, Any]:
    rules = [{"Name": "Prefix", "Value": prefix}] + ([{"Name": "Suffix", "Value": suffix}] if suffix else [])
    return {"LambdaFunctionConfigurations": [{"Filter": {"Key": {"FilterRules": rules}}}]}


def test_import_check_writes_and_deletes_the_exact_version() -> None:
    s3 = _S3(_rule("incoming/", ".json"))
    result = checks.import_bucket(s3, Stack("P-Import", "CREATE_COMPLETE", {"ImportBucketName": "b",
                                                                           "IncomingPrefix": "incoming/"}))  # fmt: skip
    assert result.ok is True
    put, delete = s3.calls
    assert put.startswith("put deploy-check/") and delete == f"delete {put.removeprefix('put ')} v1"


@pytest.mark.parametrize(("incoming", "config"), [("", {}), ("incoming/", _rule("")), ("x/", _rule("deploy-", ".txt"))])
def test_import_check_writes_nothing_that_could_start_a_run(incoming: str, config: dict[str, Any]) -> None:
    s3 = _S3(config)
    stack = Stack("P-Import", "CREATE_COMPLETE", {"ImportBucketName": "b", "IncomingPrefix": incoming})
    assert checks.import_bucket(s3, stack).ok is False
    assert s3.calls == []


@pytest.mark.parametrize(
    ("code", "message", "step"),
    [
        ("AccessDeniedException", "Model use case details have not been submitted for this account.", "use-case form"),
        (
            "AccessDeniedException",
            "aws-marketplace:Subscribe is required for the first call",
            "aws-marketplace:Subscribe",
        ),
        (
            "ValidationException",
            "Invocation of model ID x with on-demand throughput isn't supported.",
            "inference profile",
        ),
        ("ResourceNotFoundException", "This model version has reached the end of its life.", "pick another"),
        ("ThrottlingException", "Too many requests", "Service Quotas"),
    ],
)
def test_bedrock_refusals_name_the_missing_step(code: str, message: str, step: str) -> None:
    assert step in missing_step(code, message, "us-east-1")
    result = model_answers(FakeBedrock(error=(code, message)), "anthropic.m", "us-east-1")
    assert result.ok is False and step in result.detail


def test_report_exits_non_zero_on_any_failure_or_when_nothing_passed() -> None:
    out = io.StringIO()
    assert report([Result("a", True, "ok"), Result("b", None, "n/a")], out) == 0
    assert out.getvalue().splitlines() == ["PASS  a: ok", "SKIP  b: n/a", "1 passed, 0 failed, 1 skipped"]
    assert report([Result("a", True, "ok"), Result("b", False, "no")], io.StringIO()) == 1
    assert report([Result("b", None, "n/a")], io.StringIO()) == 1


class _Session:
    region_name = "eu-west-1"

    def __init__(self, stacks: dict[str, dict[str, Any]]) -> None:
        self.stacks = stacks

    def client(self, name: str) -> Any:
        assert name == "cloudformation"
        return self

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        if StackName not in self.stacks:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": f"Stack {StackName} does not exist"}},
                              "DescribeStacks")  # fmt: skip
        return {"Stacks": [self.stacks[StackName]]}


def test_no_deployed_stack_is_a_failure_that_names_the_region() -> None:
    [result] = list(run(_Session({}), "P", http=None))  # type: ignore[arg-type]
    assert result.ok is False and "eu-west-1" in result.detail and "make deploy" in result.detail


def test_a_stack_that_rolled_back_fails_and_a_missing_one_is_skipped() -> None:
    session = _Session({"P-Import": {"StackStatus": "ROLLBACK_COMPLETE", "Outputs": []}})
    results = list(run(session, "P", http=None))  # type: ignore[arg-type]
    assert results[0] == Result("P-Import", False, "stack status ROLLBACK_COMPLETE")
    assert [r.ok for r in results[1:]] == [None, None]


def test_the_check_uses_the_region_cdk_deployed_to(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """cdk reads AWS_REGION first; botocore alone would take the profile's region (or none)."""
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    seen: list[str | None] = []

    def fake_run(session: Any, project: str, **kw: Any) -> list[Any]:
        seen.append(session.region_name)
        return []

    monkeypatch.setattr(deploycheck_main, "run", fake_run)
    deploycheck_main.main([], out=io.StringIO())
    assert seen == ["us-east-1"]
