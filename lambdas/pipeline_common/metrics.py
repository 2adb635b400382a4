"""Custom metrics as the packages declare them (each in its ``telemetry`` module, once) and the CDK
app reads them. Standard library only: the CDK app imports this module too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One custom metric: Powertools Metrics emits it in ``namespace`` with one dimension, ``service``."""

    namespace: str
    service: str
    name: str
    unit: str = "Count"  # a CloudWatch unit name Powertools accepts as a string

    @property
    def dimensions(self) -> dict[str, str]:
        return {"service": self.service}


def specs_in(namespace: Mapping[str, Any]) -> tuple[MetricSpec, ...]:
    """Every metric declared in a module (its ``globals()``), in declaration order."""
    return tuple(v for v in namespace.values() if isinstance(v, MetricSpec))
