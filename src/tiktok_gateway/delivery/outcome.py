"""What a destination's answer means to the delivery worker: the outcome vocabulary.

Every destination kind reads its own answers with a classifier (a table of codes and statuses,
``tags/<kind>/classify.py``) and returns one of these; the worker acts on them and never looks at
a status code (Vector's ``RetryAction``, OpenTelemetry's permanent/throttle errors):

* ``Delivered``: the destination has the items: ack them.
* ``Retry``: transient: nack with back-off, never sooner than ``after`` (Retry-After).
  ``max_attempts`` (codes a destination does not document) asks the worker to dead-letter an
  item after that many failed deliveries. ``holds`` says the destination or the network failed,
  not this batch: the destination's other items wait too (the lane backs off as a whole).
* ``Reject``: permanent. ``scope="event"``: one item is bad; ``index`` is its position in the
  request when the destination named it, else ``None`` (the worker bisects to find it).
  ``scope="batch"``: every item of the request fails the same way.
* ``Pause``: configuration (credentials, permission, endpoint): keep the items queued, pause
  the destination, probe again later.
* ``Split``: the request is too large: send it again in halves.

Each outcome carries ``cause``, the class of what was seen, for metrics and logs (so nothing is
parsed back out of a message): one of ``CAUSES``.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Final, Literal, TypeVar, get_args

Cause = Literal[
    "ok",
    "partial",
    "invalid",
    "too_large",
    "auth",
    "throttled",
    "server",
    "transport",
    "unexpected",
    "unknown",
]
"""The class of an answer: ``ok``/``partial`` (delivered), ``invalid`` (the items were refused),
``too_large``, ``auth`` (credentials, permission, endpoint), ``throttled``, ``server`` (the
destination's own error), ``transport`` (no answer: timeout, connection), ``unexpected`` (an
answer that does not look like the destination's, e.g. a proxy's), ``unknown`` (a code nobody
documents)."""

CAUSES: Final[tuple[Cause, ...]] = get_args(Cause)

R = TypeVar("R")


def row_for(value: int, rows: Mapping[int, R], ranges: Sequence[tuple[range, R]], default: R) -> R:
    """A classifier table's row for ``value`` (a code or an HTTP status): its own row, else the
    first range that holds it, else ``default``."""
    row = rows.get(value)
    if row is not None:
        return row
    return next((r for span, r in ranges if value in span), default)


@dataclass(frozen=True, slots=True)
class Delivered:
    request_id: str
    partial: bool = False
    detail: str = ""

    @property
    def cause(self) -> Cause:
        return "partial" if self.partial else "ok"


@dataclass(frozen=True, slots=True)
class Retry:
    after: float | None
    reason: str
    code: int | None = None
    message: str = ""
    max_attempts: int | None = None
    request_id: str = ""
    cause: Cause = "server"

    @property
    def holds(self) -> bool:
        """Whether the destination or the network failed (throttled, 5xx, timeout, no
        connection), not this batch: then the destination's other items wait too. A code retried
        only a few times (``max_attempts``: one nobody documents) may concern this batch alone."""
        return self.max_attempts is None


@dataclass(frozen=True, slots=True)
class Reject:
    code: int | None
    message: str
    request_id: str = ""
    index: int | None = None
    scope: Literal["event", "batch"] = "event"
    cause: Cause = "invalid"


@dataclass(frozen=True, slots=True)
class Pause:
    code: int | None
    message: str
    reason: str
    request_id: str = ""
    cause: Cause = "auth"


@dataclass(frozen=True, slots=True)
class Split:
    code: int | None = None
    message: str = ""
    request_id: str = ""

    @property
    def cause(self) -> Cause:
        return "too_large"


Outcome = Delivered | Retry | Reject | Pause | Split


def words(outcome: Outcome) -> tuple[int | None, str, str]:
    """The destination's code, message (or detail) and request id in an outcome."""
    if isinstance(outcome, Delivered):
        return None, outcome.detail, outcome.request_id
    return outcome.code, outcome.message, outcome.request_id


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
