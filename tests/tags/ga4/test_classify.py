"""Google's answers to a forward -> delivery outcomes (tags/ga4/classify.py), row by row."""

from __future__ import annotations

import httpx
import pytest

from tiktok_gateway.delivery.outcome import Delivered, Outcome, Pause, Reject, Retry
from tiktok_gateway.tags.ga4.classify import classify

NOW = 1_700_000_000.0

TABLE: list[tuple[int, str | None, Outcome]] = [
    (204, None, Delivered("", detail="HTTP 204")),
    (200, None, Delivered("", detail="HTTP 200")),
    (429, "30", Retry(30.0, "throttled", None, "HTTP 429", cause="throttled")),
    (408, None, Retry(None, "timeout", None, "HTTP 408", cause="transport")),
    (500, None, Retry(None, "server_error", None, "HTTP 500", cause="server")),
    (503, "7", Retry(7.0, "server_error", None, "HTTP 503", cause="server")),
    (400, None, Reject(None, "HTTP 400", cause="invalid")),
    (404, None, Reject(None, "HTTP 404", cause="invalid")),
    (413, None, Reject(None, "HTTP 413", cause="invalid")),
    (301, None, Pause(None, "HTTP 301", "redirected", cause="unexpected")),
    (600, None, Retry(None, "unknown_status", None, "HTTP 600", cause="unknown")),
]


@pytest.mark.parametrize(("status", "retry_after", "expected"), TABLE)
def test_table(status: int, retry_after: str | None, expected: Outcome) -> None:
    assert classify(status, retry_after=retry_after, now=NOW) == expected


def test_what_holds_the_destination_back() -> None:
    """Throttling, 5xx and transport failures back the whole GA4 destination off; a refused hit
    (4xx) concerns that hit alone: it is dead-lettered."""
    for status in (429, 500, 503):
        outcome = classify(status, now=NOW)
        assert isinstance(outcome, Retry)
        assert outcome.holds
    assert isinstance(classify(400, now=NOW), Reject)


@pytest.mark.parametrize(
    ("error", "reason"),
    [(httpx.ReadTimeout("slow"), "timeout"), (httpx.ConnectError("refused"), "connection")],
)
def test_no_answer_is_a_transport_retry(error: httpx.RequestError, reason: str) -> None:
    outcome = classify(None, error=error, now=NOW)
    assert isinstance(outcome, Retry)
    assert (outcome.reason, outcome.cause, outcome.holds) == (reason, "transport", True)
