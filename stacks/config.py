"""Typed configuration, read once from CDK context in app.py and passed down as props.

Every setting has a context key (``cdk.json`` holds the defaults; ``cdk deploy -c key=value``
overrides one) and is documented in the README.
"""

from __future__ import annotations

import difflib
import re
import urllib.parse
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
# The retention periods CloudWatch Logs offers, in days (PutRetentionPolicy's retentionInDays).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)  # fmt: skip
# The longest stack name app.py derives from the project is f"{project}-ApiGatewayAccount"; CloudFormation
# allows 128 characters.
MAX_PROJECT_LENGTH = 128 - len("-ApiGatewayAccount")


@dataclass(frozen=True)
class Bounds:
    """The values a number setting accepts: ``low`` to ``high`` (either end open when None; ``low`` itself
    refused when ``above``), or one of ``among``. ``why`` names whose limits they are, when not obvious."""

    low: float | None = None
    high: float | None = None
    above: bool = False
    among: tuple[int, ...] = ()
    why: str = ""

    def holds(self, value: float) -> bool:
        if self.among:
            return value in self.among
        low_ok = self.low is None or (value > self.low if self.above else value >= self.low)
        return low_ok and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        if self.among:
            text = f"one of {', '.join(map(str, self.among))}"
        elif self.above:
            text = f"above {_number(self.low)}" + ("" if self.high is None else f" and at most {_number(self.high)}")
        elif self.high is None:
            text = f"at least {_number(self.low)}"
        else:
            text = f"between {_number(self.low)} and {_number(self.high)}"
        return f"{text} ({self.why})" if self.why else text


def bounded(default: float, low: float | None = None, high: float | None = None, **bounds: Any) -> Any:
    """A number setting's field, with the values it accepts (checked by ``_check_bounds``)."""
    return field(default=default, metadata={"bounds": Bounds(low, high, **bounds)})


def _lambda_memory(default: int) -> Any:
    return bounded(default, 128, 10240, why="Lambda's memory sizes")


def _log_retention() -> Any:
    return bounded(90, among=LOG_RETENTION_DAYS, why="CloudWatch Logs' retention periods")


def _throttle(default: int) -> Any:
    """API Gateway's stage and usage-plan throttling (a rate in requests per second, a burst in
    requests): 0 would refuse every request."""
    return bounded(default, 1)


def _check_bounds(settings: Any, namespace: str) -> None:
    """Refuse the first number setting outside its bounds, naming its key, the bounds and the value."""
    for f in fields(settings):
        bounds = f.metadata.get("bounds")
        value = getattr(settings, f.name)
        if bounds is not None and not bounds.holds(value):
            raise ConfigError(f"{namespace}:{_camel(f.name)} must be {bounds}, not {_number(value)}")


# A key prefix: relative, ending in "/", of the characters S3 calls safe in object keys but "*" (an IAM
# wildcard). Others (a space, "+", "%") are encoded in event notifications and policies' suppressions.
_KEY_PREFIX = re.compile(r"(?:[A-Za-z0-9!_.'()-]+/)+")


def _check_prefix(key: str, value: str) -> None:
    if not _KEY_PREFIX.fullmatch(value):
        raise ConfigError(
            f"{key} must be relative, end with '/' and hold only letters, digits and ! - _ . ' ( ) "
            f"(S3's safe characters), not {value!r}"
        )


