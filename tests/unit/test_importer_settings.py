"""The importer's settings: values an operator (or the sandbox CLI) writes that mean "no ceiling"."""

from __future__ import annotations

import pytest
from braze_importer.settings import Settings

BASE = {
    "BRAZE_REST_ENDPOINT": "https://rest.iad-01.braze.com",
    "BRAZE_API_KEY_SECRET": "secret",
    "RUNS_TABLE": "runs",
    "IMPORT_BUCKET": "imports",
    "AWS_LAMBDA_FUNCTION_NAME": "importer",
}


@pytest.mark.parametrize("value", ["", "0", "0.0", "0.00", " 0 ", "0e0", "none", "None"])
def test_a_per_run_ceiling_of_zero_in_any_spelling_means_none(value: str) -> None:
    settings = Settings.model_validate(BASE | {"REQUESTS_PER_SECOND": value})
    assert settings.requests_per_second is None
    assert settings.policy().requests_per_second is None


def test_a_per_run_ceiling_is_kept_and_a_negative_one_refused() -> None:
    assert Settings.model_validate(BASE | {"REQUESTS_PER_SECOND": "12.5"}).requests_per_second == 12.5
    with pytest.raises(ValueError, match="REQUESTS_PER_SECOND"):
        Settings.model_validate(BASE | {"REQUESTS_PER_SECOND": "-1"})


def test_deltas_are_off_without_a_table_and_default_to_thirty_days_and_arrays_of_25() -> None:
    settings = Settings.model_validate(BASE)
    assert (settings.deltas_table, settings.delta_max_age_days, settings.max_array_length) == ("", 30, 25)
    assert settings.delta_max_age_seconds == 30 * 86400


@pytest.mark.parametrize(
    ("name", "value"), [("DELTA_MAX_AGE_DAYS", "0"), ("MAX_ARRAY_LENGTH", "0"), ("MAX_ARRAY_LENGTH", "501")]
)
def test_delta_settings_out_of_range_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.model_validate(BASE | {name: value})
