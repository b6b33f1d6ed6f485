"""TikTok's answer -> what delivery does with the batch (SPEC 7). Every retry decision lives here.

The delivery worker never looks at HTTP statuses or TikTok codes; it acts on the ``Outcome``
returned by ``classify``:

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

import email.utils
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from types import MappingProxyType
from typing import Literal

import httpx
from pydantic import ValidationError

from tiktok_gateway.tags.tiktok.payload import TrackResponse

Kind = Literal["delivered", "partial", "reject_event", "reject_batch", "pause", "split", "retry"]

# Failed deliveries after which an unknown code gives up (about half an hour of back-off with
# the default policy: base 1 s, cap 300 s, full jitter).
UNKNOWN_MAX_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Rule:
    """What a code or status means: the outcome ``kind`` and a short, stable ``reason``."""

    kind: Kind
    reason: str
    max_attempts: int | None = None


# TikTok's body codes (SPEC 7 table), one row each.
CODES: Mapping[int, Rule] = MappingProxyType(
    {
        0: Rule("delivered", "ok"),
        20001: Rule("partial", "partial_success"),
        40000: Rule("reject_event", "invalid_params"),
        40002: Rule("reject_event", "invalid_field"),
        40062: Rule("reject_event", "pii_not_hashed"),
        40001: Rule("pause", "no_permission"),
        40102: Rule("pause", "token_expired"),
        40104: Rule("pause", "token_empty"),
        40105: Rule("pause", "token_invalid"),
        40006: Rule("reject_batch", "api_version_retired"),
        40051: Rule("reject_batch", "interface_retired"),
        41001: Rule("reject_batch", "field_retired"),
        41002: Rule("reject_batch", "field_retired"),
        40063: Rule("reject_batch", "invalid_partner_name"),
        40061: Rule("split", "batch_too_large"),
        40100: Rule("retry", "throttled"),
        40132: Rule("retry", "throttled"),
        61000: Rule("retry", "throttled"),
        50000: Rule("retry", "server_error"),
        50002: Rule("retry", "server_error"),
        60001: Rule("retry", "maintenance"),
    }
)

# Code ranges, first match wins, looked at only when the code is not in CODES.
CODE_RANGES: tuple[tuple[range, Rule], ...] = (
    (range(51000, 52000), Rule("retry", "server_error")),
    (range(52000, 53000), Rule("retry", "server_error")),
    (range(50000, 70000), Rule("retry", "unknown_server_code")),
)

UNKNOWN = Rule("retry", "unknown_code", UNKNOWN_MAX_ATTEMPTS)

# HTTP statuses, used when the body carries no TikTok code (or code 0 with a non-2xx status).
STATUSES: Mapping[int, Rule] = MappingProxyType(
    {
        401: Rule("pause", "unauthorized"),
        403: Rule("pause", "forbidden"),
        404: Rule("pause", "endpoint_not_found"),
        405: Rule("pause", "endpoint_not_found"),
        407: Rule("pause", "proxy_auth"),
        410: Rule("pause", "endpoint_not_found"),
        408: Rule("retry", "timeout"),
        425: Rule("retry", "too_early"),
        429: Rule("retry", "throttled"),
        413: Rule("split", "payload_too_large"),
    }
)

STATUS_RANGES: tuple[tuple[range, Rule], ...] = (
    (range(500, 600), Rule("retry", "server_error")),
    (range(300, 400), Rule("pause", "redirected")),
)

_BATCH_INDEX = re.compile(r"(?<![A-Za-z0-9_])batch\.(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Delivered:
    request_id: str
    partial: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Retry:
    after: float | None
    reason: str
    code: int | None = None
    message: str = ""
    max_attempts: int | None = None
    request_id: str = ""

    @property
    def holds_tag(self) -> bool:
        """Whether TikTok or the network failed (throttled, 5xx, timeout, no connection), not
        this batch: then the tag's other events wait too. A code retried only a few times
        (``max_attempts``: one TikTok does not document) may concern this batch alone."""
        return self.max_attempts is None


@dataclass(frozen=True, slots=True)
class Reject:
    code: int | None
    message: str
    request_id: str = ""
    index: int | None = None
    scope: Literal["event", "batch"] = "event"


@dataclass(frozen=True, slots=True)
class Pause:
    code: int | None
    message: str
    reason: str
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class Split:
    code: int | None = None
    message: str = ""
    request_id: str = ""


Outcome = Delivered | Retry | Reject | Pause | Split


def rule_for_code(code: int) -> Rule:
    """The row for a TikTok body code (``UNKNOWN`` when no row or range has it)."""
    rule = CODES.get(code)
    if rule is not None:
        return rule
    return next((r for span, r in CODE_RANGES if code in span), UNKNOWN)


def rule_for_status(status: int) -> Rule:
    """The row for an HTTP status without a TikTok code (``UNKNOWN`` when none has it)."""
    rule = STATUSES.get(status)
    if rule is not None:
        return rule
    return next((r for span, r in STATUS_RANGES if status in span), UNKNOWN)


def batch_index(message: str) -> int | None:
    """The event index TikTok names in a message (``Batch.3.properties...`` -> 3), else None."""
    match = _BATCH_INDEX.search(message)
    return int(match.group(1)) if match else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta seconds or an HTTP date (RFC 9110)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now, 0.0)


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
        return Reject(code, message, request_id, batch_index(message), "event")
    if rule.kind == "reject_batch":
        return Reject(code, message, request_id, None, "batch")
    if rule.kind == "pause":
        return Pause(code, message, rule.reason, request_id)
    if rule.kind == "split":
        return Split(code, message, request_id)
    return Retry(after, rule.reason, code, message, rule.max_attempts, request_id)


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
        return Retry(after, reason, None, text)
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
        if rule is UNKNOWN and (index := batch_index(message)) is not None:
            # TikTok named the event, so whatever the code means, it is about that event.
            return Reject(code, message, request_id, index, "event")
        return _outcome(rule, code, message, request_id, after, data)
    if 200 <= status < 300:
        if code == 0:
            return Delivered(request_id, partial=False, detail=message)
        return Retry(after, "bad_response", None, f"HTTP {status} without a TikTok answer")
    return _outcome(rule_for_status(status), code, message, request_id, after, data)
