from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiktok_gateway.sandbox import codes
from tiktok_gateway.sandbox.validation import EVENT_RULES, validate
from tiktok_gateway.tags.tiktok.payload import MAX_BATCH_EVENTS, request_body

HASH = hashlib.sha256(b"someone@example.com").hexdigest()
TOKEN = "secret-token"


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event": "CompletePayment",
        "event_time": 1700000000,
        "event_id": "order-1",
        "user": {
            "email": HASH,
            "phone": [HASH, HASH.replace("a", "b")],
            "external_id": HASH,
            "ip": "203.0.113.9",
            "user_agent": "Mozilla/5.0",
        },
        "page": {"url": "https://shop.example/checkout"},
        "properties": {
            "contents": [
                {"content_id": "sku-1", "price": 12.5, "quantity": 2},
                {"content_id": "sku-2", "price": 3, "quantity": 1},
            ],
            "currency": "EUR",
            "value": 28,
            "order_id": "order-1",
        },
    }
    base.update(overrides)
    return base


def body(events: list[Any] | None = None, **overrides: Any) -> dict[str, Any]:
    document = request_body("PIXEL1", [event()] if events is None else events, "TEST123")
    document.update(overrides)
    return document


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def test_valid_body_is_accepted_with_its_events() -> None:
    verdict = validate(encode(body([event(), event(event="ViewContent")])), TOKEN, TOKEN)
    assert verdict.accepted
    assert (verdict.code, verdict.message) == (0, "OK")
    assert verdict.pixel_code == "PIXEL1"
    assert verdict.test_event_code == "TEST123"
    assert [e["event"] for e in verdict.events] == ["CompletePayment", "ViewContent"]


def test_minimal_event_is_accepted_and_any_token_when_none_is_expected() -> None:
    minimal = {
        "event_source": "web",
        "event_source_id": "P",
        "data": [{"event": "X", "event_time": 1}],
    }
    assert validate(encode(minimal), None, None).accepted
    assert validate(encode(minimal), "anything", None).accepted
    assert validate(encode(minimal), None, "").accepted


@pytest.mark.parametrize(("given", "expected"), [(None, TOKEN), ("wrong", TOKEN), ("", TOKEN)])
def test_missing_or_wrong_token(given: str | None, expected: str) -> None:
    verdict = validate(encode(body()), given, expected)
    assert verdict.code == codes.ACCESS_TOKEN_INVALID == 40105
    assert "Access token" in verdict.message
    assert TOKEN not in verdict.message


def test_token_is_checked_before_the_body() -> None:
    assert validate(b"not json", "wrong", TOKEN).code == 40105


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "Invalid JSON body"),
        (b"{", "Invalid JSON body"),
        (b"\xff\xfe\x00", "Invalid JSON body"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b'{"a": 1e999}', "number out of range"),
        (b"[]", "expected an object"),
        (b"[" * 100_000, "Invalid JSON body"),
    ],
)
def test_bad_json(raw: bytes, fragment: str) -> None:
    verdict = validate(raw, None, None)
    assert verdict.code == 40002
    assert fragment in verdict.message


Mutation = Callable[[dict[str, Any]], None]


def drop(key: str) -> Mutation:
    return lambda document: document.pop(key)


def put(key: str, value: Any) -> Mutation:
    return lambda document: document.update({key: value})


BODY_CASES: list[tuple[Mutation, int, str]] = [
    (drop("event_source"), 40002, "event_source: Missing data for required field"),
    (drop("event_source_id"), 40002, "event_source_id: Missing data for required field"),
    (drop("data"), 40002, "data: Missing data for required field"),
    (put("event_source", "website"), 40002, "event_source: Must be one of: web, app, offline, crm"),
    (put("event_source_id", 7), 40002, "event_source_id: Not a valid string"),
    (put("event_source_id", " "), 40002, "event_source_id: Must not be empty"),
    (put("data", {"event": "X"}), 40002, "data: Not a valid list"),
    (put("data", None), 40002, "data: Field may not be null"),
    (put("data", []), 40002, f"data: Length must be between 1 and {MAX_BATCH_EVENTS}"),
    (put("test_event_code", 5), 40002, "test_event_code: Not a valid string"),
    (put("partner_name", "Acme"), 40063, "partner_name: Invalid partner name"),
    (put("partner_name", None), 40063, "partner_name: Invalid partner name"),
]


@pytest.mark.parametrize(("mutate", "code", "message"), BODY_CASES)
def test_body_rules(mutate: Mutation, code: int, message: str) -> None:
    document = body()
    mutate(document)
    verdict = validate(encode(document), None, None)
    assert (verdict.code, verdict.message) == (code, message)
    assert not verdict.accepted
    assert verdict.events == ()


def test_batch_limit() -> None:
    at_limit = body([event(event_id=str(i)) for i in range(MAX_BATCH_EVENTS)])
    assert validate(encode(at_limit), None, None).accepted
    over = body([event()] * (MAX_BATCH_EVENTS + 1))
    verdict = validate(encode(over), None, None)
    assert verdict.code == codes.BATCH_TOO_LARGE == 40061
    assert verdict.message == "data: Length must be between 1 and 1000"


