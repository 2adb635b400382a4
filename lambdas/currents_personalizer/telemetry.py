"""Every metric the Currents functions emit, declared once (namespace, name, unit, dimensions).

The personalizer and generator emit only through these declarations (a Report field or an outcome
finds its metric in FILE_METRICS / OUTCOME_METRICS, never by building a name) and the
Currents stack's alarms and dashboard build their CloudWatch metrics from them. Standard library
only: the CDK app imports this module too."""

from __future__ import annotations

from pipeline_common.metrics import MetricSpec, specs_in


def declared() -> tuple[MetricSpec, ...]:
    """Every metric declared in this module, in declaration order."""
    return specs_in(globals())


NAMESPACE = "BrazeCurrents"
PERSONALIZER = "currents-personalizer"
GENERATOR = "currents-generator"


def _file(name: str) -> MetricSpec:
    return MetricSpec(NAMESPACE, PERSONALIZER, name)


def _generation(name: str) -> MetricSpec:
    return MetricSpec(NAMESPACE, GENERATOR, name)


# The personalizer, per invocation: Report fields summed over its files.
RECORDS = _file("Records")
KEPT = _file("Kept")
DUPLICATES = _file("Duplicates")
NO_INTENT = _file("NoIntent")
FUTURE_CLAMPED = _file("FutureClamped")
USERS = _file("Users")
UPDATED = _file("Updated")
SCHEDULED = _file("Scheduled")
FILE_METRICS = {
    "records": RECORDS,
    "kept": KEPT,
    "duplicates": DUPLICATES,
    "no_intent": NO_INTENT,
    "future_clamped": FUTURE_CLAMPED,
    "users": USERS,
    "updated": UPDATED,
    "scheduled": SCHEDULED,
}

# The generator, one per generation: its outcome (a Report field).
GENERATED = _generation("Generated")
CAPPED = _generation("Capped")  # the hourly cap was reached: offline content
POLICY_FALLBACKS = _generation("PolicyFallbacks")
SUPERSEDED = _generation("Superseded")
SKIPPED_FRESH = _generation("SkippedFresh")
DEFERRED = _generation("Deferred")
SKIPPED_CLAIMED = _generation("SkippedClaimed")
FAILED = _generation("Failed")
OUTCOME_METRICS = {
    "generated": GENERATED,
    "capped": CAPPED,
    "policy_fallbacks": POLICY_FALLBACKS,
    "superseded": SUPERSEDED,
    "skipped_fresh": SKIPPED_FRESH,
    "deferred": DEFERRED,
    "skipped_claimed": SKIPPED_CLAIMED,
    "failed": FAILED,
}
NO_TIME_LEFT = _generation("NoTimeLeft")
BEDROCK_LATENCY = MetricSpec(NAMESPACE, GENERATOR, "BedrockLatency", "Milliseconds")  # one Converse call
BEDROCK_THROTTLES = _generation("BedrockThrottles")  # Converse calls answered ThrottlingException
