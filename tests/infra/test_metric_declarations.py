"""One truth for metric names: every custom metric an alarm or a dashboard widget watches is one a
Lambda package declares, and every declaration is emitted by the code (never a literal name)."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stacks.telemetry import PACKAGES, declared_metrics
from tests.infra.conftest import Synth

pytestmark = pytest.mark.xdist_group("synth")

ROOT = Path(__file__).resolve().parents[2]
LAMBDAS = ROOT / "lambdas"
Watched = tuple[str, str, tuple[tuple[str, str], ...]]


def _dimensions(pairs: list[dict[str, Any]] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((d["Name"], json.dumps(d["Value"]) if not isinstance(d["Value"], str) else d["Value"])
                        for d in pairs or []))  # fmt: skip


def alarm_metrics(template: dict[str, Any]) -> Iterator[tuple[str, Watched]]:
    """(alarm logical id, metric) of every metric an alarm reads, a math expression's too."""
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        if "MetricName" in props:
            yield logical_id, (props["Namespace"], props["MetricName"], _dimensions(props.get("Dimensions")))
        for query in props.get("Metrics", []):
            if "MetricStat" in query:
                m = query["MetricStat"]["Metric"]
                yield logical_id, (m["Namespace"], m["MetricName"], _dimensions(m.get("Dimensions")))


def dashboard_bodies(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each dashboard's body, CloudFormation tokens replaced by ``<token>`` strings."""
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Dashboard":
            continue
        body = resource["Properties"]["DashboardBody"]
        if isinstance(body, dict):  # {"Fn::Join": ["", [...]]}
            body = "".join(p if isinstance(p, str) else "<token>" for p in body["Fn::Join"][1])
        yield logical_id, json.loads(body)


def widget_metrics(body: dict[str, Any]) -> Iterator[Watched]:
    """Every metric of every graph widget: [namespace, name, dim, value, ..., {options}?]."""
    for widget in body["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            parts = [p for p in row if not isinstance(p, dict)]
            if not parts:
                continue  # a math expression: its metrics are rows of their own
            namespace, name, rest = parts[0], parts[1], parts[2:]
            yield namespace, name, tuple(sorted(zip(rest[::2], rest[1::2], strict=True)))


def templates(synth: Synth) -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in synth.template_files()}


def test_every_alarm_watches_a_declared_metric_or_an_aws_one(synth: Synth) -> None:
    declared = declared_metrics()
    undeclared = [
        (name, logical_id, watched)
        for name, template in templates(synth).items()
        for logical_id, watched in alarm_metrics(template)
        if not watched[0].startswith("AWS/") and watched not in declared
    ]
    assert undeclared == []


def test_every_dashboard_widget_watches_a_declared_metric_or_an_aws_one(synth: Synth) -> None:
    declared = declared_metrics()
    seen = 0
    undeclared = []
    for name, template in templates(synth).items():
        for logical_id, body in dashboard_bodies(template):
            for watched in widget_metrics(body):
                seen += 1
                if not watched[0].startswith("AWS/") and watched not in declared:
                    undeclared.append((name, logical_id, watched))
    assert seen > 0
    assert undeclared == []


def test_the_custom_metrics_alarmed_on_are_the_ones_the_code_emits(synth: Synth) -> None:
    """Each stack alarms on at least one custom metric, and all of them are declared (the check above
    would pass vacuously if the stacks stopped alarming on custom metrics at all)."""
    custom = {
        name.split(".")[0]: {w[1] for _, w in alarm_metrics(t) if not w[0].startswith("AWS/")}
        for name, t in templates(synth).items()
    }
    assert {k: v for k, v in custom.items() if v} == {
        k: v for k, v in custom.items() if k.endswith(("-Import", "-Currents", "-BulkUpload", "-Capture"))
    }
    assert all(custom[k] for k in custom if k.endswith(("-Import", "-Currents", "-BulkUpload", "-Capture")))


# -- the code side: declarations are what the handlers emit, and all they emit ----------------------


def _package_modules(package: str) -> list[Path]:
    return sorted(p for p in (LAMBDAS / package).glob("*.py") if p.name != "telemetry.py")


def _add_metric_calls(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_metric"
    ]


def _argument(call: ast.Call, keyword: str, position: int) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return call.args[position] if len(call.args) > position else None


def _telemetry_names(tree: ast.AST) -> set[str]:
    """Names a module takes from its package's telemetry module (``from .telemetry import X``)."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "telemetry" and node.level == 1
        for alias in node.names
    }


def _groups(telemetry: Path) -> dict[str, set[str]]:
    """Each module-level collection of declarations in a telemetry module: its name → its members."""
    groups: dict[str, set[str]] = {}
    for node in ast.parse(telemetry.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict | ast.Tuple | ast.List | ast.Set):
            members = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
            for target in node.targets:
                if isinstance(target, ast.Name):
                    groups[target.id] = members
    return groups


@pytest.mark.parametrize("package", [p.__name__.split(".")[0] for p in PACKAGES])
def test_every_declared_metric_is_emitted_by_its_package(package: str) -> None:
    module = next(p for p in PACKAGES if p.__name__.startswith(f"{package}."))
    declarations = {name for name, value in vars(module).items() if isinstance(value, module.MetricSpec)}
    groups = _groups(LAMBDAS / package / "telemetry.py")
    emitted: set[str] = set()
    for path in _package_modules(package):
        tree = ast.parse(path.read_text())
        if not _add_metric_calls(tree):
            continue
        for name in _telemetry_names(tree):
            emitted |= groups.get(name, {name})
    assert declarations, package
    assert sorted(declarations - emitted) == []


def test_no_metric_is_emitted_under_a_name_or_namespace_written_at_the_call() -> None:
    offences = []
    for path in sorted(LAMBDAS.glob("*/*.py")):
        if path.name == "telemetry.py":
            continue
        tree = ast.parse(path.read_text())
        for call in _add_metric_calls(tree):
            for keyword, position, attribute in (("name", 0, "name"), ("unit", 1, "unit")):
                arg = _argument(call, keyword, position)
                if not (isinstance(arg, ast.Attribute) and arg.attr == attribute):
                    offences.append(f"{path.relative_to(ROOT)}:{call.lineno} {keyword}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Metrics":
                for kw in node.keywords:
                    if kw.arg in ("namespace", "service") and isinstance(kw.value, ast.Constant):
                        offences.append(f"{path.relative_to(ROOT)}:{node.lineno} Metrics({kw.arg}=...)")
    assert offences == []


def test_the_checks_above_catch_a_literal_name_and_an_unreferenced_declaration(tmp_path: Path) -> None:
    tree = ast.parse('metrics.add_metric(name="Made" + "Up", unit=X.unit, value=1)\nMetrics(namespace="N")')
    call = _add_metric_calls(tree)[0]
    assert not isinstance(_argument(call, "name", 0), ast.Attribute)
    telemetry = tmp_path / "telemetry.py"
    telemetry.write_text("A = spec('A')\nB = spec('B')\nBOTH = {'a': A, 'b': B}\n")
    assert _groups(telemetry) == {"BOTH": {"A", "B"}}
    assert _telemetry_names(ast.parse("from .telemetry import BOTH, C as D")) == {"BOTH", "D"}
