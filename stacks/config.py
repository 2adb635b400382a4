"""Typed configuration, read once from CDK context in app.py and passed down as props.

Every setting has a context key (``cdk.json`` holds the defaults; ``cdk deploy -c key=value``
overrides one) and is documented in the README.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args, get_type_hints


class ConfigError(ValueError):
    pass


_CAST_PAIR = r"\s*[^=,\s][^=,]*=\s*(?i:string|integer|float|boolean)\s*"
_CSV_CAST = re.compile(f"{_CAST_PAIR}(?:,{_CAST_PAIR})*")
# Items a custom attribute array holds at most, whatever the workspace's setting ("Arrays": up to 500
# items, https://www.braze.com/docs/user_guide/data/activation/custom_data/data_types/).
MAX_BRAZE_ARRAY = 500


@dataclass(frozen=True, kw_only=True)
class ImportConfig:
    braze_rest_endpoint: str = "https://rest.iad-01.braze.com"
    incoming_prefix: str = "incoming/"
    reports_prefix: str = "reports/"
    rejects_prefix: str = "rejects/"
    failed_prefix: str = "failed/"
    max_concurrent_runs: int = 2  # bounded by slot records in the runs table, not by Lambda
    reserved_concurrency: int = 0  # 0: none (a new account cannot reserve any)
    # Braze's /users/track limit for the workspace (3,000 per 3 s by default): one run alone takes
    # all of it, concurrent runs divide it among themselves through the runs table.
    workspace_requests_per_second: float = 1000.0
    requests_per_second: float = 0.0  # an optional ceiling for one run; 0: none (its share)
    max_in_flight: int = 80
    batch_rule: Literal["combined", "combined_50", "per_array"] = "combined"
    ambiguous_policy: Literal["resend", "fail"] = "resend"
    max_attempts: int = 6
    max_hops: int = 1000
    memory_mb: int = 1769
    output_retention_days: int = 90
    log_retention_days: int = 90
    csv_type_cast: str = ""  # CSV column types overriding inference: "zip=string,level=integer"
    # The limits of Braze's other endpoint groups, each shared only by the runs sending to it.
    catalog_requests_per_minute: int = 16_000  # the asynchronous catalog item endpoints together
    user_delete_requests_per_minute: int = 20_000  # /users/delete
    allow_user_deletes: bool = False  # files under user-deletes/ delete users only when true
    # Send only what changed: attributes objects are diffed against what was last set per user, kept
    # in a DynamoDB table (created only when true).
    deltas: bool = True
    # A user's record older than this (since its last full rewrite) is ignored, and DynamoDB's TTL
    # deletes it this long after that rewrite.
    delta_max_age_days: int = 30
    # The workspace's maximum array length for custom attributes (Braze keeps the last that many
    # items): a longer array is sent whole, never diffed.
    max_array_length: int = 25

    def __post_init__(self) -> None:
        for name, value in (
            ("catalogRequestsPerMinute", self.catalog_requests_per_minute),
            ("userDeleteRequestsPerMinute", self.user_delete_requests_per_minute),
        ):
            if not 1 <= value <= 1_000_000:
                raise ConfigError(f"import:{name} must be between 1 and 1000000")
        if self.delta_max_age_days < 1:
            raise ConfigError("import:deltaMaxAgeDays must be at least 1")
        if not 1 <= self.max_array_length <= MAX_BRAZE_ARRAY:
            raise ConfigError(
                f"import:maxArrayLength must be between 1 and {MAX_BRAZE_ARRAY} (Braze's largest array length)"
            )
        if self.csv_type_cast and not _CSV_CAST.fullmatch(self.csv_type_cast):
            raise ConfigError(
                "import:csvTypeCast must be column=type pairs separated by commas, "
                "each type one of string, integer, float, boolean (e.g. zip=string,level=integer)"
            )
        outputs = (
            ("reportsPrefix", self.reports_prefix),
            ("rejectsPrefix", self.rejects_prefix),
            ("failedPrefix", self.failed_prefix),
        )
        for name, prefix in (("incomingPrefix", self.incoming_prefix), *outputs):
            if not prefix.endswith("/"):
                raise ConfigError(f"import:{name} must end with '/', not {prefix!r}")
        for name, prefix in outputs:
            if prefix.startswith(self.incoming_prefix) or self.incoming_prefix.startswith(prefix):
                raise ConfigError(f"import:{name} must not overlap import:incomingPrefix, or outputs would start runs")
        if not self.braze_rest_endpoint.startswith("https://"):
            raise ConfigError("import:brazeRestEndpoint must be an https:// URL")
        if not 1 <= self.max_concurrent_runs <= 100:
            raise ConfigError("import:maxConcurrentRuns must be between 1 and 100")
        if self.reserved_concurrency and self.reserved_concurrency < self.max_concurrent_runs:
            raise ConfigError("import:reservedConcurrency must be 0 (none) or at least import:maxConcurrentRuns")
        if not 0 < self.workspace_requests_per_second <= 100_000:
            raise ConfigError("import:workspaceRequestsPerSecond must be above 0 and at most 100000")
        if not 0 <= self.requests_per_second <= self.workspace_requests_per_second:
            raise ConfigError(
                "import:requestsPerSecond (a ceiling for one run; 0 = none) must stay within "
                "import:workspaceRequestsPerSecond, the workspace's Braze rate limit that concurrent runs share"
            )


# The Currents event types kept by default: the same list as the personalizer's own default
# (lambdas/currents_personalizer/events.py) and the README's Braze set-up; a test holds them equal.
CURRENTS_EVENT_TYPES = (
    "users.behaviors.CustomEvent",
    "users.behaviors.Purchase",
    "users.messages.email.Open",
    "users.messages.email.Click",
    "users.messages.pushnotification.Open",
    "users.behaviors.app.SessionStart",
)
# The default model: a cross-Region inference profile of an active model on Bedrock's lifecycle page.
DEFAULT_BEDROCK_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
# Bedrock models past their end of life on that page; synth refuses them and names the default instead.
RETIRED_BEDROCK_MODELS = frozenset(
    {
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "anthropic.claude-3-sonnet-20240229-v1:0",
        "anthropic.claude-v2:1",
        "anthropic.claude-v2",
        "anthropic.claude-instant-v1",
    }
)
# AWS Marketplace product ids of models served through Marketplace (from their Bedrock model cards):
# the first invocation in an account subscribes with the caller's permissions.
BEDROCK_MARKETPLACE_PRODUCTS = {"anthropic.claude-haiku-4-5-20251001-v1:0": "prod-xdkflymybwmvi"}


def bedrock_base_model(model: str) -> str:
    """The foundation model behind a model id, an inference profile id or either's ARN
    (``us.anthropic.claude-…`` and ``arn:…:inference-profile/jp.anthropic.claude-…`` →
    ``anthropic.claude-…``). An application inference profile's ARN names no model: returned as is."""
    resource = model.split(":", 5)[5] if model.startswith("arn:") else model
    resource = resource.split("/", 1)[1] if "/" in resource else resource
    parts = resource.split(".")
    # ``provider.model`` is a foundation model; ``geo.provider.model`` an inference profile.
    return ".".join(parts[1:]) if len(parts) >= 3 else resource


