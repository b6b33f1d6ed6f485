"""The sandbox's Google side: a stand-in for Google Analytics' ``/g/collect`` and
``/mp/collect`` (SPEC 12), so GA4 forwarding can be seen and tested offline.

Every request is recorded as it arrived (path, query, every header, body) and answered 204, as
Google answers. The listing shows it redacted as the debug page shows hits (``admin/redact``: no
e-mail address or phone number in clear, no secret), with the body's SHA-256 and length so that
a byte-identical forward can still be checked. ``faults`` (a ``FaultInjector`` of its own) make
it misbehave on demand: during an outage 503 with Retry-After, a share of failures (500 and 503
alternately) and of throttling (429), and added latency. Google validates nothing on these
paths, so neither does the sandbox.

Routes (mounted by ``app.create_sandbox_app``; ``{prefix}`` is its admin prefix):

- ``GET|POST /g/collect``, ``POST /mp/collect``: record, answer 204.
- ``GET {prefix}/ga4/hits?measurement_id=&limit=``: what was recorded, oldest first, and the
  totals; ``DELETE {prefix}/ga4/hits`` forgets them.
- ``POST {prefix}/ga4/outage?seconds=N`` (no ``seconds``: until ended), ``DELETE`` ends it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from tiktok_gateway.admin.redact import body_view, redact_pair
from tiktok_gateway.sandbox.faults import Fault, FaultInjector, FaultKind

WEB_PATH: Final = "/g/collect"
MP_PATH: Final = "/mp/collect"
DEFAULT_CAPACITY: Final = 10_000
_ID_PARAMS: Final = {WEB_PATH: "tid", MP_PATH: "measurement_id"}


@dataclass(frozen=True, slots=True)
class ReceivedHit:
    """One request as Google would have received it: ``query`` the raw query string,
    ``headers`` every header as ``(name, value)`` (lower-case names), ``body`` the exact bytes.
    """

    path: str
    measurement_id: str | None
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    received_at: float

    @property
    def params(self) -> list[tuple[str, str]]:
        """The query's parameters, decoded, in order."""
        return parse_qsl(self.query, keep_blank_values=True)

    def to_json(self) -> dict[str, Any]:
        """The listing's view: ``{"path", "measurement_id", "params": [[name, value]...],
        "headers": [[name, value]...], "body": {"lines"|"json": ...} | None, "body_bytes",
        "body_sha256", "received_at"}``, parameters, headers and body redacted."""
        return {
            "path": self.path,
            "measurement_id": self.measurement_id,
            "params": [redact_pair(name, value) for name, value in self.params],
            "headers": [redact_pair(name, value) for name, value in self.headers],
            "body": body_view(self.body),
            "body_bytes": len(self.body),
            "body_sha256": hashlib.sha256(self.body).hexdigest(),
            "received_at": self.received_at,
        }


@dataclass(frozen=True, slots=True)
class HitTotals:
    """Requests seen, recorded, and answered with an injected fault."""

    requests_total: int = 0
    recorded_total: int = 0
    faulted_total: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class HitStore:
    """The last ``capacity`` recorded requests and running totals; safe to read from threads."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._hits: deque[ReceivedHit] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._requests = self._recorded = self._faulted = 0

    def count_request(self) -> None:
        with self._lock:
            self._requests += 1

    def count_faulted(self) -> None:
        with self._lock:
            self._faulted += 1

    def add(self, hit: ReceivedHit) -> None:
        with self._lock:
            self._hits.append(hit)
            self._recorded += 1

    def hits(
        self, measurement_id: str | None = None, limit: int | None = None
    ) -> list[ReceivedHit]:
        """Kept requests, oldest first; only ``measurement_id``'s; only the newest ``limit``."""
        with self._lock:
            kept = list(self._hits)
        if measurement_id is not None:
            kept = [hit for hit in kept if hit.measurement_id == measurement_id]
        if limit is not None:
            kept = kept[-limit:] if limit > 0 else []
        return kept

    def totals(self) -> HitTotals:
        with self._lock:
            return HitTotals(self._requests, self._recorded, self._faulted)

    def __len__(self) -> int:
        with self._lock:
            return len(self._hits)

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()
            self._requests = self._recorded = self._faulted = 0


def received(path: str, request: Request, body: bytes, now: float) -> ReceivedHit:
    """The record of one request to ``path``."""
    raw: bytes = request.scope.get("query_string", b"")
    query = raw.decode("latin-1")
    wanted = _ID_PARAMS.get(path)
    params = parse_qsl(query, keep_blank_values=True)
    mid = next((value for name, value in params if name == wanted), None)
    headers = tuple(request.headers.items())
    return ReceivedHit(path, mid, query, headers, body, now)


def fault_response(fault: Fault) -> Response:
    """An injected fault in Google's terms: HTTP statuses only (no body codes)."""
    if fault.kind is FaultKind.THROTTLED:
        return PlainTextResponse("Too Many Requests", 429)
    if fault.kind is FaultKind.INTERNAL_ERROR:
        return PlainTextResponse("Service Unavailable", 503)
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    if fault.kind is FaultKind.OUTAGE:
        return PlainTextResponse("Service Unavailable", 503, headers=headers)
    return PlainTextResponse("Internal Server Error", 500)


@dataclass(slots=True)
class GoogleSide:
    """The state of the Google side: what it received and how it misbehaves."""

    store: HitStore
    faults: FaultInjector
