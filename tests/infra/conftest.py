"""One synthesis of the whole app per test session (jsii start-up costs seconds)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


class Synth:
    def __init__(self, outdir: Path) -> None:
        os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
        import aws_cdk as cdk

        import app as app_module

        context = json.loads((ROOT / "cdk.json").read_text())["context"]
        # CI360 files delivered to Braze: the app at its most connected (cross-stack grants
        # included), checked by cdk-nag and the deploy rules like the rest.
        context = {**context, "bulkUpload:deliverToBraze": True, "aws:cdk:bundling-stacks": []}
        app = cdk.App(outdir=str(outdir), context=context)
        app_module.build_app(app)
        self.assembly = app.synth()  # raises if cdk-nag reports an unacknowledged finding
        self.outdir = outdir

    def template(self, stack_suffix: str) -> dict[str, Any]:
        for stack in self.assembly.stacks:
            if stack.stack_name.endswith(stack_suffix):
                return dict(stack.template)
        raise KeyError(stack_suffix)

    def template_files(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return Synth(tmp_path_factory.mktemp("cdk.out"))