@dataclass(frozen=True, kw_only=True)
class CurrentsConfig:
    prefix: str = "currents/"
    event_types: str = ",".join(CURRENTS_EVENT_TYPES)
    passive_event_types: str = "users.behaviors.app.SessionStart"  # enrich profiles, start no generation
    generator: Literal["offline", "bedrock"] = "bedrock"
    bedrock_model_id: str = DEFAULT_BEDROCK_MODEL
    bedrock_marketplace_product_id: str = ""  # empty: known for the default model; "none": grant nothing
    bedrock_max_tokens: int = 700
    guardrail_id: str = ""
    guardrail_version: str = "DRAFT"
    cooldown_seconds: int = 3600
    settle_seconds: int = 300
    content_ttl_days: int = 30
    generation_concurrency: int = 4
    hourly_generation_cap: int = 10_000
    defaults_enabled: bool = True
    braze_writer_principal: str = ""
    braze_external_id: str = ""
    api_rate_limit: int = 500
    api_burst_limit: int = 1000
    log_retention_days: int = 90

    def __post_init__(self) -> None:
        if not self.prefix.endswith("/"):
            raise ConfigError("currents:prefix must end with '/'")
        if self.generator == "bedrock" and not self.bedrock_model_id:
            raise ConfigError("currents:bedrockModelId is required when the generator is bedrock")
        if self.generator == "bedrock" and bedrock_base_model(self.bedrock_model_id) in RETIRED_BEDROCK_MODELS:
            raise ConfigError(
                f"currents:bedrockModelId {self.bedrock_model_id} is past its end of life on Amazon Bedrock "
                f"and can no longer be invoked; use {DEFAULT_BEDROCK_MODEL}"
            )
        if bool(self.braze_writer_principal) != bool(self.braze_external_id):
            raise ConfigError(
                "currents:brazeWriterPrincipal and currents:brazeExternalId go together (set both or neither)"
            )
        if self.generation_concurrency < 2:
            raise ConfigError("currents:generationConcurrency must be at least 2 (SQS maximum concurrency)")
        if not 0 <= self.settle_seconds <= 900:
            raise ConfigError("currents:settleSeconds must be between 0 and 900 (SQS delays up to 15 minutes)")

    @property
    def marketplace_product_id(self) -> str | None:
        if self.bedrock_marketplace_product_id == "none":
            return None
        return self.bedrock_marketplace_product_id or BEDROCK_MARKETPLACE_PRODUCTS.get(
            bedrock_base_model(self.bedrock_model_id)
        )


