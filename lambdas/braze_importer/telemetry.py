"""Every metric the importer emits, declared once (namespace, name, unit, dimensions).

The handler emits only through these declarations and the Import stack's alarms and dashboard build
their CloudWatch metrics from them, so an alarm cannot watch a name or a dimension the code never
emits. Standard library only: the CDK app imports this module too."""

from __future__ import annotations

from pipeline_common.metrics import MetricSpec, specs_in


def declared() -> tuple[MetricSpec, ...]:
    """Every metric declared in this module, in declaration order."""
    return specs_in(globals())


NAMESPACE = "BrazeImport"
SERVICE = "braze-importer"


def _count(name: str) -> MetricSpec:
    return MetricSpec(NAMESPACE, SERVICE, name)


OBJECTS_READ = _count("ObjectsRead")
OBJECTS_ACCEPTED = _count("ObjectsAccepted")
OBJECTS_REJECTED = _count("ObjectsRejected")
OBJECTS_FAILED = _count("ObjectsFailed")
OBJECTS_AMBIGUOUS = _count("ObjectsAmbiguous")
REQUESTS = _count("Requests")  # Braze requests sent (/users/track, catalog items and /users/delete alike)
RETRIES = _count("Retries")
THROTTLED = _count("Throttled")  # 429 answers
RUNS_STOPPED = _count("RunsStopped")
RUNS_QUEUED = _count("RunsQueued")
QUEUED_RUNS_STARTED = _count("QueuedRunsStarted")
EVENTS_IGNORED = _count("EventsIgnored")  # e.g. s3:TestEvent
# Send only what changed (attributes objects): values read, sent, and left out as Braze already holds them.
VALUES_READ = _count("AttributeValuesRead")
VALUES_SENT = _count("AttributeValuesSent")
VALUES_SKIPPED = _count("AttributeValuesSkipped")
OBJECTS_UNCHANGED = _count("ObjectsUnchanged")  # not sent at all: every value unchanged
USERS_TOO_LARGE = _count("UsersTooLarge")  # sent in full: their record would not fit one item
DELTA_LOOKUP_ERRORS = _count("DeltaLookupErrors")  # records not read: those users were sent in full
DELTA_COMMIT_ERRORS = _count("DeltaCommitErrors")  # records not written: those users are sent in full next time
