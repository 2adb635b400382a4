"""What a sandbox import's summary says of sending only what changed."""

from __future__ import annotations

from typing import Any

from sandbox.__main__ import _delta_lines

COUNTS: dict[str, Any] = {
    "values_read": 0, "values_sent": 0, "values_skipped": 0, "objects_unchanged": 0,
    "users_too_large": 0, "lookup_errors": 0, "commit_errors": 0,
}  # fmt: skip


def test_deltas_off_is_said_even_though_nothing_was_counted() -> None:
    assert _delta_lines({"enabled": False, "full_send": False, **COUNTS}) == [
        "  deltas off: every attribute value sent, no records kept"
    ]


def test_a_run_with_deltas_says_what_it_saved() -> None:
    counts = {**COUNTS, "values_read": 200, "values_sent": 10, "values_skipped": 190, "objects_unchanged": 19}
    (line,) = _delta_lines({"enabled": True, "full_send": False, **counts})
    assert "200 read, 10 sent, 190 unchanged (95 %); 19 objects not sent at all" in line


def test_a_file_without_attribute_values_says_nothing() -> None:
    assert _delta_lines({"enabled": True, "full_send": False, **COUNTS}) == []