DROP = object()


def set_path(document: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is DROP:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


# (path inside event 1, new value, code, why). Event 0 stays valid: the index must be 1.
EVENT_CASES: list[tuple[str, Any, int, str]] = [
    ("event", DROP, 40002, "Missing data for required field"),
    ("event", "", 40002, "Must not be empty"),
    ("event", 3, 40002, "Not a valid string"),
    ("event", None, 40002, "Field may not be null"),
    ("event_time", DROP, 40002, "Missing data for required field"),
    ("event_time", "1700000000", 40002, "Not a valid integer"),
    ("event_time", 1700000000.0, 40002, "Not a valid integer"),
    ("event_time", True, 40002, "Not a valid integer"),
    ("event_id", 17, 40002, "Not a valid string"),
    ("user", "someone", 40002, "Not a valid object"),
    ("user.email", "someone@example.com", 40062, "Not a SHA-256 hash"),
    ("user.email", HASH.upper(), 40062, "Not a SHA-256 hash"),
    ("user.email", HASH[:-1], 40062, "Not a SHA-256 hash"),
    ("user.email", [HASH, "x"], 40062, "Not a SHA-256 hash"),
    ("user.email", 12, 40062, "Not a SHA-256 hash"),
    ("user.phone", "+12133734253", 40062, "Not a SHA-256 hash"),
    ("user.external_id", "user_123", 40062, "Not a SHA-256 hash"),
    ("page", [], 40002, "Not a valid object"),
    ("properties", "x", 40002, "Not a valid object"),
    ("properties.contents", {"content_id": "a"}, 40002, "Not a valid list"),
    ("properties.contents.1", "sku", 40002, "Not a valid object"),
    ("properties.contents.1.content_id", 42, 40002, "Not a valid string"),
    ("properties.contents.0.price", "12.50", 40002, "Not a valid number"),
    ("properties.contents.0.price", False, 40002, "Not a valid number"),
    ("properties.contents.1.quantity", 1.5, 40002, "Not a valid integer"),
    ("properties.contents.1.quantity", None, 40002, "Field may not be null"),
    ("properties.order_id", 1001, 40002, "Not a valid string"),
    ("properties.value", "28", 40002, "Not a valid number"),
    ("partner_name", "Acme", 40063, "Invalid partner name"),
]


@pytest.mark.parametrize(("path", "value", "code", "why"), EVENT_CASES)
def test_event_rules(path: str, value: Any, code: int, why: str) -> None:
    bad = copy.deepcopy(event())
    set_path(bad, path, value)
    verdict = validate(encode(body([event(), bad, event()])), None, None)
    assert verdict.code == code
    assert verdict.message.startswith(f"Batch.1.{path}: {why}")
    assert not verdict.accepted


def test_every_event_rule_has_a_case() -> None:
    covered = {
        ".".join("*" if p.isdigit() else p for p in case[0].split(".")) for case in EVENT_CASES
    }
    assert {rule.path for rule in EVENT_RULES} <= covered


def test_spec_example_message() -> None:
    events = [event() for _ in range(4)]
    events[3]["properties"]["contents"][0]["content_id"] = 123
    verdict = validate(encode(body(events)), None, None)
    assert verdict.message == "Batch.3.properties.contents.0.content_id: Not a valid string"


def test_first_invalid_event_is_reported() -> None:
    events = [event(), event(event_time="x"), event(event="")]
    verdict = validate(encode(body(events)), None, None)
    assert verdict.message == "Batch.1.event_time: Not a valid integer"


def test_event_that_is_no_object() -> None:
    verdict = validate(encode(body([event(), "CompletePayment"])), None, None)
    assert (verdict.code, verdict.message) == (40002, "Batch.1: Not a valid object")


def test_optional_fields_may_be_absent() -> None:
    bare = {"event": "Search", "event_time": 1, "properties": {"contents": [{}]}, "user": {}}
    assert validate(encode(body([bare])), None, None).accepted


def test_hashes_may_be_lists() -> None:
    user = {"email": [HASH], "phone": [], "external_id": [HASH, HASH]}
    assert validate(encode(body([event(user=user)])), None, None).accepted


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=20,
)
EVENT_KEYS = st.sampled_from(["event", "event_time", "event_id", "user", "properties", "page"])


@given(st.binary(max_size=200))
def test_any_bytes_get_a_verdict(raw: bytes) -> None:
    verdict = validate(raw, None, None)
    assert verdict.code in (0, 40002, 40061, 40062, 40063)


@given(st.lists(st.dictionaries(EVENT_KEYS, JSON_VALUES, max_size=6), min_size=1, max_size=3))
def test_any_events_get_a_verdict(events: list[dict[str, Any]]) -> None:
    verdict = validate(encode(body(events)), None, None)
    assert verdict.code in (0, 40002, 40062)
    if not verdict.accepted:
        assert verdict.message.startswith("Batch.")
