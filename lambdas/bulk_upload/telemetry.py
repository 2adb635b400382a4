"""Every metric the bulk-upload functions emit, declared once (namespace, name, unit, dimensions).

The copier and the dead-letter consumer emit only through these declarations and the BulkUpload
stack's alarms and dashboard build their CloudWatch metrics from them. Standard library only: the
CDK app imports this module too."""

from __future__ import annotations

from pipeline_common.metrics import MetricSpec, specs_in


def declared() -> tuple[MetricSpec, ...]:
    """Every metric declared in this module, in declaration order."""
    return specs_in(globals())


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
