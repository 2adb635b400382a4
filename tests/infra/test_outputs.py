"""Stack outputs under fixed names: the README, the deploy check and operators' scripts name them."""

from __future__ import annotations

import json
import re

import pytest

from tests.infra.conftest import Synth

pytestmark = pytest.mark.xdist_group("synth")
# What CDK appends to the id of an output a construct defines: 8 hex digits of its path's hash.
HASH = re.compile(r"[0-9A-F]{8}$")


def test_no_output_name_carries_a_construct_hash(synth: Synth) -> None:
    outputs = {p.name: list(json.loads(p.read_text()).get("Outputs", {})) for p in synth.template_files()}
    assert sum(map(len, outputs.values())) > 30
    hashed = [(template, name) for template, names in outputs.items() for name in names if HASH.search(name)]
    assert hashed == []


@pytest.mark.parametrize("stack", ["-Currents", "-BulkUpload"])
def test_a_keyed_api_outputs_its_url_key_and_token(synth: Synth, stack: str) -> None:
    outputs = synth.template(stack)["Outputs"]
    assert {"ApiUrl", "ApiKeyId", "TokenSecretArn", "AlarmTopicArn", "DashboardUrl"} <= set(outputs)
    assert outputs["ApiUrl"]["Value"]["Fn::Join"][1][-1] == "/"


def test_the_capture_api_url_is_the_event_path(synth: Synth) -> None:
    outputs = synth.template("-Capture")["Outputs"]
    assert outputs["ApiUrl"]["Value"]["Fn::Join"][1][-1] == "/event"
    assert not [name for name in outputs if name.startswith("ApiEndpoint")]
