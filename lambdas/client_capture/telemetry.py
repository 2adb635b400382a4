"""Every metric the capture functions emit, declared once (namespace, name, unit, dimensions).

The API and transform functions emit only through these declarations and the Capture stack's alarms
and dashboard build their CloudWatch metrics from them. Standard library only: the CDK app imports
this module too."""

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


NAMESPACE = "BrazeClientCapture"
API_SERVICE = "client-capture-api"
TRANSFORM_SERVICE = "client-capture-transform"

EVENTS_ACCEPTED = MetricSpec(NAMESPACE, API_SERVICE, "EventsAccepted")
EVENTS_REFUSED = MetricSpec(NAMESPACE, API_SERVICE, "EventsRefused")  # every refusal, the entry's own fault too
EVENTS_PUT_FAILED = MetricSpec(NAMESPACE, API_SERVICE, "EventsPutFailed")  # refusals the client may retry
EVENTS_TRANSFORMED = MetricSpec(NAMESPACE, TRANSFORM_SERVICE, "EventsTransformed")
EVENTS_FAILED_TRANSFORM = MetricSpec(NAMESPACE, TRANSFORM_SERVICE, "EventsFailedTransform")
