"""Properties of the mapping for arbitrary event data (hypothesis)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tiktok_gateway.tags.tiktok.mapping import MappedEvent, map_event
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings

HEX64 = re.compile(r"[0-9a-f]{64}")
TAG = TikTokTagSettings(pixel_code="C1", consent="ignore")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", " ", "0", "12.5", "a@b.co", "+1 213 373 4253", "2024-01-01T00:00:00Z"]),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
item = st.dictionaries(
    st.sampled_from(["item_id", "id", "content_id", "item_name", "price", "quantity", "currency"]),
    scalars,
)
KEYS = [
    "x-ttq-event-name", "event_id", "x-ttq-event-id", "transaction_id",
    "x-ttq-timestamp", "x-gw-event_time", "user_id", "x-ttq-ud-email", "x-ttq-ud-phone-number",
    "x-ttq-ud-external-id", "ip_override", "user_agent", "language", "page_location",
    "page_referrer", "x-ttq-ct-page-url", "x-ttq-ttclid", "currency", "value", "x-ttq-pt-value",
    "x-ttq-pt-contents", "search_term", "x-ttq-ldu", "test_event_code", "x-ga-gcs", "x-ga-gcd",
]  # fmt: skip
event_data = st.fixed_dictionaries(
    {"event_name": st.sampled_from(["page_view", "purchase", "add_to_cart", "Custom_1"])},
    optional={
        **dict.fromkeys(KEYS, json_values),
        "items": st.lists(item, max_size=4),
        "user_data": st.fixed_dictionaries(
            {},
            optional={
                "email_address": json_values,
                "sha256_email_address": st.lists(scalars, max_size=3),
                "phone_number": json_values,
                "address": st.dictionaries(
                    st.sampled_from(["first_name", "last_name", "postal_code", "city", "country"]),
                    scalars,
                ),
            },
        ),
        "x-gw-cookies": st.dictionaries(st.sampled_from(["ttclid", "_ttp"]), st.text(max_size=8)),
    },
)


def walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [pair for key, child in value.items() for pair in walk(child, f"{path}.{key}")]
    if isinstance(value, list):
        return [pair for child in value for pair in walk(child, f"{path}[]")]
    return [(path, value)]


@settings(max_examples=400, deadline=None)
@given(event_data)
def test_mapped_events_are_always_valid_tiktok_events(data: dict[str, Any]) -> None:
    result = map_event(data, TAG)
    if not isinstance(result, MappedEvent):
        return
    event = result.event
    for path, value in walk(event):
        assert value is not None, path
        assert value != "", path
        assert not (isinstance(value, str) and value.strip() == ""), path
    for empty_path, value in walk({"e": event}):
        assert value not in ({}, []), empty_path
    assert type(event["event_time"]) is int
    assert isinstance(event["event_id"], str)
    user = event.get("user", {})
    for field in ("email", "phone", "external_id", "first_name", "last_name", "zip_code"):
        values = user.get(field, [])
        for value in values if isinstance(values, list) else [values]:
            assert HEX64.fullmatch(value), (field, value)
    props = event.get("properties", {})
    for content in props.get("contents", []):
        assert isinstance(content["content_id"], str)
        assert type(content["quantity"]) is int
        assert isinstance(content.get("price", 0), int | float)
    for name in ("order_id", "search_string", "currency"):
        assert isinstance(props.get(name, "x"), str)
    assert isinstance(props.get("value", 0), int | float)
    assert not isinstance(props.get("value", 0), bool)
