"""Every metric the bulk-upload functions emit, declared once (namespace, name, unit, dimensions).

The copier and the dead-letter consumer emit only through these declarations and the BulkUpload
stack's alarms and dashboard build their CloudWatch metrics from them. Standard library only: the
CDK app imports this module too."""

from __future__ import annotations

from dataclasses import dataclass


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


def declared() -> tuple[MetricSpec, ...]:
    """Every metric declared in this module, in declaration order."""
    return tuple(v for v in globals().values() if isinstance(v, MetricSpec))


NAMESPACE = "BrazeBulkUpload"
SERVICE = "bulk-upload-copier"  # the dead-letter consumer reports its failed jobs under the copier


def _count(name: str) -> MetricSpec:
    return MetricSpec(NAMESPACE, SERVICE, name)


COPIES_DONE = _count("CopiesDone")
COPIES_FAILED = _count("CopiesFailed")
COPY_RETRIES = _count("CopyRetries")
COPY_HANDOVERS = _count("CopyHandovers")
IMPORTS_REQUESTED = _count("ImportsRequested")
BYTES_COPIED = MetricSpec(NAMESPACE, SERVICE, "BytesCopied", "Bytes")
COPY_DURATION = MetricSpec(NAMESPACE, SERVICE, "CopyDuration", "Milliseconds")  # one copy attempt (or hop)
