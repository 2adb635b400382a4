"""Rules AWS enforces only when a template is deployed (or only when something goes wrong after),
checked over every synthesized stack: what cdk synth, cfn-lint and cdk-nag cannot catch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.conftest import ROOT, Synth

pytestmark = pytest.mark.xdist_group("synth")

# What a new account gets (Lambda: reduced quotas until AWS raises them with usage).
NEW_ACCOUNT_LAMBDA_MEMORY_MB = 3008
API_GATEWAY_ACCOUNT_RATE, API_GATEWAY_ACCOUNT_BURST = 10_000, 5_000
LAMBDA_ENVIRONMENT_BYTES = 4096
TOKEN_ESTIMATE = 128  # an ARN, URL or name CloudFormation fills in at deploy time
CLOUDWATCH = "cloudwatch.amazonaws.com"


@pytest.fixture(scope="module")
def templates(synth: Synth) -> dict[str, dict[str, Any]]:
    return {stack.stack_name: dict(stack.template) for stack in synth.assembly.stacks}


def resources(templates: dict[str, dict[str, Any]], kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for stack, template in templates.items():
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == kind:
                yield stack, logical_id, resource


def referenced_id(value: Any) -> str | None:
    """The logical id behind a ``Ref`` or ``Fn::GetAtt``, if that is what ``value`` is."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- finding 3: every alarm reaches its topic ------------------------------------------------------


def grants(statement: dict[str, Any], service: str, actions: set[str]) -> bool:
    principal = statement.get("Principal", {})
    services = as_list(principal.get("Service", [])) if isinstance(principal, dict) else []
    return statement.get("Effect") == "Allow" and service in services and actions <= set(as_list(statement["Action"]))


def scoped_to_this_account(statement: dict[str, Any]) -> bool:
    conditions = statement.get("Condition", {})
    return conditions.get("StringEquals", {}).get("aws:SourceAccount") == {"Ref": "AWS::AccountId"}


def why_topic_cannot_receive_alarms(template: dict[str, Any], topic_id: str) -> str | None:
    topic = template["Resources"].get(topic_id)
    if topic is None or topic["Type"] != "AWS::SNS::Topic":
        return f"{topic_id} is not a topic of this stack"
    key_id = referenced_id(topic["Properties"].get("KmsMasterKeyId"))
    key = template["Resources"].get(key_id or "")
    if key is None or key["Type"] != "AWS::KMS::Key":
        return f"{topic_id} is not encrypted with a customer-managed key of this stack (CloudWatch cannot use aws/sns)"
    if key["Properties"].get("EnableKeyRotation") is not True:
        return f"{key_id} does not rotate"
    key_statements = key["Properties"]["KeyPolicy"]["Statement"]
    if not any(
        grants(s, CLOUDWATCH, {"kms:Decrypt", "kms:GenerateDataKey*"}) and scoped_to_this_account(s)
        for s in key_statements
    ):
        return f"{key_id}'s policy does not let this account's CloudWatch alarms use it"
    policies = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SNS::TopicPolicy" and {"Ref": topic_id} in r["Properties"]["Topics"]
    ]
    if not any(
        grants(s, CLOUDWATCH, {"sns:Publish"}) and scoped_to_this_account(s)
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ):
        return f"{topic_id}'s policy does not let this account's CloudWatch alarms publish"
    return None


def test_every_alarm_action_goes_to_a_topic_cloudwatch_can_publish_to(templates: dict[str, dict[str, Any]]) -> None:
    alarms = list(resources(templates, "AWS::CloudWatch::Alarm"))
    assert len(alarms) >= 10
    problems = []
    for stack, alarm_id, alarm in alarms:
        actions = alarm["Properties"].get("AlarmActions", [])
        if not actions:
            problems.append(f"{stack}/{alarm_id}: no alarm action")
        for action in actions + alarm["Properties"].get("OKActions", []):
            topic_id = referenced_id(action)
            why = why_topic_cannot_receive_alarms(templates[stack], topic_id) if topic_id else f"{action} unknown"
            if why:
                problems.append(f"{stack}/{alarm_id}: {why}")
    assert problems == []


def test_the_topic_rule_catches_the_aws_managed_key_and_a_missing_publish_grant(
    templates: dict[str, dict[str, Any]],
) -> None:
    stack, topic_id, _topic = next(resources(templates, "AWS::SNS::Topic"))
    broken = json.loads(json.dumps(templates[stack]))
    broken["Resources"][topic_id]["Properties"]["KmsMasterKeyId"] = "alias/aws/sns"
    assert "customer-managed" in (why_topic_cannot_receive_alarms(broken, topic_id) or "")
    broken = json.loads(json.dumps(templates[stack]))
    for resource in broken["Resources"].values():
        if resource["Type"] == "AWS::SNS::TopicPolicy":
            statements = resource["Properties"]["PolicyDocument"]["Statement"]
            statements[:] = [s for s in statements if s.get("Effect") == "Deny"]
    assert "publish" in (why_topic_cannot_receive_alarms(broken, topic_id) or "")


