"""Every metric the capture functions emit, declared once (namespace, name, unit, dimensions).

The API and transform functions emit only through these declarations and the Capture stack's alarms
and dashboard build their CloudWatch metrics from them. Standard library only: the CDK app imports
this module too."""

from __future__ import annotations

from pipeline_common.metrics import MetricSpec, specs_in


def declared() -> tuple[MetricSpec, ...]:
    """Every metric declared in this module, in declaration order."""
    return specs_in(globals())


NAMESPACE = "BrazeClientCapture"
API_SERVICE = "client-capture-api"
TRANSFORM_SERVICE = "client-capture-transform"

EVENTS_ACCEPTED = MetricSpec(NAMESPACE, API_SERVICE, "EventsAccepted")
EVENTS_REFUSED = MetricSpec(NAMESPACE, API_SERVICE, "EventsRefused")  # every refusal, the entry's own fault too
EVENTS_PUT_FAILED = MetricSpec(NAMESPACE, API_SERVICE, "EventsPutFailed")  # refusals the client may retry
EVENTS_TRANSFORMED = MetricSpec(NAMESPACE, TRANSFORM_SERVICE, "EventsTransformed")
EVENTS_FAILED_TRANSFORM = MetricSpec(NAMESPACE, TRANSFORM_SERVICE, "EventsFailedTransform")
