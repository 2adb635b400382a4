"""What is deployed: each stack's status and outputs, from CloudFormation DescribeStacks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

PIPELINES = ("Import", "Currents", "BulkUpload")
HEALTHY = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")


class MissingOutput(LookupError):
    pass


@dataclass
class Stack:
    name: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)

    def output(self, name: str) -> str:
        """The one output named ``name``; in a stack deployed before outputs had fixed names, the one
        named the construct's path, ``name`` and a hash (``ContentApiApiKeyIdBB0C5FC4`` for ``ApiKeyId``)."""
        found = [v for k, v in self.outputs.items() if k == name or _hashed(k, name)]
        if len(found) != 1:
            raise MissingOutput(f"{self.name} has {len(found)} outputs named {name}")
        return found[0]

    def outputs_containing(self, part: str) -> list[str]:
        return [v for k, v in sorted(self.outputs.items()) if part in k]


def _hashed(key: str, name: str) -> bool:
    head, suffix = key[:-8], key[-8:]
    return head.endswith(name) and len(suffix) == 8 and all(c in "0123456789ABCDEF" for c in suffix)


def describe(cloudformation: Any, project: str) -> dict[str, Stack | None]:
    """Each pipeline's stack, or None when it is not deployed in this account and region."""
    stacks: dict[str, Stack | None] = {}
    for pipeline in PIPELINES:
        name = f"{project}-{pipeline}"
        try:
            [found] = cloudformation.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                stacks[pipeline] = None
                continue
            raise
        outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
        stacks[pipeline] = Stack(name=name, status=found["StackStatus"], outputs=outputs)
    return stacks


def function_environments(cloudformation: Any, stack: Stack) -> list[dict[str, Any]]:
    """The environment variables of the stack's functions, as deployed."""
    body = cloudformation.get_template(StackName=stack.name)["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    return [
        dict(r.get("Properties", {}).get("Environment", {}).get("Variables", {}))
        for r in template.get("Resources", {}).values()
        if r.get("Type") == "AWS::Lambda::Function"
    ]
