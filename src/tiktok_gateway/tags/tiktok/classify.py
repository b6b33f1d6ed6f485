"""TikTok's answer -> what delivery does with the batch (SPEC 7). Every retry decision lives here.

The delivery worker never looks at HTTP statuses or TikTok codes; it acts on the outcome
(``delivery/outcome.py``) returned by ``classify``:

* ``Delivered``: TikTok has the events (code 0, or 20001 partial success): ack them.
* ``Retry``: transient (throttling, TikTok errors, HTTP 429/5xx, timeouts, connection errors):
  nack with back-off, never sooner than ``after`` (Retry-After). ``max_attempts`` (unknown
  codes only) asks the worker to dead-letter an item after that many failed deliveries.
* ``Reject``: permanent. ``scope="event"``: one event is invalid; ``index`` is its position in
  the request (from ``Batch.<i>`` in the message) or ``None`` (the worker bisects to find it).
  ``scope="batch"``: every event of the request fails the same way (retired API, partner name).
* ``Pause``: configuration (token, permission, endpoint): keep the events queued, pause the
  tag, probe again later.
* ``Split``: the request is too large: send it again in halves.

Every row also names the ``cause`` (the class of the answer) that metrics and logs report.

Decisions the SPEC leaves open (also in ARCHITECTURE.md):

* Precedence: a transport error, then HTTP 429/5xx (always ``Retry``), then TikTok's non-zero
  body ``code`` (whatever the HTTP status), then the HTTP status.
* HTTP 200 with a non-zero code is never ``Delivered`` (except 20001); HTTP 2xx without a
  readable ``{"code": int}`` body is ``Retry`` (a proxy or a truncated answer, not TikTok).
* Unknown codes: 50000 and above are TikTok's server family (50000, 51xxx, 52xxx, 60001,
  61000): ``Retry`` until the events expire. Any other unknown code with a ``Batch.<i>`` in the
  message is ``Reject`` of that event (TikTok named it). Any other unknown code is ``Retry``
  capped at ``UNKNOWN_MAX_ATTEMPTS``: a new transient code heals by itself, a new permanent one
  ends in the dead letters (``retries_exhausted``, replayable) instead of retrying for 7 days.
* HTTP 4xx without a TikTok code: 401/403/404/405/407/410 and 3xx (a redirect httpx does not
  follow) mean the token or ``api_url`` is wrong: ``Pause``. 408/425 are ``Retry``, 413 is
  ``Split``; any other (400, 422, ...) is treated like an unknown code (capped ``Retry``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import httpx
from pydantic import ValidationError

from tiktok_gateway.delivery.outcome import (
    Cause,
    Delivered,
    Outcome,
    Pause,
    Reject,
    Retry,
    Split,
    parse_retry_after,
    row_for,
)
from tiktok_gateway.tags.tiktok.payload import TrackResponse

Kind = Literal["delivered", "partial", "reject_event", "reject_batch", "pause", "split", "retry"]

# Failed deliveries after which an unknown code gives up (about half an hour of back-off with
# the default policy: base 1 s, cap 300 s, full jitter).
UNKNOWN_MAX_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Rule:
    """What a code or status means: the outcome ``kind``, a short, stable ``reason`` and the
    ``cause`` (class of the answer) that metrics report."""

    kind: Kind
    reason: str
    cause: Cause
    max_attempts: int | None = None


# TikTok's body codes (SPEC 7 table), one row each.
CODES: Mapping[int, Rule] = MappingProxyType(
    {
        0: Rule("delivered", "ok", "ok"),
        20001: Rule("partial", "partial_success", "partial"),
        40000: Rule("reject_event", "invalid_params", "invalid"),
        40002: Rule("reject_event", "invalid_field", "invalid"),
        40062: Rule("reject_event", "pii_not_hashed", "invalid"),
        40001: Rule("pause", "no_permission", "auth"),
        40102: Rule("pause", "token_expired", "auth"),
        40104: Rule("pause", "token_empty", "auth"),
        40105: Rule("pause", "token_invalid", "auth"),
        40006: Rule("reject_batch", "api_version_retired", "invalid"),
        40051: Rule("reject_batch", "interface_retired", "invalid"),
        41001: Rule("reject_batch", "field_retired", "invalid"),
        41002: Rule("reject_batch", "field_retired", "invalid"),
        40063: Rule("reject_batch", "invalid_partner_name", "invalid"),
        40061: Rule("split", "batch_too_large", "too_large"),
        40100: Rule("retry", "throttled", "throttled"),
        40132: Rule("retry", "throttled", "throttled"),
        61000: Rule("retry", "throttled", "throttled"),
        50000: Rule("retry", "server_error", "server"),
        50002: Rule("retry", "server_error", "server"),
        60001: Rule("retry", "maintenance", "server"),
    }
)

# Code ranges, first match wins, looked at only when the code is not in CODES.
CODE_RANGES: tuple[tuple[range, Rule], ...] = (
    (range(51000, 52000), Rule("retry", "server_error", "server")),
    (range(52000, 53000), Rule("retry", "server_error", "server")),
    (range(50000, 70000), Rule("retry", "unknown_server_code", "server")),
    # TikTok's client-error family: most likely about what was sent, but not documented.
    (range(40000, 50000), Rule("retry", "unknown_code", "invalid", UNKNOWN_MAX_ATTEMPTS)),
)

UNKNOWN = Rule("retry", "unknown_code", "unknown", UNKNOWN_MAX_ATTEMPTS)

# HTTP statuses, used when the body carries no TikTok code (or code 0 with a non-2xx status).
STATUSES: Mapping[int, Rule] = MappingProxyType(
    {
        401: Rule("pause", "unauthorized", "auth"),
        403: Rule("pause", "forbidden", "auth"),
        404: Rule("pause", "endpoint_not_found", "auth"),
        405: Rule("pause", "endpoint_not_found", "auth"),
        407: Rule("pause", "proxy_auth", "auth"),
        410: Rule("pause", "endpoint_not_found", "auth"),
        408: Rule("retry", "timeout", "transport"),
        425: Rule("retry", "too_early", "throttled"),
        429: Rule("retry", "throttled", "throttled"),
        413: Rule("split", "payload_too_large", "too_large"),
    }
)

STATUS_RANGES: tuple[tuple[range, Rule], ...] = (
    (range(500, 600), Rule("retry", "server_error", "server")),
    (range(300, 400), Rule("pause", "redirected", "auth")),
    (range(400, 500), Rule("retry", "unknown_code", "invalid", UNKNOWN_MAX_ATTEMPTS)),
)

_BATCH_INDEX = re.compile(r"(?<![A-Za-z0-9_])batch\.(\d+)", re.IGNORECASE)

__all__ = [
    "CODES",
    "CODE_RANGES",
    "STATUSES",
    "STATUS_RANGES",
    "UNKNOWN",
    "UNKNOWN_MAX_ATTEMPTS",
    "Rule",
    "batch_index",
    "classify",
    "parse_retry_after",
    "rule_for_code",
    "rule_for_status",
]


def rule_for_code(code: int) -> Rule:
    """The row for a TikTok body code (``UNKNOWN`` when no row or range has it)."""
    return row_for(code, CODES, CODE_RANGES, UNKNOWN)


def rule_for_status(status: int) -> Rule:
    """The row for an HTTP status without a TikTok code (``UNKNOWN`` when none has it)."""
    return row_for(status, STATUSES, STATUS_RANGES, UNKNOWN)


def batch_index(message: str) -> int | None:
    """The event index TikTok names in a message (``Batch.3.properties...`` -> 3), else None."""
    match = _BATCH_INDEX.search(message)
    return int(match.group(1)) if match else None


def _parse_body(body: bytes | None) -> TrackResponse | None:
    if not body:
        return None
    try:
        return TrackResponse.model_validate_json(body)
    except ValidationError:
        return None


def _outcome(
    rule: Rule, code: int | None, message: str, request_id: str, after: float | None, data: object
) -> Outcome:
    if rule.kind == "delivered":
        return Delivered(request_id, partial=False, detail=message)
    if rule.kind == "partial":
        detail = f"{message}: {json.dumps(data, default=str)[:1000]}" if data else message
        return Delivered(request_id, partial=True, detail=detail)
    if rule.kind == "reject_event":
        return Reject(code, message, request_id, batch_index(message), "event", rule.cause)
    if rule.kind == "reject_batch":
        return Reject(code, message, request_id, None, "batch", rule.cause)
    if rule.kind == "pause":
        return Pause(code, message, rule.reason, request_id)
    if rule.kind == "split":
        return Split(code, message, request_id)
    return Retry(after, rule.reason, code, message, rule.max_attempts, request_id, rule.cause)


def classify(
    status: int | None,
    body: bytes | None,
    *,
    error: Exception | None = None,
    retry_after: str | None = None,
    now: float | None = None,
) -> Outcome:
    """The outcome of one ``POST /event/track/``: ``status``/``body``/``retry_after`` of the
    response, or ``error`` when there was none (``httpx.RequestError``: timeout, connection).

    ``now`` (unix seconds, default: the system time) turns an HTTP-date Retry-After into a delay.
    """
    if now is None:
        now = time.time()
    after = parse_retry_after(retry_after, now)
    if error is not None or status is None:
        reason = "timeout" if isinstance(error, httpx.TimeoutException) else "connection"
        text = f"{type(error).__name__}: {error}" if error is not None else "no response"
        return Retry(after, reason, None, text, cause="transport")
    parsed = _parse_body(body)
    code = parsed.code if parsed is not None else None
    message = parsed.message if parsed is not None else f"HTTP {status}"
    request_id = parsed.request_id if parsed is not None else ""
    data = parsed.data if parsed is not None else None
    if status == 429 or 500 <= status < 600:
        if not code:  # no TikTok words (or a meaningless "0"): report the HTTP status
            code, message = None, f"HTTP {status}"
        return _outcome(rule_for_status(status), code, message, request_id, after, data)
    if code is not None and code != 0:
        rule = rule_for_code(code)
        if rule.reason == "unknown_code" and (index := batch_index(message)) is not None:
            # TikTok named the event, so whatever the code means, it is about that event.
            return Reject(code, message, request_id, index, "event")
        return _outcome(rule, code, message, request_id, after, data)
    if 200 <= status < 300:
        if code == 0:
            return Delivered(request_id, partial=False, detail=message)
        text = f"HTTP {status} without a TikTok answer"
        return Retry(after, "bad_response", None, text, cause="unexpected")
    return _outcome(rule_for_status(status), code, message, request_id, after, data)