@dataclass(frozen=True, kw_only=True)
class BulkUploadConfig:
    prefix: str = "ci360/"
    allowed_url_schemes: str = "https"
    allowed_url_hosts: str = ""  # empty: Amazon S3's hosts
    copier_memory_mb: int = 1024
    copier_max_concurrency: int = 10
    handover_seconds: int = 90
    parts_in_flight: int = 3
    api_rate_limit: int = 10
    api_burst_limit: int = 20
    log_retention_days: int = 90
    deliver_to_braze: bool = False  # every landed file also goes to Braze as user attributes
    braze_id_column: str = "external_id"  # the metadata column whose values identify Braze users

    def __post_init__(self) -> None:
        if not self.prefix.endswith("/") or self.prefix.startswith("/"):
            raise ConfigError("bulkUpload:prefix must be relative and end with '/'")
        column = self.braze_id_column
        if not column or column != column.strip() or "," in column or any(not c.isprintable() for c in column):
            raise ConfigError("bulkUpload:brazeIdColumn must be one column name (no commas or surrounding spaces)")
        if column in ("identity_id", "user_alias_name", "user_alias_label"):
            raise ConfigError(
                f"bulkUpload:brazeIdColumn cannot be {column}: identity_id is CI360's own key, never sent to "
                "Braze, and a user alias needs two columns"
            )
        if any(s.strip() not in ("https", "http") for s in self.allowed_url_schemes.split(",")):
            raise ConfigError("bulkUpload:allowedUrlSchemes may list https and http only")
        if not 2 <= self.copier_max_concurrency <= 1000:
            raise ConfigError("bulkUpload:copierMaxConcurrency must be 2-1000 (SQS maximum concurrency)")
        if not 10 <= self.handover_seconds <= 600:
            raise ConfigError("bulkUpload:handoverSeconds must be 10-600 (time left in an invocation to hand over)")
        if not 1 <= self.parts_in_flight <= 16:
            raise ConfigError("bulkUpload:partsInFlight must be 1-16")


def _items(text: str) -> list[str]:
    """A comma-separated setting as a list, blanks dropped: " a, b ," -> ["a", "b"]."""
    return [item for item in (part.strip() for part in text.split(",")) if item]


