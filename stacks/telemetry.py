"""The Lambda packages' metric declarations, for the stacks' alarms and dashboards.

Each package declares every metric it emits once, in its own ``telemetry`` module (standard
library only); the stacks build their ``cloudwatch.Metric`` from those declarations here, so an
alarm or a widget cannot watch a name or a dimension the code does not emit. ``lambdas/`` is put
on ``sys.path`` once, here (pytest and mypy already have it; ``cdk synth`` via app.py does not).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Protocol

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

LAMBDAS = Path(__file__).resolve().parents[1] / "lambdas"
if str(LAMBDAS) not in sys.path:
    sys.path.append(str(LAMBDAS))

from braze_importer import telemetry as importer  # noqa: E402
from bulk_upload import telemetry as bulk_upload  # noqa: E402
from client_capture import telemetry as capture  # noqa: E402
from currents_personalizer import telemetry as currents  # noqa: E402

PACKAGES = (importer, bulk_upload, capture, currents)


class Declared(Protocol):
    """What the stacks need of a package's ``MetricSpec``."""

    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def dimensions(self) -> dict[str, str]: ...


def metric(
    spec: Declared, *, statistic: str = "Sum", period: Duration | None = None, label: str | None = None
) -> cloudwatch.Metric:
    """The CloudWatch metric of a declaration (per 5 minutes unless told)."""
    return cloudwatch.Metric(
        namespace=spec.namespace,
        metric_name=spec.name,
        dimensions_map=spec.dimensions,
        statistic=statistic,
        period=period or Duration.minutes(5),
        label=label,
    )


def declared_metrics() -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, name, sorted dimensions) of every metric any package declares."""
    return {
        (spec.namespace, spec.name, tuple(sorted(spec.dimensions.items())))
        for package in PACKAGES
        for spec in package.declared()
    }
