"""Google's answer to a forward -> what delivery does with it (SPEC 12). Every retry decision for
GA4 lives in these tables, as TikTok's live in ``tags/tiktok/classify.py``.

``/g/collect`` and ``/mp/collect`` answer 2xx with an empty body and validate nothing (there is
no validation endpoint for ``/g/collect``), so the HTTP status is all there is:

* 2xx: ``Delivered``.
* 429, 5xx, 408, a timeout or no connection: ``Retry`` with the shared back-off (Retry-After
  honoured); the GA4 destination backs off as a whole meanwhile.
* any other 4xx: ``Reject`` (dead letter, replayable): Google refuses the hit as sent.
* 3xx (a redirect, which the client does not follow): ``Pause``: the endpoint is wrong (an
  ``http://`` base URL answered with a redirect to https, say); forwards stay queued and one
  probes every ``probe_interval_seconds`` until the configuration is fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import httpx

from tiktok_gateway.delivery.outcome import (
    Cause,
    Delivered,
    Outcome,
    Pause,
    Reject,
    Retry,
    parse_retry_after,
    row_for,
)

Kind = Literal["delivered", "reject", "pause", "retry"]


@dataclass(frozen=True, slots=True)
class Rule:
    """What a status means: the outcome ``kind``, a stable ``reason`` and the ``cause``."""

    kind: Kind
    reason: str
    cause: Cause


STATUSES: Mapping[int, Rule] = MappingProxyType(
    {
        408: Rule("retry", "timeout", "transport"),
        429: Rule("retry", "throttled", "throttled"),
    }
)

# Looked at when the status has no row of its own; first match wins.
STATUS_RANGES: tuple[tuple[range, Rule], ...] = (
    (range(200, 300), Rule("delivered", "ok", "ok")),
    (range(500, 600), Rule("retry", "server_error", "server")),
    (range(400, 500), Rule("reject", "refused", "invalid")),
    (range(300, 400), Rule("pause", "redirected", "unexpected")),
)

UNKNOWN = Rule("retry", "unknown_status", "unknown")


def rule_for_status(status: int) -> Rule:
    """The row for an HTTP status (``UNKNOWN`` for one outside every range)."""
    return row_for(status, STATUSES, STATUS_RANGES, UNKNOWN)


def classify(
    status: int | None,
    *,
    error: Exception | None = None,
    retry_after: str | None = None,
    now: float,
) -> Outcome:
    """The outcome of one forward: the response's ``status`` and Retry-After header, or the
    ``error`` (an httpx or ``http1`` error, a timeout) when there was no response. ``now``: unix
    seconds."""
    after = parse_retry_after(retry_after, now)
    if error is not None or status is None:
        timed_out = isinstance(error, httpx.TimeoutException | TimeoutError)
        reason = "timeout" if timed_out else "connection"
        text = f"{type(error).__name__}: {error}" if error is not None else "no response"
        return Retry(after, reason, None, text, cause="transport")
    rule = rule_for_status(status)
    message = f"HTTP {status}"
    if rule.kind == "delivered":
        return Delivered("", detail=message)
    if rule.kind == "reject":
        return Reject(None, message, cause=rule.cause)
    if rule.kind == "pause":
        return Pause(None, message, rule.reason, cause=rule.cause)
    return Retry(after, rule.reason, None, message, cause=rule.cause)