@dataclass(frozen=True, kw_only=True)
class CaptureConfig:
    prefix: str = "events/capture/"  # under the import bucket's incoming prefix: the importer sends them
    error_prefix: str = "capture-errors/"  # events the transform refused, outside the incoming prefix
    buffer_seconds: int = 60
    buffer_mb: int = 5
    self_sign_up: bool = True
    access_token_minutes: int = 60
    authorizer_cache_seconds: int = 300
    api_rate_limit: int = 100
    api_burst_limit: int = 200
    cors_origins: str = ""  # comma-separated browser origins allowed to post (empty: no CORS; "*": any)
    forward_event_types: str = ""  # empty: no forwarding rule
    forward_endpoint: str = ""
    forward_header_name: str = "Authorization"
    forward_secret_name: str = ""  # Secrets Manager secret whose value is the forward header's value
    forward_rate_per_second: int = 10
    log_retention_days: int = 90

    def __post_init__(self) -> None:
        for name, value in (("prefix", self.prefix), ("errorPrefix", self.error_prefix)):
            if not value.endswith("/") or value.startswith("/"):
                raise ConfigError(f"capture:{name} must be relative and end with '/'")
        if not 0 <= self.buffer_seconds <= 900:
            raise ConfigError("capture:bufferSeconds must be 0-900 (Firehose's S3 buffering interval)")
        if not 1 <= self.buffer_mb <= 128:
            raise ConfigError("capture:bufferMb must be 1-128 (Firehose's S3 buffering size)")
        if not 5 <= self.access_token_minutes <= 1440:
            raise ConfigError("capture:accessTokenMinutes must be 5-1440 (Cognito's access token validity)")
        if not 0 <= self.authorizer_cache_seconds <= min(3600, self.access_token_minutes * 60):
            raise ConfigError(
                "capture:authorizerCacheSeconds must be 0-3600 and not outlive an access token "
                "(capture:accessTokenMinutes)"
            )
        for origin in self.origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s,]+", origin):
                raise ConfigError(f"capture:corsOrigins: {origin!r} is not an origin (scheme://host[:port], or *)")
        if self.forward_event_types:
            if not self.forward_endpoint.startswith("https://"):
                raise ConfigError(
                    "capture:forwardEndpoint must be an https:// URL when capture:forwardEventTypes is set"
                )
            if not self.forward_secret_name:
                raise ConfigError("capture:forwardSecretName is required when capture:forwardEventTypes is set")
            if not 1 <= self.forward_rate_per_second <= 300:
                raise ConfigError("capture:forwardRatePerSecond must be 1-300 (API destination invocation rate)")

    @property
    def origins(self) -> list[str]:
        return _items(self.cors_origins)

    @property
    def forwarded_types(self) -> list[str]:
        return _items(self.forward_event_types)


@dataclass(frozen=True, kw_only=True)
class AppConfig:
    project: str = "BrazePipelines"
    alarm_email: str | None = None
    # False: leave the region's existing API Gateway CloudWatch Logs role setting alone (no stack).
    manage_api_gateway_account_role: bool = True
    # X-Ray active tracing on every function and API stage, Powertools Tracer in the handlers.
    tracing: bool = True
    importer: ImportConfig = field(default_factory=ImportConfig)
    currents: CurrentsConfig = field(default_factory=CurrentsConfig)
    bulk_upload: BulkUploadConfig = field(default_factory=BulkUploadConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)

    def __post_init__(self) -> None:
        # Refused capture events must not land where the importer would read them as a new file.
        if self.capture.error_prefix.startswith(self.importer.incoming_prefix):
            raise ConfigError("capture:errorPrefix must be outside the import incoming prefix (import:incomingPrefix)")
        # SNS accepts any string at deploy time and the subscription then never confirms.
        if self.alarm_email is not None and not re.fullmatch(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+", self.alarm_email):
            raise ConfigError(f"alarms:email must be one email address, not {self.alarm_email!r}")

    @classmethod
    def from_settings(cls, context: Mapping[str, Any]) -> AppConfig:
        """Build from all of the app's context, refusing a key no setting reads in a namespace some
        setting reads (``import:maxInflight``): unread, a misspelt key would be ignored silently.
        The known keys are the ones ``from_context`` asks for; other namespaces (CDK's ``@aws-cdk/…``,
        ``aws:cdk:…``) are left alone."""
        asked: dict[str, None] = {}  # in the order read, for the order of suggestions

        def get(key: str) -> Any:
            asked[key] = None
            return context.get(key)

        config = cls.from_context(get)
        _refuse_unknown(context, asked)
        return config

    @classmethod
    def from_context(cls, get: Any) -> AppConfig:
        """Build from a ``node.try_get_context``-like getter; keys are ``section:camelCase``."""
        role = get("apiGateway:manageAccountRole")
        tracing = get("tracing:enabled")
        return cls(
            project=str(get("project") or cls.project),
            alarm_email=get("alarms:email") or get("alarmEmail") or None,  # alarmEmail: the older key
            manage_api_gateway_account_role=(
                cls.manage_api_gateway_account_role
                if role is None
                else _coerce("apiGateway:manageAccountRole", role, bool)
            ),
            tracing=cls.tracing if tracing is None else _coerce("tracing:enabled", tracing, bool),
            importer=_section(ImportConfig, "import", get),
            currents=_section(CurrentsConfig, "currents", get),
            bulk_upload=_section(BulkUploadConfig, "bulkUpload", get),
            capture=_section(CaptureConfig, "capture", get),
        )


def _section(kind: Any, prefix: str, get: Any) -> Any:
    hints = get_type_hints(kind)
    values: dict[str, Any] = {}
    for f in fields(kind):
        key = f"{prefix}:{_camel(f.name)}"
        raw = get(key)
        if raw is None:
            continue
        values[f.name] = _coerce(key, raw, hints[f.name])
    return kind(**values)


def _coerce(key: str, raw: Any, hint: Any) -> Any:
    """``raw`` as the setting's type; a value that is none says which key and what it must be."""
    if hint is int or hint is float:
        try:
            return hint(raw)
        except (TypeError, ValueError):
            kind = "a whole number" if hint is int else "a number"
            raise ConfigError(f"{key} must be {kind}, not {raw!r}") from None
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word in ("1", "true", "yes"):
            return True
        if word in ("0", "false", "no"):
            return False
        raise ConfigError(f"{key} must be true or false, not {raw!r}")
    choices = get_args(hint)
    if choices and all(isinstance(c, str) for c in choices):
        if raw not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}, not {raw!r}")
        return raw
    return str(raw)


