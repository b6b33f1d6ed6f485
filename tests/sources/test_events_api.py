from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiktok_gateway.errors import InputError, ParseError
from tiktok_gateway.event_data import LINE_KEY, RECEIVED_AT_KEY, SOURCE_KEY, RequestContext
from tiktok_gateway.sources.events_api import parse_events
from tiktok_gateway.sources.json_body import load_json_body, strip_internal_keys

CTX = RequestContext(
    received_at=1700000000.25,
    user_agent="shop-backend/1.0",
    ip="10.0.0.7",
    cookies={"ttclid": "server-cookie", "_ttp": "x"},
)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_single_object() -> None:
    parsed = parse_events(encode({"event_name": "purchase", "value": 0}), CTX)
    assert parsed.errors == []
    assert parsed.events == [
        {
            "event_name": "purchase",
            "value": 0,
            SOURCE_KEY: "events",
            RECEIVED_AT_KEY: 1700000000.25,
            LINE_KEY: 0,
        }
    ]


def test_request_user_agent_address_and_cookies_are_not_copied() -> None:
    (event,) = parse_events(encode({"x-ttq-event-name": "Purchase"}), CTX).events
    assert "user_agent" not in event
    assert "ip_override" not in event
    assert "x-gw-cookies" not in event


def test_values_sent_by_the_server_are_kept() -> None:
    sent = {"event_name": "x", "user_agent": "Mozilla/5.0", "ip_override": "198.51.100.7"}
    (event,) = parse_events(encode(sent), CTX).events
    assert event["user_agent"] == "Mozilla/5.0"
    assert event["ip_override"] == "198.51.100.7"


def test_list_with_bad_entries_keeps_the_others() -> None:
    parsed = parse_events(
        encode(
            [
                {"event_name": "a"},
                "text",
                None,
                {"x-ttq-event-name": "b"},
                {"value": 1},
                {"event_name": "  "},
                {"event_name": 5},
            ]
        ),
        CTX,
    )
    assert [(e.reason, e.line) for e in parsed.errors] == [
        ("invalid_event", 1),
        ("invalid_event", 2),
        ("missing_event_name", 4),
        ("missing_event_name", 5),
        ("missing_event_name", 6),
    ]
    assert [e[LINE_KEY] for e in parsed.events] == [0, 3]


def test_empty_list_is_no_events() -> None:
    parsed = parse_events(b"[]", CTX)
    assert parsed.events == []
    assert parsed.errors == []


def test_at_most_1000_events() -> None:
    assert len(parse_events(encode([{"event_name": "e"}] * 1000), CTX).events) == 1000
    with pytest.raises(ParseError) as info:
        parse_events(encode([{"event_name": "e"}] * 1001), CTX)
    assert info.value.reason == "too_many_events"


def test_internal_keys_cannot_be_spoofed() -> None:
    sent = {
        "event_name": "x",
        "x-gw-source": "ga4",
        "X-GW-Line": 99,
        "x-gw-received_at": 1,
        "x-gw-event_time": 2,
        "x-gw-consent": {"ad_user_data": "granted"},
        "x-gw-cookies": {"ttclid": "spoof"},
        "x-ga-gcs": "G111",
    }
    (event,) = parse_events(encode(sent), CTX).events
    assert event == {
        "event_name": "x",
        "x-ga-gcs": "G111",
        SOURCE_KEY: "events",
        RECEIVED_AT_KEY: 1700000000.25,
        LINE_KEY: 0,
    }


def test_strip_internal_keys_copies_and_leaves_the_input_alone() -> None:
    given = {"event_name": "a", "x-gw-line": 7, "X-GW-Source": "x"}
    stripped = strip_internal_keys(given)
    assert stripped == {"event_name": "a"}
    assert given == {"event_name": "a", "x-gw-line": 7, "X-GW-Source": "x"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "invalid_json"),
        (b"\xc3\x28", "invalid_json"),
        (b"{'a': 1}", "invalid_json"),
        (b'{"event_name": NaN}', "invalid_json"),
        (b'{"event_name": "x", "value": Infinity}', "invalid_json"),
        (b'{"event_name": "x", "value": 1e400}', "invalid_json"),
        (b'{"event_name": "x", "value": ' + b"9" * 5000 + b"}", "invalid_json"),
        (b'{"event_name": "x\\ud800"}', "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (b"42", "invalid_body"),
        (b'"text"', "invalid_body"),
        (b"null", "invalid_body"),
    ],
)
def test_whole_body_errors(payload: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_events(payload, CTX)
    assert info.value.reason == reason


def test_load_json_body_accepts_bom_and_surrogate_pairs() -> None:
    assert load_json_body(b"\xef\xbb\xbf{}") == {}
    assert load_json_body(b'"\\ud83d\\ude00"') == "\U0001f600"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
event_objects = st.dictionaries(
    st.one_of(st.sampled_from(["event_name", "x-ttq-event-name", "x-gw-line"]), st.text()),
    json_values,
    max_size=5,
)


def check_only_input_errors(payload: bytes) -> None:
    try:
        parsed = parse_events(payload, CTX)
    except InputError:
        return
    for event in parsed.events:
        json.dumps(event, allow_nan=False, ensure_ascii=False).encode("utf-8")
        assert event[SOURCE_KEY] == "events"
    lines = [e[LINE_KEY] for e in parsed.events] + [e.line for e in parsed.errors]
    assert sorted(lines) == list(range(len(lines)))


@given(st.binary())
def test_arbitrary_bytes_raise_only_input_errors(payload: bytes) -> None:
    check_only_input_errors(payload)


@given(json_values)
def test_arbitrary_json_raises_only_input_errors(value: Any) -> None:
    check_only_input_errors(json.dumps(value).encode())


@given(st.one_of(event_objects, st.lists(st.one_of(event_objects, json_values), max_size=8)))
def test_event_shaped_json_raises_only_input_errors(value: Any) -> None:
    check_only_input_errors(json.dumps(value).encode())
