"""X-Ray tracing as synthesized: every function of ours and every API stage traced when
``tracing:enabled`` (the default), the X-Ray write actions on exactly those roles; with the setting
off, none of it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import ROOT, Synth

pytestmark = pytest.mark.xdist_group("synth")

XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# CDK's own deploy-time handler (S3 notifications custom resource): not our code, it runs only
# while CloudFormation deploys, and CDK offers no tracing setting for it.
CDK_INTERNAL = "BucketNotificationsHandler"


def templates(synth: Synth) -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in synth.template_files()}


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def our_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in of_type(template, "AWS::Lambda::Function").items() if not k.startswith(CDK_INTERNAL)}


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_statements(template: dict[str, Any]) -> list[tuple[list[str], dict[str, Any]]]:
    """(the role logical ids a policy is attached to, one of its statements)."""
    found = []
    for policy in of_type(template, "AWS::IAM::Policy").values():
        roles = [r["Ref"] for r in policy["Properties"].get("Roles", []) if isinstance(r, dict) and "Ref" in r]
        found += [(roles, s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    return found


def test_every_function_of_ours_traces_actively(synth: Synth) -> None:
    counted = 0
    for name, template in templates(synth).items():
        for logical_id, function in our_functions(template).items():
            counted += 1
            assert function["Properties"].get("TracingConfig") == {"Mode": "Active"}, f"{name}/{logical_id}"
            assert "POWERTOOLS_TRACE_DISABLED" not in function["Properties"]["Environment"]["Variables"]
    assert counted >= 12  # importer, 3 Currents, 2 token authorizers, 3 bulk upload, 4 capture


def test_api_stages_trace_unless_their_requests_name_a_user(synth: Synth) -> None:
    # X-Ray's stage segment records the request URL (path and query) and the caller's IP: the
    # Content API's URLs carry Braze and external ids, the capture API's callers are end users.
    traced = {
        name.rsplit("-", 1)[-1].removesuffix(".template"): stage["Properties"].get("TracingEnabled") is True
        for name, template in templates(synth).items()
        for stage in of_type(template, "AWS::ApiGateway::Stage").values()
    }
    assert traced == {"Currents": False, "BulkUpload": True, "Capture": False}


def test_x_ray_actions_only_on_traced_functions_roles_and_alone_on_star(synth: Synth) -> None:
    for name, template in templates(synth).items():
        traced_roles = {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in our_functions(template).values()}
        xray_roles: set[str] = set()
        for roles, statement in policy_statements(template):
            actions = set(listed(statement["Action"]))
            if actions & XRAY:
                # The statement Lambda adds holds the two write actions only, on "*" (they have no resources).
                assert actions == XRAY and statement["Resource"] == "*" and statement["Effect"] == "Allow"
                xray_roles.update(roles)
            elif statement.get("Resource") == "*" or "*" in listed(statement.get("Resource")):
                # Any other "*" must carry its own narrowing condition (the Marketplace subscription):
                # the IAM5 acknowledgement for X-Ray must not hide an unconditioned wildcard.
                assert statement.get("Condition"), f"{name}: {statement}"
        assert xray_roles == traced_roles, name


def test_tracing_off_leaves_no_trace_of_x_ray() -> None:
    # No second synth of the app: build it with the setting off and read every stack's resources from
    # the construct tree, resolved by their stacks; only the Capture stack is synthesized.
    import aws_cdk as cdk
    from aws_cdk import aws_apigateway as apigw
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_lambda as lambda_

    import app as app_module

    context = {
        **json.loads((ROOT / "cdk.json").read_text())["context"],
        "aws:cdk:bundling-stacks": [],
        "tracing:enabled": "false",
    }
    app = app_module.build_app(cdk.App(context=context))
    functions = stages = 0
    for node in app.node.find_all():
        stack = cdk.Stack.of(node) if not isinstance(node, cdk.App) else None
        if isinstance(node, lambda_.CfnFunction) and CDK_INTERNAL not in node.node.path:
            functions += 1
            assert node.tracing_config is None, node.node.path
        elif isinstance(node, apigw.CfnStage):
            stages += 1
            assert not node.tracing_enabled, node.node.path
        elif isinstance(node, iam.CfnPolicy):
            document = json.dumps(stack.resolve(node.policy_document))  # type: ignore[union-attr]
            assert "xray:" not in document, node.node.path
    assert functions >= 12 and stages == 3
    # The environment is rendered at synthesis: one stack's template tells the handlers' Tracer is off.
    capture = next(c for c in app.node.children if isinstance(c, cdk.Stack) and c.stack_name.endswith("-Capture"))
    template = cdk.assertions.Template.from_stack(capture, skip_cyclical_dependencies_check=True).to_json()
    variables = [f["Properties"]["Environment"]["Variables"] for f in our_functions(template).values()]
    assert len(variables) == 4 and all(v["POWERTOOLS_TRACE_DISABLED"] == "true" for v in variables)


def test_the_setting_reads_as_a_boolean() -> None:
    from stacks.config import AppConfig, ConfigError

    assert AppConfig.from_context({}.get).tracing is True
    assert AppConfig.from_context({"tracing:enabled": False}.get).tracing is False
    assert AppConfig.from_context({"tracing:enabled": "false"}.get).tracing is False
    with pytest.raises(ConfigError, match="tracing:enabled"):
        AppConfig.from_context({"tracing:enabled": "maybe"}.get)
