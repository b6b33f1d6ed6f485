"""The response classifier against every row of SPEC 7's table, and the decisions it documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from tiktok_gateway.delivery.outcome import (
    CAUSES,
    Delivered,
    Outcome,
    Pause,
    Reject,
    Retry,
    Split,
    parse_retry_after,
)
from tiktok_gateway.tags.tiktok.classify import (
    CODES,
    UNKNOWN_MAX_ATTEMPTS,
    batch_index,
    classify,
)

NOW = 1_700_000_000.0


def tiktok(code: int, message: str = "msg", data: object = None) -> bytes:
    body: dict[str, object] = {"code": code, "message": message, "request_id": "req-1"}
    if data is not None:
        body["data"] = data
    return json.dumps(body).encode()


def at(status: int, body: bytes | None, retry_after: str | None = None) -> Outcome:
    return classify(status, body, retry_after=retry_after, now=NOW)


# (HTTP status, body) -> expected outcome; one row per code of the SPEC 7 table.
TABLE: list[tuple[int, bytes, Outcome]] = [
    (200, tiktok(0, "OK"), Delivered("req-1", False, "OK")),
    (200, tiktok(20001, "partial"), Delivered("req-1", True, "partial")),
    (200, tiktok(40000, "bad params"), Reject(40000, "bad params", "req-1", None, "event")),
    (200, tiktok(40002, "Batch.3.x: bad"), Reject(40002, "Batch.3.x: bad", "req-1", 3, "event")),
    (200, tiktok(40062, "Batch.0.user.email"), Reject(40062, "Batch.0.user.email", "req-1", 0)),
    (200, tiktok(40001, "m"), Pause(40001, "m", "no_permission", request_id="req-1")),
    (200, tiktok(40102, "m"), Pause(40102, "m", "token_expired", request_id="req-1")),
    (200, tiktok(40104, "m"), Pause(40104, "m", "token_empty", request_id="req-1")),
    (200, tiktok(40105, "m"), Pause(40105, "m", "token_invalid", request_id="req-1")),
    (200, tiktok(40006, "m"), Reject(40006, "m", "req-1", None, "batch")),
    (200, tiktok(40051, "m"), Reject(40051, "m", "req-1", None, "batch")),
    (200, tiktok(41001, "m"), Reject(41001, "m", "req-1", None, "batch")),
    (200, tiktok(41002, "m"), Reject(41002, "m", "req-1", None, "batch")),
    (200, tiktok(40063, "m"), Reject(40063, "m", "req-1", None, "batch")),
    (200, tiktok(40061, "m"), Split(40061, "m", request_id="req-1")),
    (
        200,
        tiktok(40100, "m"),
        Retry(None, "throttled", 40100, "m", request_id="req-1", cause="throttled"),
    ),
    (
        200,
        tiktok(40132, "m"),
        Retry(None, "throttled", 40132, "m", request_id="req-1", cause="throttled"),
    ),
    (
        200,
        tiktok(61000, "m"),
        Retry(None, "throttled", 61000, "m", request_id="req-1", cause="throttled"),
    ),
    (200, tiktok(50000, "m"), Retry(None, "server_error", 50000, "m", request_id="req-1")),
    (200, tiktok(50002, "m"), Retry(None, "server_error", 50002, "m", request_id="req-1")),
    (200, tiktok(51234, "m"), Retry(None, "server_error", 51234, "m", request_id="req-1")),
    (200, tiktok(52001, "m"), Retry(None, "server_error", 52001, "m", request_id="req-1")),
    (200, tiktok(60001, "m"), Retry(None, "maintenance", 60001, "m", request_id="req-1")),
    (429, b"", Retry(None, "throttled", None, "HTTP 429", cause="throttled")),
    (500, b"<html>oops</html>", Retry(None, "server_error", None, "HTTP 500")),
    (502, b"", Retry(None, "server_error", None, "HTTP 502")),
    (503, tiktok(50000, "busy"), Retry(None, "server_error", 50000, "busy", request_id="req-1")),
    # Decisions beyond the table (see the module docstring).
    (
        200,
        b"<html>captive portal</html>",
        Retry(None, "bad_response", None, "HTTP 200 without a TikTok answer", cause="unexpected"),
    ),
    (
        200,
        b"",
        Retry(None, "bad_response", None, "HTTP 200 without a TikTok answer", cause="unexpected"),
    ),
    (
        200,
        b'{"message": "no code"}',
        Retry(None, "bad_response", None, "HTTP 200 without a TikTok answer", cause="unexpected"),
    ),
    (
        200,
        tiktok(45678, "m"),
        Retry(None, "unknown_code", 45678, "m", UNKNOWN_MAX_ATTEMPTS, "req-1", cause="invalid"),
    ),
    (200, tiktok(45678, "Batch.7.foo: bad"), Reject(45678, "Batch.7.foo: bad", "req-1", 7)),
    (200, tiktok(59999, "m"), Retry(None, "unknown_server_code", 59999, "m", request_id="req-1")),
    (400, tiktok(40002, "Batch.1.x"), Reject(40002, "Batch.1.x", "req-1", 1)),
    (
        400,
        b"bad request",
        Retry(None, "unknown_code", None, "HTTP 400", UNKNOWN_MAX_ATTEMPTS, cause="invalid"),
    ),
    (401, b"", Pause(None, "HTTP 401", "unauthorized")),
    (403, b"", Pause(None, "HTTP 403", "forbidden")),
    (404, b"not found", Pause(None, "HTTP 404", "endpoint_not_found")),
    (301, b"", Pause(None, "HTTP 301", "redirected")),
    (408, b"", Retry(None, "timeout", None, "HTTP 408", cause="transport")),
    (413, b"", Split(None, "HTTP 413")),
    (201, tiktok(0, "OK"), Delivered("req-1", False, "OK")),
]


@pytest.mark.parametrize(("status", "body", "expected"), TABLE)
def test_table(status: int, body: bytes, expected: Outcome) -> None:
    assert at(status, body) == expected


CAUSE_TABLE: list[tuple[int | None, bytes, str]] = [
    (200, tiktok(0), "ok"),
    (200, tiktok(20001), "partial"),
    (200, tiktok(40002, "Batch.0.event: required"), "invalid"),
    (200, tiktok(40000), "invalid"),
    (200, tiktok(40061), "too_large"),
    (413, b"", "too_large"),
    (200, tiktok(40105), "auth"),
    (401, b"", "auth"),
    (200, tiktok(40100), "throttled"),
    (429, b"", "throttled"),
    (200, tiktok(50002), "server"),
    (503, b"", "server"),
    (None, b"", "transport"),
    (408, b"", "transport"),
    (200, b"<html>", "unexpected"),
    (200, tiktok(12345), "unknown"),
    (200, tiktok(44444), "invalid"),
]


@pytest.mark.parametrize(("status", "body", "cause"), CAUSE_TABLE)
def test_the_cause_of_each_answer(status: int | None, body: bytes, cause: str) -> None:
    """What metrics and logs report as ``code_class`` comes from the rows, not from text."""
    outcome = classify(status, body, now=NOW)
    assert outcome.cause == cause
    assert cause in CAUSES


def test_every_code_of_the_table_has_a_row() -> None:
    spec_codes = {0, 20001, 40000, 40002, 40062, 40001, 40102, 40104, 40105, 40006, 40051}
    spec_codes |= {41001, 41002, 40061, 40063, 40100, 40132, 61000, 50000, 50002, 60001}
    assert spec_codes <= set(CODES)
    tested = {json.loads(body)["code"] for _, body, _ in TABLE if body.startswith(b'{"code"')}
    assert spec_codes <= tested


def test_non_zero_code_with_http_200_is_never_delivered() -> None:
    for code in range(1, 70000, 7):
        outcome = at(200, tiktok(code))
        assert not isinstance(outcome, Delivered) or code == 20001


def test_partial_success_keeps_what_tiktok_reports() -> None:
    outcome = at(200, tiktok(20001, "partial", {"failed_events": [{"index": 2}]}))
    assert isinstance(outcome, Delivered)
    assert outcome.partial
    assert "failed_events" in outcome.detail


def test_timeout_is_retry() -> None:
    error = httpx.ReadTimeout("timed out")
    outcome = classify(None, None, error=error, now=NOW)
    assert outcome == Retry(None, "timeout", None, "ReadTimeout: timed out", cause="transport")


def test_connection_error_is_retry() -> None:
    error = httpx.ConnectError("refused")
    outcome = classify(None, None, error=error, now=NOW)
    assert outcome == Retry(None, "connection", None, "ConnectError: refused", cause="transport")


def test_retry_after_seconds() -> None:
    outcome = at(429, b"", retry_after="120")
    assert isinstance(outcome, Retry)
    assert outcome.after == 120.0


def test_retry_after_http_date() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 90, tz=UTC), usegmt=True)
    outcome = at(503, b"", retry_after=when)
    assert isinstance(outcome, Retry)
    assert outcome.after == 90.0


def test_retry_after_applies_to_throttling_codes_and_transport_errors() -> None:
    outcome = at(200, tiktok(40100), retry_after="5")
    assert isinstance(outcome, Retry)
    assert outcome.after == 5.0
    outcome = classify(None, None, error=httpx.ConnectError("x"), retry_after="7", now=NOW)
    assert isinstance(outcome, Retry)
    assert outcome.after == 7.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  3 ", 3.0),
        ("-4", 0.0),
        ("soon", None),
        ("inf", None),
        ("Tue, 14 Nov 2023 22:13:20 GMT", 0.0),  # NOW itself
        ("Wed, 15 Nov 2023 22:13:20 GMT", 86400.0),
        ("Mon, 13 Nov 2023 22:13:20 GMT", 0.0),  # in the past: no wait
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Batch.3.properties.contents.0.content_id: Not a valid string", 3),
        ("Batch.12: bad", 12),
        ("Invalid field batch.0.event", 0),
        ("data.Batch.5.x", 5),
        ("MyBatch.4: not an index", None),
        ("Batch.x: no digits", None),
        ("no index at all", None),
    ],
)
def test_batch_index(message: str, expected: int | None) -> None:
    assert batch_index(message) == expected
