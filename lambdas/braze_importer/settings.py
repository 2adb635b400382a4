"""The importer's settings, read once from the environment and validated on cold start."""

from __future__ import annotations

import os
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .csv_types import parse_cast_spec
from .engine import AmbiguousPolicy, BatchRule, SendPolicy
from .service import Layout


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    braze_rest_endpoint: str = Field(alias="BRAZE_REST_ENDPOINT")
    braze_api_key_secret: str = Field(alias="BRAZE_API_KEY_SECRET")
    runs_table: str = Field(alias="RUNS_TABLE")
    bucket: str = Field(alias="IMPORT_BUCKET")
    incoming_prefix: str = Field("incoming/", alias="INCOMING_PREFIX")
    reports_prefix: str = Field("reports/", alias="REPORTS_PREFIX")
    rejects_prefix: str = Field("rejects/", alias="REJECTS_PREFIX")
    failed_prefix: str = Field("failed/", alias="FAILED_PREFIX")
    max_in_flight: int = Field(80, ge=1, le=256, alias="MAX_IN_FLIGHT")
    # Braze's /users/track limit for the workspace; the runs active at once divide it.
    workspace_requests_per_second: float = Field(1000.0, gt=0, le=100_000, alias="WORKSPACE_REQUESTS_PER_SECOND")
    # An optional ceiling for one run below its share; unset (or empty): none.
    requests_per_second: float | None = Field(None, gt=0, le=100_000, alias="REQUESTS_PER_SECOND")
    batch_rule: Literal["combined", "combined_50", "per_array"] = Field("combined", alias="BATCH_RULE")
    max_attempts: int = Field(6, ge=1, le=20, alias="MAX_ATTEMPTS")
    ambiguous: Literal["resend", "fail"] = Field("resend", alias="AMBIGUOUS_POLICY")
    request_timeout_seconds: float = Field(30.0, gt=0, le=120, alias="REQUEST_TIMEOUT_SECONDS")
    safety_margin_seconds: float = Field(60.0, ge=0, le=600, alias="SAFETY_MARGIN_SECONDS")
    max_hops: int = Field(1000, ge=1, alias="MAX_HOPS")
    # Runs active at once, bounded by slot records in the runs table; 0 = no bound.
    max_concurrent_runs: int = Field(0, ge=0, le=100, alias="MAX_CONCURRENT_RUNS")
    function_name: str = Field(alias="AWS_LAMBDA_FUNCTION_NAME")
    # Per-column types for CSV files, overriding inference: "zip=string,level=integer".
    csv_type_cast: str = Field("", alias="CSV_TYPE_CAST")
    # The limits of Braze's other endpoint groups, each shared only by the runs sending to that group.
    catalog_requests_per_minute: int = Field(16_000, ge=1, le=1_000_000, alias="CATALOG_REQUESTS_PER_MINUTE")
    user_delete_requests_per_minute: int = Field(20_000, ge=1, le=1_000_000, alias="USER_DELETE_REQUESTS_PER_MINUTE")
    # Files under user-deletes/ delete users for good: refused unless this is true.
    allow_user_deletes: bool = Field(False, alias="ALLOW_USER_DELETES")
    # Send only what changed: the table of what was last set per user; unset or empty: every value is sent.
    deltas_table: str = Field("", alias="DELTAS_TABLE")
    # Records written in transactions of up to 100 users (false only in the sandbox: see DynamoDeltaStore).
    delta_transactions: bool = Field(True, alias="DELTA_TRANSACTIONS")
    # Records older than this are ignored; DynamoDB's TTL deletes them as long after their last rewrite.
    delta_max_age_days: int = Field(30, ge=1, alias="DELTA_MAX_AGE_DAYS")
    # The workspace's maximum array length for custom attributes: longer arrays are sent whole.
    max_array_length: int = Field(25, ge=1, le=500, alias="MAX_ARRAY_LENGTH")

    @field_validator("requests_per_second", mode="before")
    @classmethod
    def _optional(cls, value: object) -> object:
        """Unset, empty, "none" or any spelling of zero ("0", "0.0", "0e0"): no ceiling."""
        if value is None:
            return None
        text = str(value).strip()
        if text.lower() in ("", "none"):
            return None
        try:
            return None if float(text) == 0 else text
        except ValueError:
            return text  # not a number: the field's own check names it

    @field_validator("braze_rest_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL such as https://rest.iad-01.braze.com")
        return value.rstrip("/")

    @field_validator("incoming_prefix", "reports_prefix", "rejects_prefix", "failed_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return value if not value or value.endswith("/") else value + "/"

    @field_validator("csv_type_cast")
    @classmethod
    def _casts(cls, value: str) -> str:
        parse_cast_spec(value)  # raises ValueError naming the bad part
        return value

    def csv_casts(self) -> dict[str, str]:
        return parse_cast_spec(self.csv_type_cast)

    def policy(self) -> SendPolicy:
        return SendPolicy(
            max_in_flight=self.max_in_flight,
            workspace_requests_per_second=self.workspace_requests_per_second,
            requests_per_second=self.requests_per_second,
            batch_rule=BatchRule.PER_ARRAY if self.batch_rule == "per_array" else BatchRule.COMBINED,
            max_batch_objects=50 if self.batch_rule == "combined_50" else 75,
            max_attempts=self.max_attempts,
            ambiguous=AmbiguousPolicy(self.ambiguous),
            catalog_requests_per_second=self.catalog_requests_per_minute / 60,
            user_delete_requests_per_second=self.user_delete_requests_per_minute / 60,
        )

    @property
    def delta_max_age_seconds(self) -> float:
        return self.delta_max_age_days * 86400.0

    def layout(self) -> Layout:
        outputs = (self.reports_prefix, self.rejects_prefix, self.failed_prefix)
        if any(p.startswith(self.incoming_prefix) for p in outputs):
            raise ValueError("output prefixes must not lie under the incoming prefix")
        return Layout(self.incoming_prefix, *outputs)


class SettingsError(RuntimeError):
    pass


@cache
def get_settings() -> Settings:
    try:
        return Settings.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
        raise SettingsError(f"invalid importer configuration: {problems}") from None
