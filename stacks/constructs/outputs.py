"""Stack outputs under the names the README, the deploy check and operators' scripts use."""

from __future__ import annotations

from aws_cdk import CfnOutput
from constructs import Construct


def output(scope: Construct, name: str, *, value: str, description: str | None = None) -> CfnOutput:
    """A stack output whose key is ``name`` wherever in the tree it is defined: an output a construct
    adds would otherwise carry the construct's path and a hash (``ContentApiApiKeyIdBB0C5FC4``).
    A second output of the name in one stack fails synth."""
    made = CfnOutput(scope, name, value=value, description=description)
    made.override_logical_id(name)
    return made