def test_every_stack_outputs_its_alarm_topic_and_one_setting_mails_a_person(
    templates: dict[str, dict[str, Any]],
) -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_sns as sns

    import app as app_module

    for stack, template in templates.items():
        if any(r["Type"] == "AWS::CloudWatch::Alarm" for r in template["Resources"].values()):
            assert any("AlarmTopicArn" in key for key in template.get("Outputs", {})), stack
    context = {**json.loads((ROOT / "cdk.json").read_text())["context"], "aws:cdk:bundling-stacks": []}
    app = app_module.build_app(cdk.App(context={**context, "alarms:email": "oncall@example.com"}))
    for stack in app.node.children:
        if isinstance(stack, cdk.Stack) and not stack.stack_name.endswith("ApiGatewayAccount"):
            subs = [c for c in stack.node.find_all() if isinstance(c, sns.CfnSubscription)]
            assert len(subs) == 1, stack.stack_name
            assert subs[0].protocol == "email" and subs[0].endpoint == "oncall@example.com"


# -- finding 4: API Gateway's account-level role ----------------------------------------------------


def test_account_role_and_setting_survive_destroy_and_the_setting_waits_for_the_policy(
    templates: dict[str, dict[str, Any]],
) -> None:
    [(stack, account_id, account)] = list(resources(templates, "AWS::ApiGateway::Account"))
    template = templates[stack]
    role_id = referenced_id(account["Properties"]["CloudWatchRoleArn"])
    assert role_id and template["Resources"][role_id]["Type"] == "AWS::IAM::Role"
    [(_, policy_id, policy)] = [r for r in resources({stack: template}, "AWS::IAM::Policy")]
    assert {"Ref": role_id} in policy["Properties"]["Roles"]
    assert {role_id, policy_id} <= set(account.get("DependsOn", []))
    for logical_id in (account_id, role_id, policy_id):
        resource = template["Resources"][logical_id]
        assert resource.get("DeletionPolicy") == "Retain", logical_id
        assert resource.get("UpdateReplacePolicy") == "Retain", logical_id
    actions = {a for s in policy["Properties"]["PolicyDocument"]["Statement"] for a in as_list(s["Action"])}
    assert {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"} <= actions


def test_stacks_whose_stages_log_deploy_after_the_account_role(synth: Synth) -> None:
    """API Gateway refuses a stage with execution logging while the region has no CloudWatch role."""
    by_name = {s.stack_name: s for s in synth.assembly.stacks}
    account = next(name for name in by_name if name.endswith("-ApiGatewayAccount"))
    logging = [
        name
        for name, stack in by_name.items()
        for r in dict(stack.template)["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::Stage" and r["Properties"].get("MethodSettings")
    ]
    assert logging
    for name in logging:
        assert account in {d.id for d in by_name[name].dependencies}, name


def test_manage_account_role_false_leaves_the_account_setting_alone() -> None:
    import aws_cdk as cdk

    import app as app_module

    context = {**json.loads((ROOT / "cdk.json").read_text())["context"], "aws:cdk:bundling-stacks": []}
    app = app_module.build_app(cdk.App(context={**context, "apiGateway:manageAccountRole": "false"}))
    stacks = [c for c in app.node.children if isinstance(c, cdk.Stack)]
    assert stacks and not any(s.stack_name.endswith("ApiGatewayAccount") for s in stacks)
    assert not any(
        isinstance(c, cdk.CfnResource) and c.cfn_resource_type == "AWS::ApiGateway::Account"
        for s in stacks
        for c in s.node.find_all()
    )


# -- finding 5: failed work survives cdk destroy ----------------------------------------------------


def dead_letter_queues(template: dict[str, Any]) -> set[str]:
    found = set()
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::SQS::Queue":
            target = resource["Properties"].get("RedrivePolicy", {}).get("deadLetterTargetArn")
            found.add(referenced_id(target) or "")
        if resource["Type"] == "AWS::Lambda::EventInvokeConfig":
            failure = resource["Properties"].get("DestinationConfig", {}).get("OnFailure", {})
            found.add(referenced_id(failure.get("Destination")) or "")
    found.discard("")
    return {q for q in found if template["Resources"].get(q, {}).get("Type") == "AWS::SQS::Queue"}


def test_every_dead_letter_queue_is_kept_on_destroy(templates: dict[str, dict[str, Any]]) -> None:
    found = {(stack, q) for stack, t in templates.items() for q in dead_letter_queues(t)}
    assert len(found) >= 3, found  # importer, Currents generation, bulk copy
    for stack, queue in found:
        resource = templates[stack]["Resources"][queue]
        assert resource.get("DeletionPolicy") == "Retain", f"{stack}/{queue}"
        assert resource.get("UpdateReplacePolicy") == "Retain", f"{stack}/{queue}"


def test_dead_letter_queues_keep_messages_longer_than_their_source_queues(templates: dict[str, dict[str, Any]]) -> None:
    """SQS expires a moved message by its original enqueue time: a shorter DLQ retention loses it."""
    for stack, queue_id, queue in resources(templates, "AWS::SQS::Queue"):
        target = referenced_id(queue["Properties"].get("RedrivePolicy", {}).get("deadLetterTargetArn"))
        if target:
            dlq = templates[stack]["Resources"][target]["Properties"]
            source_days = queue["Properties"].get("MessageRetentionPeriod", 345_600)
            assert dlq.get("MessageRetentionPeriod", 345_600) > source_days, f"{stack}/{queue_id}"


NAME_PROPERTIES = (
    "BucketName", "TableName", "QueueName", "LogGroupName", "LogStreamName", "RoleName", "PolicyName", "TopicName",
)  # fmt: skip
# Properties that name another resource (the parent a resource belongs to), not the resource itself.
PARENT_NAMES = {("AWS::IAM::Policy", "PolicyName"), ("AWS::Logs::LogStream", "LogGroupName")}


def test_nothing_kept_on_destroy_has_a_fixed_name(templates: dict[str, dict[str, Any]]) -> None:
    """A kept resource with a fixed name makes the next deploy after `cdk destroy` fail ("already exists")."""
    kept = [
        (stack, logical_id, resource)
        for stack, template in templates.items()
        for logical_id, resource in template["Resources"].items()
        if resource.get("DeletionPolicy") == "Retain"
    ]
    assert len(kept) >= 20
    named = [
        f"{stack}/{logical_id}.{p}"
        for stack, logical_id, resource in kept
        for p in NAME_PROPERTIES
        if p in resource.get("Properties", {}) and (resource["Type"], p) not in PARENT_NAMES
    ]
    assert named == []


# -- quotas and deploy-time checks ------------------------------------------------------------------


def test_no_function_reserves_concurrency_a_new_account_does_not_have(templates: dict[str, dict[str, Any]]) -> None:
    """New accounts may run 10 concurrent executions and Lambda keeps 100 unreserved: any reservation fails."""
    reserved = [
        f"{stack}/{fn_id}"
        for stack, fn_id, fn in resources(templates, "AWS::Lambda::Function")
        if "ReservedConcurrentExecutions" in fn["Properties"]
    ]
    assert reserved == []


def test_functions_fit_a_new_accounts_memory_and_lambdas_environment_limit(
    templates: dict[str, dict[str, Any]],
) -> None:
    for stack, fn_id, fn in resources(templates, "AWS::Lambda::Function"):
        props = fn["Properties"]
        assert props.get("MemorySize", 128) <= NEW_ACCOUNT_LAMBDA_MEMORY_MB, f"{stack}/{fn_id}"
        variables = props.get("Environment", {}).get("Variables", {})
        size = sum(len(k) + (len(v) if isinstance(v, str) else TOKEN_ESTIMATE) for k, v in variables.items())
        assert size <= LAMBDA_ENVIRONMENT_BYTES, f"{stack}/{fn_id}: {size} bytes of environment"


def test_sqs_triggers_have_a_visibility_timeout_covering_the_function(templates: dict[str, dict[str, Any]]) -> None:
    """Lambda refuses the event source mapping at deploy time otherwise."""
    mappings = list(resources(templates, "AWS::Lambda::EventSourceMapping"))
    assert mappings
    for stack, mapping_id, mapping in mappings:
        template = templates[stack]["Resources"]
        queue = template[referenced_id(mapping["Properties"]["EventSourceArn"]) or ""]["Properties"]
        fn = template[referenced_id(mapping["Properties"]["FunctionName"]) or ""]["Properties"]
        assert queue.get("VisibilityTimeout", 30) >= fn.get("Timeout", 3), f"{stack}/{mapping_id}"
        concurrency = mapping["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency")
        assert concurrency is None or 2 <= concurrency <= 1000


def test_api_throttling_fits_the_accounts_default_api_gateway_limits(templates: dict[str, dict[str, Any]]) -> None:
    stages = list(resources(templates, "AWS::ApiGateway::Stage"))
    plans = list(resources(templates, "AWS::ApiGateway::UsagePlan"))
    assert stages and plans
    for stack, stage_id, stage in stages:
        for setting in stage["Properties"].get("MethodSettings", []):
            assert setting.get("ThrottlingRateLimit", 0) <= API_GATEWAY_ACCOUNT_RATE, f"{stack}/{stage_id}"
            assert setting.get("ThrottlingBurstLimit", 0) <= API_GATEWAY_ACCOUNT_BURST, f"{stack}/{stage_id}"
    for stack, plan_id, plan in plans:
        throttle = plan["Properties"].get("Throttle", {})
        assert throttle.get("RateLimit", 0) <= API_GATEWAY_ACCOUNT_RATE, f"{stack}/{plan_id}"
        assert throttle.get("BurstLimit", 0) <= API_GATEWAY_ACCOUNT_BURST, f"{stack}/{plan_id}"


def test_every_key_policy_keeps_the_account_in_control(templates: dict[str, dict[str, Any]]) -> None:
    """KMS refuses a key policy that would lock the account out of the key."""
    keys = list(resources(templates, "AWS::KMS::Key"))
    assert keys
    for stack, key_id, key in keys:
        statements = key["Properties"]["KeyPolicy"]["Statement"]
        assert any(s["Effect"] == "Allow" and s["Action"] == "kms:*" and "AWS" in s["Principal"] for s in statements), (
            f"{stack}/{key_id}"
        )


def test_every_stack_demands_the_modern_bootstrap_with_a_clear_message(templates: dict[str, dict[str, Any]]) -> None:
    """A fresh account or region needs `cdk bootstrap` (version 6+, default qualifier) first."""
    for stack, template in templates.items():
        parameter = template["Parameters"]["BootstrapVersion"]
        assert parameter["Default"] == "/cdk-bootstrap/hnb659fds/version", stack
        rule = template["Rules"]["CheckBootstrapVersion"]["Assertions"][0]
        assert "cdk bootstrap" in rule["AssertDescription"], stack
        assert rule["Assert"]["Fn::Not"][0]["Fn::Contains"][0] == ["1", "2", "3", "4", "5"], stack


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def rules(c: dict[str, Any]) -> tuple[str, str]:
        found = {r["Name"].lower(): r["Value"] for r in c.get("Filter", {}).get("Key", {}).get("FilterRules", [])}
        return found.get("prefix", ""), found.get("suffix", "")

    (pa, sa), (pb, sb) = rules(a), rules(b)
    same_events = bool(set(a["Events"]) & set(b["Events"]))
    return same_events and (pa.startswith(pb) or pb.startswith(pa)) and (sa.endswith(sb) or sb.endswith(sa))


def test_the_overlap_rule_is_the_one_s3_applies() -> None:
    def config(prefix: str, suffix: str, events: tuple[str, ...] = ("s3:ObjectCreated:*",)) -> dict[str, Any]:
        rules = [{"Name": "prefix", "Value": prefix}, {"Name": "suffix", "Value": suffix}]
        return {"Events": list(events), "Filter": {"Key": {"FilterRules": rules}}}

    assert _overlap(config("incoming/", ".gz"), config("incoming/events/", ".json.gz"))
    assert not _overlap(config("incoming/", ".json"), config("incoming/", ".jsonl"))
    assert not _overlap(config("incoming/", ".gz"), config("currents/", ".gz"))
    assert not _overlap(config("incoming/", ".gz"), config("incoming/", ".gz", ("s3:ObjectRemoved:*",)))


def test_no_two_bucket_notifications_overlap(templates: dict[str, dict[str, Any]]) -> None:
    """S3 refuses overlapping notification filters for the same events when the stack deploys."""
    found = list(resources(templates, "Custom::S3BucketNotifications"))
    assert found
    for stack, logical_id, notifications in found:
        config = notifications["Properties"]["NotificationConfiguration"]
        every = [c for kind in ("LambdaFunctionConfigurations", "QueueConfigurations", "TopicConfigurations")
                 for c in config.get(kind, [])]  # fmt: skip
        clashes = [(i, j) for i in range(len(every)) for j in range(i + 1, len(every)) if _overlap(every[i], every[j])]
        assert clashes == [], f"{stack}/{logical_id}"


# -- the settings behind them ----------------------------------------------------------------------


def test_alarm_email_and_account_role_settings() -> None:
    from stacks.config import AppConfig, ConfigError

    def config(**context: Any) -> AppConfig:
        return AppConfig.from_context(context.get)

    assert config().alarm_email is None and config().manage_api_gateway_account_role is True
    assert config(**{"alarms:email": "ops@example.com"}).alarm_email == "ops@example.com"
    assert config(alarmEmail="ops@example.com").alarm_email == "ops@example.com", "the older key still works"
    assert config(**{"alarms:email": "", "alarmEmail": "a@example.com"}).alarm_email == "a@example.com"
    for value, expected in (("false", False), (False, False), ("true", True), (True, True)):
        assert config(**{"apiGateway:manageAccountRole": value}).manage_api_gateway_account_role is expected
    for bad in ("ops", "ops@example", "a@example.com,b@example.com", "a b@example.com"):
        with pytest.raises(ConfigError, match="alarms:email"):
            config(**{"alarms:email": bad})
