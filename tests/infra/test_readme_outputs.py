"""The README's table of stack outputs names exactly what the templates output, stack by stack, so
a newcomer reading an output by its name finds it."""

from __future__ import annotations

import re

from tests.infra.conftest import Synth
from tests.unit.test_readme import README, parse

PIPELINE_STACKS = ("Import", "Currents", "BulkUpload", "Capture")


def _documented() -> dict[str, dict[str, bool]]:
    """Per stack, each output the README names and whether the table says it is conditional
    (its description starts with "with": made only with a setting)."""
    tables, _ = parse(README)
    (table,) = [t for t in tables if t.header == ["stack", "output", "what it is"]]
    documented: dict[str, dict[str, bool]] = {}
    for stack_cell, output_cell, meaning in table.rows:
        stacks = PIPELINE_STACKS if stack_cell == "every pipeline stack" else tuple(stack_cell.split(", "))
        for stack in stacks:
            for name in re.findall(r"`([^`]+)`", output_cell):
                documented.setdefault(stack, {})[name] = meaning.startswith("with ")
    return documented


def test_the_readme_names_every_output_of_every_stack(synth: Synth) -> None:
    for stack, names in _documented().items():
        outputs = {key for key in synth.template(f"-{stack}").get("Outputs", {}) if not key.startswith("Export")}
        unconditional = {name for name, conditional in names.items() if not conditional}
        assert (outputs - set(names), unconditional - outputs) == (set(), set()), stack


def test_every_pipeline_stack_is_in_the_table() -> None:
    assert sorted(_documented()) == sorted(PIPELINE_STACKS)