def _refuse_unknown(keys: Iterable[str], known: Iterable[str]) -> None:
    """Refuse each key no setting reads that is in a namespace some setting reads, or that looks like a
    setting: a misspelt namespace (``imprt:maxInFlight``), a dot for the colon, a misspelt key without a
    namespace (``projct``) or a setting's name without its namespace (``maxInFlight``). CDK's own keys
    and keys like no setting (a user's own context) are left alone."""
    known = list(dict.fromkeys(known))
    namespaces = {_namespace(k) for k in known} - {""}
    refusals = []
    for key in sorted(keys):
        if key in known or _cdks(key):
            continue
        near = [_closest(key, known)] if _namespace(key) in namespaces else _alike(key, known, namespaces)
        if near:
            refusals.append(f"unknown setting {key} (did you mean {_either(near)}?)")
    if refusals:
        raise ConfigError("; ".join(refusals))


def _cdks(key: str) -> bool:
    """CDK's keys: feature flags (``@aws-cdk/…``), its own (``aws:cdk:…``, ``cli-telemetry``) and cached
    look-ups (``availability-zones:account=…``)."""
    return key.startswith(("@", "aws:", "aws-cdk", "cdk", "cli-")) or "=" in key


def _alike(key: str, known: list[str], namespaces: set[str]) -> list[str]:
    """The known keys ``key`` was most likely meant to be, if it looks like one; else none."""
    lowered = {k.lower(): k for k in known}
    if ":" in key:
        namespace, rest = key.split(":", 1)
        [*near] = difflib.get_close_matches(namespace.lower(), namespaces, n=1, cutoff=0.7)
        if near:
            return [_closest(f"{near[0]}:{rest}", known)]
    whole = difflib.get_close_matches(key.lower(), lowered, n=1, cutoff=0.85)
    if whole:
        return [lowered[whole[0]]]
    if ":" in key:
        return []
    names = {k: k.split(":", 1)[1].lower() for k in known if ":" in k}
    best = difflib.get_close_matches(key.lower(), set(names.values()), n=1, cutoff=0.85)
    return [k for k, name in names.items() if best and name == best[0]]


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _namespace(key: str) -> str:
    """``import`` for ``import:maxInFlight``, case aside; "" for a key without one (``project``)."""
    return key.split(":", 1)[0].lower() if ":" in key else ""


def _closest(key: str, known: Iterable[str]) -> str:
    """The known key of ``key``'s namespace most like it, case aside (``Import:maxinflight`` →
    ``import:maxInFlight``)."""
    candidates = {k.lower(): k for k in known if _namespace(k) == _namespace(key)}
    [best] = difflib.get_close_matches(key.lower(), candidates, n=1, cutoff=0)
    return candidates[best]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
