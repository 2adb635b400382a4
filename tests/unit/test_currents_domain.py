"""Currents events: Avro codecs, schema drift, duplicates, grouping; content shape and policy."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from currents_personalizer.content import DEFAULT_CONTENT, Content, Details, OutputPolicy
from currents_personalizer.events import (
    EMAIL_OPEN,
    PURCHASE,
    PUSH_OPEN,
    event_type_from_key,
    group_by_user,
    parse_event,
    read_records,
)
from currents_personalizer.generators import OfflineGenerator
from currents_personalizer.profile import describe
from pydantic import ValidationError

from sandbox import currents_sample

CUSTOM = "users.behaviors.CustomEvent"


def avro_bytes(event_type: str, records: list[dict[str, Any]], codec: str, extra: Any = None) -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, currents_sample.schema(event_type, extra), records, codec=codec)
    return buf.getvalue()


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy"])
def test_every_codec_streams_the_same_records(codec: str) -> None:
    records = currents_sample.records(CUSTOM, users=5, events=50)
    assert list(read_records(io.BytesIO(avro_bytes(CUSTOM, records, codec)))) == records


def test_schema_additions_and_missing_optionals_do_not_fail_a_file() -> None:
    records = currents_sample.records(CUSTOM, users=3, events=10)
    for r in records:
        r["new_field"] = "added by Braze later"
        r["external_user_id"] = None
    extra = [{"name": "new_field", "type": "string"}]
    users, summary = group_by_user(read_records(io.BytesIO(avro_bytes(CUSTOM, records, "null", extra))), CUSTOM)
    assert summary.kept == 10 and all(u.external_id is None for u in users.values())


def test_event_type_comes_from_the_key_whatever_follows_date() -> None:
    key = (
        "currents/dataexport.prod-03.S3.integration.abc/"
        "event_type=users.messages.email.Open/date=2026-11-23-10/x/y.avro"
    )
    assert event_type_from_key(key) == "users.messages.email.Open"
    assert event_type_from_key("currents/other/file.avro") is None


def test_duplicates_unattributed_and_other_types_are_counted_not_kept() -> None:
    records = currents_sample.records(CUSTOM, users=4, events=20)
    records += records[:5]  # delivered twice
    records.append({"id": "x", "time": 1})  # no user
    users, summary = group_by_user(records, CUSTOM)
    assert (summary.records, summary.kept, summary.duplicates, summary.unattributed) == (26, 20, 5, 1)
    assert sum(len(u.event_ids) for u in users.values()) == 20
    _, other = group_by_user(records, "users.behaviors.app.Uninstall")
    assert other.other_types == 26 and other.kept == 0


def test_grouping_keeps_ids_and_the_newest_time_but_only_recent_events() -> None:
    records = [
        {"id": f"e{i}", "user_id": "u", "external_user_id": "ext", "time": 100 + i, "name": "n", "properties": "{}"}
        for i in range(50)
    ]
    users, _ = group_by_user(records, CUSTOM, keep_last=5)
    activity = users["u"]
    assert activity.external_id == "ext" and activity.newest_time == 149
    assert len(activity.event_ids) == 50 and [e.time for e in activity.recent()] == [149, 148, 147, 146, 145]


@pytest.mark.parametrize(("raw", "decoded"), [('{"a": 1}', {"a": 1}), ("not json", {}), ("[1]", {}), (None, {})])
def test_properties_are_decoded_and_garbage_tolerated(raw: Any, decoded: dict[str, Any]) -> None:
    event = parse_event({"id": "e", "user_id": "u", "time": "1700000000", "properties": raw}, CUSTOM)
    assert event is not None and event.properties() == decoded and event.time == 1_700_000_000


def test_content_shape_is_fixed() -> None:
    with pytest.raises(ValidationError):
        Content.model_validate({"email_title": "t", "heading": "h", "details": {"intro": "i"}})
    with pytest.raises(ValidationError):
        Content.model_validate(
            {
                "email_title": "t",
                "heading": "h",
                "extra": 1,
                "details": {"intro": "i", "episode_details": "e", "cta": "c"},
            }
        )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Visit https://evil.example now", "a URL"),
        ("see www.example.org", "a URL"),
        ("go to shop.example.com/deal", "a URL"),
        ("<b>bold</b>", "HTML"),
        ("fish &amp; chips", "HTML"),
        ("Hi {{ first_name }}", "Liquid"),
        ("{% if x %}", "Liquid"),
    ],
)
def test_output_policy_refuses_urls_html_and_liquid(text: str, problem: str) -> None:
    content = DEFAULT_CONTENT.model_copy(update={"details": Details(intro=text, episode_details="e", cta="c")})
    violations = OutputPolicy().violations(content)
    assert violations == [f"details.intro: contains {problem}"]
    assert text not in " ".join(violations)
    allowed = OutputPolicy(allow_urls=True, allow_html=True, allow_liquid=True)
    assert allowed.violations(content) == []


def test_offline_content_is_deterministic_safe_and_about_the_user() -> None:
    records = currents_sample.records(CUSTOM, users=2, events=30)
    records[0]["name"] = "{{ evil }} <script>https://x.io</script>"
    users, _ = group_by_user(records, CUSTOM)
    generator = OfflineGenerator()
    for activity in users.values():
        first, second = generator.generate(activity), generator.generate(activity)
        assert first == second
        assert OutputPolicy().violations(first) == []
    assert OutputPolicy().violations(DEFAULT_CONTENT) == []


def test_sample_files_follow_braze_layout_with_duplicates_across_files(tmp_path: Any) -> None:
    paths = currents_sample.write_sample(tmp_path, users=10, events=40)
    keys = [str(p.relative_to(tmp_path)) for p in paths]
    assert all(event_type_from_key(k) for k in keys)
    ids: list[str] = []
    for path in paths:
        with path.open("rb") as f:
            ids += [r["id"] for r in read_records(f)]
    assert len(ids) > len(set(ids))  # at-least-once delivery, as Currents does


def test_campaign_and_canvas_names_are_never_what_the_user_enjoyed() -> None:
    opens = [
        {"id": f"o{i}", "user_id": "u", "time": 100 + i, "campaign_name": "campaign name", "canvas_name": "Winback v3"}
        for i in range(3)
    ]
    users, _ = group_by_user(opens, EMAIL_OPEN)
    content = OfflineGenerator().generate(users["u"])
    text = content.model_dump_json()
    assert "campaign name" not in text and "Winback" not in text and "enjoyed" not in text
    described = describe(users["u"].recent())
    assert all(set(d) == {"what", "when"} for d in described)


def test_email_and_push_opens_are_told_apart() -> None:
    email = parse_event({"id": "a", "user_id": "u", "time": 1}, EMAIL_OPEN)
    push = parse_event({"id": "b", "user_id": "u", "time": 2}, PUSH_OPEN)
    assert email is not None and push is not None
    what = [d["what"] for d in describe([email, push])]
    assert what == ["opened a push notification from us", "opened an email from us"]


def test_a_purchase_is_described_as_bought_with_its_item() -> None:
    purchase = parse_event({"id": "p", "user_id": "u", "time": 1, "product_id": "Ocean_Lab pass"}, PURCHASE)
    watched = parse_event({"id": "c", "user_id": "u", "time": 0, "name": "watched_episode"}, CUSTOM)
    assert purchase is not None and watched is not None
    assert describe([purchase, watched])[0] | {"when": ""} == {"what": "bought", "item": "Ocean Lab pass", "when": ""}
    assert describe([watched])[0]["activity"] == "watched episode"


@pytest.mark.parametrize(
    ("fields", "intent"),
    [
        ({"machine_open": "true"}, False),
        ({"machine_open": True}, False),
        ({"machine_open": None}, True),
        ({"machine_open": "false"}, True),
        ({"is_suspected_bot_click": True}, False),
        ({"is_suspected_bot_click": "True"}, False),
        ({}, True),
    ],
)
def test_machine_opens_and_bot_clicks_carry_no_intent(fields: dict[str, Any], intent: bool) -> None:
    parsed = parse_event({"id": "e", "user_id": "u", "time": 1, **fields}, EMAIL_OPEN)
    assert parsed is not None and parsed.intent is intent


def test_future_times_are_clamped_and_counted() -> None:
    records = [{"id": "f", "user_id": "u", "time": 2_020_000_000, "name": "n"}]
    users, summary = group_by_user(records, CUSTOM, now=1_800_000_000)
    assert summary.future_clamped == 1 and users["u"].newest_time == 1_800_000_000
