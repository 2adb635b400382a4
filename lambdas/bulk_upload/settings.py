"""Settings of the bulk-upload functions, read once from the environment, validated on cold start."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .webhook import UrlPolicy


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    bucket: str = Field(alias="UPLOAD_BUCKET")
    prefix: str = Field("ci360/", alias="UPLOAD_PREFIX")
    jobs_table: str = Field(alias="JOBS_TABLE")
    queue_url: str = Field("", alias="COPY_QUEUE_URL")
    allowed_schemes: str = Field("https", alias="ALLOWED_URL_SCHEMES")
    allowed_hosts: str = Field("", alias="ALLOWED_URL_HOSTS")  # empty: S3's hosts
    lease_seconds: int = Field(900, ge=60, alias="COPY_LEASE_SECONDS")
    # Hand over when less than this is left of the invocation: time to finish the parts in flight.
    handover_seconds: float = Field(90, ge=0, alias="COPY_HANDOVER_SECONDS")
    max_hops: int = Field(500, ge=1, alias="COPY_MAX_HOPS")
    parts_in_flight: int = Field(3, ge=1, le=16, alias="COPY_PARTS_IN_FLIGHT")
    # Delivery to Braze: the importer function asked to import every landed file (empty: none),
    # the column identifying Braze users, and the importer's runs table (for a job's import status).
    importer_function: str = Field("", alias="IMPORTER_FUNCTION")
    braze_id_column: str = Field("external_id", min_length=1, alias="BRAZE_ID_COLUMN")
    runs_table: str = Field("", alias="RUNS_TABLE")

    def policy(self) -> UrlPolicy:
        schemes = tuple(s.strip() for s in self.allowed_schemes.split(",") if s.strip())
        hosts = tuple(h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip())
        return UrlPolicy(schemes=schemes, hosts=hosts) if hosts else UrlPolicy(schemes=schemes)


class SettingsError(RuntimeError):
    pass


@cache
def get_settings() -> Settings:
    try:
        return Settings.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
        raise SettingsError(f"invalid bulk-upload configuration: {problems}") from None
