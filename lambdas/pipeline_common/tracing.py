"""X-Ray tracing of every package's handlers (Powertools Tracer; off with POWERTOOLS_TRACE_DISABLED=true,
as in tests, the sandbox and with ``tracing:enabled=false``).

Only botocore is patched: every AWS call becomes a subsegment with its latency and error, minus the
S3 object keys X-Ray's botocore extension records by default (keys can name customers' files).
HTTP clients are left alone: their subsegments carry request URLs (pre-signed ones included),
X-Ray's thread-local context cannot follow concurrent asyncio requests, and a run's thousands of
requests would each add one (bench.tracing measures the per-call cost). Annotations hold counts,
outcomes and our own ids or hashes, never user data, object keys or external ids.
"""

from __future__ import annotations

from aws_lambda_powertools import Tracer

tracer = Tracer(patch_modules=("botocore",))
if not tracer.disabled:
    from aws_xray_sdk.ext.boto_utils import whitelist

    whitelist["services"].pop("s3", None)


def annotate(key: str, value: str | int | bool) -> None:
    """An indexed annotation on the handler's trace (our own names, counts and ids only)."""
    tracer.put_annotation(key, value)  # type: ignore[arg-type]  # Powertools types numbers as numbers.Number