def _number(value: float | None) -> str:
    """``1000`` for 1000.0, as a setting would be written."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


@dataclass(frozen=True, kw_only=True)
class ImportConfig:
    braze_rest_endpoint: str = "https://rest.iad-01.braze.com"
    incoming_prefix: str = "incoming/"
    reports_prefix: str = "reports/"
    rejects_prefix: str = "rejects/"
    failed_prefix: str = "failed/"
    max_concurrent_runs: int = bounded(2, 1, 100)  # bounded by slot records in the runs table, not by Lambda
    reserved_concurrency: int = bounded(0, 0)  # 0: none (a new account cannot reserve any)
    # Braze's /users/track limit for the workspace (3,000 per 3 s by default): one run alone takes
    # all of it, concurrent runs divide it among themselves through the runs table.
    workspace_requests_per_second: float = bounded(1000.0, 0, 100_000, above=True)
    requests_per_second: float = bounded(0.0, 0)  # an optional ceiling for one run; 0: none (its share)
    # The importer's own bounds (lambdas/braze_importer/settings.py), which it checks on every cold start.
    max_in_flight: int = bounded(80, 1, 256)
    batch_rule: Literal["combined", "combined_50", "per_array"] = "combined"
    ambiguous_policy: Literal["resend", "fail"] = "resend"
    max_attempts: int = bounded(6, 1, 20)
    max_hops: int = bounded(1000, 1)
    memory_mb: int = _lambda_memory(1769)
    output_retention_days: int = bounded(90, 1)  # an S3 lifecycle expiration: a positive number of days
    log_retention_days: int = _log_retention()
    csv_type_cast: str = ""  # CSV column types overriding inference: "zip=string,level=integer"
    # The limits of Braze's other endpoint groups, each shared only by the runs sending to it.
    catalog_requests_per_minute: int = bounded(16_000, 1, 1_000_000)  # the asynchronous catalog item endpoints
    user_delete_requests_per_minute: int = bounded(20_000, 1, 1_000_000)  # /users/delete
    allow_user_deletes: bool = False  # files under user-deletes/ delete users only when true
    # Send only what changed: attributes objects are diffed against what was last set per user, kept
    # in a DynamoDB table (created only when true).
    deltas: bool = True
    # A user's record older than this (since its last full rewrite) is ignored, and DynamoDB's TTL
    # deletes it this long after that rewrite.
    delta_max_age_days: int = bounded(30, 1)
    # The workspace's maximum array length for custom attributes (Braze keeps the last that many
    # items): a longer array is sent whole, never diffed.
    max_array_length: int = bounded(25, 1, MAX_BRAZE_ARRAY, why="Braze's largest array length")

    def __post_init__(self) -> None:
        _check_bounds(self, "import")
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
            _check_prefix(f"import:{name}", prefix)
        for name, prefix in outputs:
            if prefix.startswith(self.incoming_prefix) or self.incoming_prefix.startswith(prefix):
                raise ConfigError(f"import:{name} must not overlap import:incomingPrefix, or outputs would start runs")
        endpoint = urllib.parse.urlsplit(self.braze_rest_endpoint)
        if endpoint.scheme != "https" or not endpoint.hostname or endpoint.path not in ("", "/") or endpoint.query:
            raise ConfigError(
                "import:brazeRestEndpoint must be your workspace's https:// REST endpoint, such as "
                f"https://rest.iad-01.braze.com, not {self.braze_rest_endpoint!r}"
            )
        if self.reserved_concurrency and self.reserved_concurrency < self.max_concurrent_runs:
            raise ConfigError("import:reservedConcurrency must be 0 (none) or at least import:maxConcurrentRuns")
        if self.requests_per_second > self.workspace_requests_per_second:
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


# Bedrock's model identifiers (Converse's modelId): ``provider.model``, ``geo.provider.model`` (an inference
# profile), or the ARN of a model or profile.
_BEDROCK_MODEL = re.compile(
    r"arn:aws[a-z-]*:bedrock:[a-z0-9-]+:(\d{12})?:(foundation-model|inference-profile|application-inference-profile"
    r"|provisioned-model|custom-model|imported-model|prompt-router|default-prompt-router)/[A-Za-z0-9._:/-]+"
    r"|[a-z0-9-]+(\.[A-Za-z0-9_-]+)?\.[A-Za-z0-9._:-]+"
)
_IAM_PRINCIPAL = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(root|user/[\w+=,.@/-]+|role/[\w+=,.@/-]+)")


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
    # The personalizer's own bounds (lambdas/currents_personalizer/settings.py), checked on every cold start.
    bedrock_max_tokens: int = bounded(700, 64, 4096)
    guardrail_id: str = ""
    guardrail_version: str = "DRAFT"
    cooldown_seconds: int = bounded(3600, 0)
    settle_seconds: int = bounded(300, 0, 900, why="SQS delays up to 15 minutes")
    content_ttl_days: int = bounded(30, 1, 3650)
    generation_concurrency: int = bounded(4, 2, 1000, why="SQS maximum concurrency")
    hourly_generation_cap: int = bounded(10_000, 0)  # 0: the offline template only
    defaults_enabled: bool = True
    braze_writer_principal: str = ""
    braze_external_id: str = ""
    api_rate_limit: int = _throttle(500)
    api_burst_limit: int = _throttle(1000)
    log_retention_days: int = _log_retention()

    def __post_init__(self) -> None:
        _check_bounds(self, "currents")
        _check_prefix("currents:prefix", self.prefix)
        if self.generator == "bedrock" and not self.bedrock_model_id:
            raise ConfigError("currents:bedrockModelId is required when the generator is bedrock")
        if self.generator == "bedrock" and not _BEDROCK_MODEL.fullmatch(self.bedrock_model_id):
            raise ConfigError(
                "currents:bedrockModelId must be a Bedrock model id, inference profile id or ARN (such as "
                f"{DEFAULT_BEDROCK_MODEL}), not {self.bedrock_model_id!r}"
            )
        if self.generator == "bedrock" and bedrock_base_model(self.bedrock_model_id) in RETIRED_BEDROCK_MODELS:
            raise ConfigError(
                f"currents:bedrockModelId {self.bedrock_model_id} is past its end of life on Amazon Bedrock "
                f"and can no longer be invoked; use {DEFAULT_BEDROCK_MODEL}"
            )
        # Bedrock's patterns (Converse's GuardrailConfiguration); the stack builds the guardrail's ARN from the id.
        if self.guardrail_id and not re.fullmatch(r"[a-z0-9]+", self.guardrail_id):
            raise ConfigError(
                f"currents:guardrailId must be a guardrail's id (lowercase letters, digits), not {self.guardrail_id!r}"
            )
        if not re.fullmatch(r"DRAFT|[1-9][0-9]{0,7}", self.guardrail_version):
            raise ConfigError(
                f"currents:guardrailVersion must be DRAFT or a version number, not {self.guardrail_version!r}"
            )
        if self.braze_writer_principal and not _IAM_PRINCIPAL.fullmatch(self.braze_writer_principal):
            raise ConfigError(
                "currents:brazeWriterPrincipal must be the IAM ARN Braze gives (arn:aws:iam::<account>:user/… or "
                f"role/…), not {self.braze_writer_principal!r}"
            )
        if bool(self.braze_writer_principal) != bool(self.braze_external_id):
            raise ConfigError(
                "currents:brazeWriterPrincipal and currents:brazeExternalId go together (set both or neither)"
            )

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
    copier_memory_mb: int = _lambda_memory(1024)
    copier_max_concurrency: int = bounded(10, 2, 1000, why="SQS maximum concurrency")
    # Time left in an invocation (of 15 minutes) to hand over.
    handover_seconds: int = bounded(90, 10, 600)
    parts_in_flight: int = bounded(3, 1, 16)
    api_rate_limit: int = _throttle(10)
    api_burst_limit: int = _throttle(20)
    log_retention_days: int = _log_retention()
    deliver_to_braze: bool = False  # every landed file also goes to Braze as user attributes
    braze_id_column: str = "external_id"  # the metadata column whose values identify Braze users

    def __post_init__(self) -> None:
        _check_bounds(self, "bulkUpload")
        _check_prefix("bulkUpload:prefix", self.prefix)
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


def _items(text: str) -> list[str]:
    """A comma-separated setting as a list, blanks dropped: " a, b ," -> ["a", "b"]."""
    return [item for item in (part.strip() for part in text.split(",")) if item]


@dataclass(frozen=True, kw_only=True)
class CaptureConfig:
    prefix: str = "events/capture/"  # under the import bucket's incoming prefix: the importer sends them
    error_prefix: str = "capture-errors/"  # events the transform refused, outside the incoming prefix
    buffer_seconds: int = bounded(60, 0, 900, why="Firehose's S3 buffering interval")
    buffer_mb: int = bounded(5, 1, 128, why="Firehose's S3 buffering size")
    self_sign_up: bool = True
    access_token_minutes: int = bounded(60, 5, 1440, why="Cognito's access token validity")
    authorizer_cache_seconds: int = bounded(300, 0, 3600, why="API Gateway's authorizer cache")
    api_rate_limit: int = _throttle(100)
    api_burst_limit: int = _throttle(200)
    cors_origins: str = ""  # comma-separated browser origins allowed to post (empty: no CORS; "*": any)
    forward_event_types: str = ""  # empty: no forwarding rule
    forward_endpoint: str = ""
    forward_header_name: str = "Authorization"
    forward_secret_name: str = ""  # Secrets Manager secret whose value is the forward header's value
    forward_rate_per_second: int = bounded(10, 1, 300, why="API destination invocation rate")
    log_retention_days: int = _log_retention()

    def __post_init__(self) -> None:
        _check_bounds(self, "capture")
        _check_prefix("capture:prefix", self.prefix)
        _check_prefix("capture:errorPrefix", self.error_prefix)
        if self.authorizer_cache_seconds > self.access_token_minutes * 60:
            raise ConfigError(
                "capture:authorizerCacheSeconds must not outlive an access token (capture:accessTokenMinutes)"
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
        # Every stack's name starts with it, and CloudFormation takes letters, digits and hyphens only.
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", self.project) or len(self.project) > MAX_PROJECT_LENGTH:
            raise ConfigError(
                f"project must be letters, digits and hyphens, starting with a letter, at most {MAX_PROJECT_LENGTH} "
                f"characters (it starts every stack's name), not {self.project!r}"
            )
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
            alarm_email=_text("alarms:email", get("alarms:email") or get("alarmEmail") or "") or None,  # the older key
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
        kind = "a whole number" if hint is int else "a number"
        # int() would read true as 1 and cut 1.5 (cdk.json's JSON) to 1.
        if isinstance(raw, bool) or (hint is int and isinstance(raw, float) and not raw.is_integer()):
            raise ConfigError(f"{key} must be {kind}, not {raw!r}")
        try:
            return hint(raw)
        except (TypeError, ValueError):
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
    return _text(key, raw)


def _text(key: str, raw: Any) -> str:
    """A text setting: a string (a number is taken as written); a list or true/false is refused, not
    turned into Python's text of it (a comma-separated setting is one string: "a,b")."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return _number(raw)
    raise ConfigError(f"{key} must be text (several values: one string, comma-separated), not {raw!r}")


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
    longer = [k for k in known if ":" not in k and key.lower().startswith(k.lower())]  # projectName
    if longer:
        return longer
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
