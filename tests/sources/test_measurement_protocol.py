from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiktok_gateway.errors import AuthError, InputError, LineError, ParseError
from tiktok_gateway.event_data import (
    CONSENT_KEY,
    COOKIES_KEY,
    EVENT_TIME_KEY,
    LINE_KEY,
    RECEIVED_AT_KEY,
    SOURCE_KEY,
    ParsedInput,
    RequestContext,
)
from tiktok_gateway.sources.measurement_protocol import parse_mp

MID = "G-TEST123"
CTX = RequestContext(
    received_at=1700000100.0,
    user_agent="python-requests/2.31",
    ip="203.0.113.1",
    cookies={"_ttp": "ttp1", "other": "x"},
)


def mp(
    document: Any,
    *,
    ctx: RequestContext = CTX,
    measurement_id: str | None = MID,
    api_secret: str | None = None,
    secrets: Mapping[str, str] | None = None,
) -> ParsedInput:
    """``secrets=None``: not checked (the tests of the body's parsing)."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return parse_mp(
        body, ctx, measurement_id=measurement_id, api_secret=api_secret, secrets=secrets
    )


def body(*events: Any, **top: Any) -> dict[str, Any]:
    return {"client_id": "123.456", "events": list(events), **top}


def test_full_event_data() -> None:
    parsed = mp(
        body(
            {
                "name": "purchase",
                "params": {
                    "currency": "EUR",
                    "value": 12.5,
                    "transaction_id": "T1",
                    "items": [{"item_id": "SKU1", "price": 12.5, "quantity": 1}, "junk", 3],
                    "event_name": "not_this",
                    "x-gw-source": "spoofed",
                    "x-ttq-event-id": "abc",
                },
            },
            user_id="u-1",
            user_properties={"tier": {"value": "gold"}, "bad": "shape", "nil": {"value": None}},
            user_data={"sha256_email_address": ["a" * 64], "address": [{"country": "no"}]},
            consent={"ad_user_data": "GRANTED", "ad_personalization": "Denied", "ad_storage": "x"},
        )
    )
    assert parsed.errors == []
    assert parsed.events == [
        {
            "currency": "EUR",
            "value": 12.5,
            "transaction_id": "T1",
            "items": [{"item_id": "SKU1", "price": 12.5, "quantity": 1}],
            "x-ttq-event-id": "abc",
            "event_name": "purchase",
            "client_id": "123.456",
            "x-ga-measurement_id": MID,
            "user_id": "u-1",
            "x-ga-mp2-user_properties": {"tier": "gold"},
            "user_data": {"sha256_email_address": ["a" * 64], "address": [{"country": "no"}]},
            CONSENT_KEY: {"ad_user_data": "granted", "ad_personalization": "denied"},
            SOURCE_KEY: "mp",
            RECEIVED_AT_KEY: 1700000100.0,
            "user_agent": "python-requests/2.31",
            "ip_override": "203.0.113.1",
            COOKIES_KEY: {"_ttp": "ttp1"},
            LINE_KEY: 0,
        }
    ]


def test_minimal_event_has_no_optional_keys() -> None:
    ctx = RequestContext(received_at=5.0)
    (event,) = mp(body({"name": "page_view"}, consent={"ad_user_data": "maybe"}), ctx=ctx).events
    assert event == {
        "event_name": "page_view",
        "client_id": "123.456",
        "x-ga-measurement_id": MID,
        SOURCE_KEY: "mp",
        RECEIVED_AT_KEY: 5.0,
        LINE_KEY: 0,
    }


def test_numeric_user_id_becomes_a_string_and_items_must_be_a_list() -> None:
    (event,) = mp(body({"name": "x", "params": {"items": "nope"}}, user_id=42)).events
    assert event["user_id"] == "42"
    assert "items" not in event


def test_body_ip_override_wins_over_the_request_address() -> None:
    (event,) = mp(body({"name": "x"}, ip_override=" 2001:DB8::1 ")).events
    assert event["ip_override"] == "2001:db8::1"
    (event,) = mp(body({"name": "x"}, ip_override="not an ip")).events
    assert event["ip_override"] == "203.0.113.1"


def test_events_do_not_share_top_level_containers() -> None:
    first, second = mp(
        body({"name": "a"}, {"name": "b"}, user_data={"x": 1}, consent={"ad_user_data": "denied"})
    ).events
    first["user_data"]["x"] = 2
    first[CONSENT_KEY]["ad_user_data"] = "granted"
    assert second["user_data"] == {"x": 1}
    assert second[CONSENT_KEY] == {"ad_user_data": "denied"}
    assert [first[LINE_KEY], second[LINE_KEY]] == [0, 1]


def test_secret_accepted_when_it_matches() -> None:
    parsed = mp(body({"name": "x"}), api_secret="s3cret", secrets={MID: "s3cret"})
    assert len(parsed.events) == 1


@pytest.mark.parametrize("given_secret", ["wrong", None, "", "sécret", "s3cret "])
def test_wrong_or_missing_secret_is_403(given_secret: str | None) -> None:
    with pytest.raises(AuthError) as info:
        mp(body({"name": "x"}), api_secret=given_secret, secrets={MID: "s3cret"})
    assert info.value.reason == "invalid_api_secret"
    assert info.value.status == 403


def test_secret_checked_before_the_body_is_read() -> None:
    with pytest.raises(AuthError):
        mp(b"not json", api_secret="wrong", secrets={MID: "s3cret"})


@pytest.mark.parametrize("secrets", [{}, {"G-OTHER": "s3cret"}, {MID: ""}])
def test_an_id_without_a_configured_secret_is_refused(secrets: dict[str, str]) -> None:
    with pytest.raises(AuthError) as info:
        mp(body({"name": "x"}), api_secret="anything", secrets=secrets)
    assert (info.value.status, info.value.reason) == (403, "measurement_id_not_enabled")
    assert "GATEWAY_MP_API_SECRETS" in str(info.value)


@pytest.mark.parametrize("measurement_id", [None, "", "  "])
def test_missing_measurement_id(measurement_id: str | None) -> None:
    with pytest.raises(ParseError) as info:
        mp(body({"name": "x"}), measurement_id=measurement_id)
    assert info.value.reason == "missing_measurement_id"


def test_at_most_25_events() -> None:
    assert len(mp(body(*[{"name": f"e{i}"} for i in range(25)])).events) == 25
    with pytest.raises(ParseError) as info:
        mp(body(*[{"name": f"e{i}"} for i in range(26)]))
    assert info.value.reason == "too_many_events"


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"\xff\xfe", "invalid_json"),
        (b"{", "invalid_json"),
        ([], "invalid_json"),
        ({"events": []}, "missing_client_id"),
        ({"client_id": "", "events": []}, "missing_client_id"),
        ({"client_id": 5, "events": []}, "invalid_client_id"),
        ({"client_id": "c"}, "invalid_events"),
        ({"client_id": "c", "events": {}}, "invalid_events"),
        ({"client_id": "c", "events": [], "timestamp_micros": "soon"}, "invalid_timestamp"),
    ],
)
def test_whole_request_errors(document: Any, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        mp(document)
    assert info.value.reason == reason


def test_bad_events_are_line_errors_and_the_others_go_on() -> None:
    parsed = mp(
        body(
            "string",
            {"name": ""},
            {"params": {}},
            {"name": "x", "params": []},
            {"name": "ok", "params": None},
            {"name": "x", "timestamp_micros": 1.5},
        )
    )
    assert [(e.reason, e.line) for e in parsed.errors] == [
        ("invalid_event", 0),
        ("missing_event_name", 1),
        ("missing_event_name", 2),
        ("invalid_params", 3),
        ("invalid_timestamp", 5),
    ]
    assert all(isinstance(e, LineError) for e in parsed.errors)
    assert [(e["event_name"], e[LINE_KEY]) for e in parsed.events] == [("ok", 4)]


@pytest.mark.parametrize(
    ("event_ts", "request_ts", "expected"),
    [
        (1700000000123456, 1600000000000000, 1700000000.123456),
        (None, 1600000000000000, 1600000000.0),
        ("1700000000000000", None, 1700000000.0),
        (1.7e15, None, 1700000000.0),
        (None, None, None),
    ],
)
def test_event_time_precedence(event_ts: Any, request_ts: Any, expected: float | None) -> None:
    event: dict[str, Any] = {"name": "x"}
    if event_ts is not None:
        event["timestamp_micros"] = event_ts
    top = {} if request_ts is None else {"timestamp_micros": request_ts}
    (data,) = mp(body(event, **top)).events
    assert data.get(EVENT_TIME_KEY) == expected
    assert data[RECEIVED_AT_KEY] == CTX.received_at


@pytest.mark.parametrize("bad", [True, -1, "12a", "", 1.5, [1], {"v": 1}, 10**30, "9" * 5000])
def test_invalid_event_timestamp(bad: Any) -> None:
    parsed = mp(body({"name": "x", "timestamp_micros": bad}, {"name": "y"}))
    assert [(e.reason, e.line) for e in parsed.errors] == [("invalid_timestamp", 0)]
    assert [e["event_name"] for e in parsed.events] == ["y"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
mp_events = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=10), json_values),
        "params": st.dictionaries(st.sampled_from(["items", "x-gw-line", "a"]), json_values)
        | json_values,
        "timestamp_micros": st.one_of(st.integers(), st.text(max_size=20), json_values),
    },
)
mp_bodies = st.fixed_dictionaries(
    {},
    optional={
        "client_id": st.one_of(st.just("1.2"), json_values),
        "user_id": json_values,
        "timestamp_micros": st.one_of(st.integers(), json_values),
        "user_properties": st.dictionaries(st.text(max_size=5), json_values) | json_values,
        "user_data": json_values,
        "consent": st.dictionaries(st.sampled_from(["ad_user_data", "x"]), json_values)
        | json_values,
        "ip_override": st.one_of(st.ip_addresses().map(str), json_values),
        "events": st.one_of(st.lists(st.one_of(mp_events, json_values), max_size=27), json_values),
    },
)


def check_only_input_errors(payload: bytes, api_secret: str | None) -> None:
    try:
        parsed = parse_mp(
            payload, CTX, measurement_id=MID, api_secret=api_secret, secrets={MID: "s3cret"}
        )
    except InputError:
        return
    for event in parsed.events:
        # Event data must stay serialisable as strict, UTF-8 encodable JSON.
        json.dumps(event, allow_nan=False, ensure_ascii=False).encode("utf-8")
        assert event[SOURCE_KEY] == "mp"


@given(st.binary())
def test_arbitrary_bytes_raise_only_input_errors(payload: bytes) -> None:
    check_only_input_errors(payload, "s3cret")


@given(json_values)
def test_arbitrary_json_raises_only_input_errors(value: Any) -> None:
    check_only_input_errors(json.dumps(value).encode(), "s3cret")


@given(mp_bodies, st.one_of(st.none(), st.just("s3cret"), st.text()))
def test_mp_shaped_json_raises_only_input_errors(value: Any, secret: str | None) -> None:
    check_only_input_errors(json.dumps(value).encode(), secret)
