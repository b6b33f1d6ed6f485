"""What happens to every hit and every delivery, told to whoever watches (metrics, logs, /debug).

Handlers build one ``HitRecord`` per ingest request after they chose their answer; the delivery
worker reports a ``DeliveryResult`` per batch outcome. ``Observers`` fans both out. Observers
must be quick and must not raise: they run on the request's hot path (a failing observer is
logged and skipped, never turned into an error answer).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tiktok_gateway.delivery.ledger import DeliveryResult
from tiktok_gateway.errors import LineError
from tiktok_gateway.event_data import EventData
from tiktok_gateway.ingest import Placement

log = logging.getLogger(__name__)


@dataclass(slots=True)
class HitRecord:
    """One ingest request and what became of it.

    ``query`` and ``body`` are the raw input (may hold personal data: observers that show or
    keep them must redact); ``events`` the parsed event data and ``outcomes`` what each
    destination made of each event (same order); ``forwards`` what each hit-level destination
    (GA4 forwarding) made of the whole hit. ``outcome`` is a low-cardinality label: ``accepted``,
    ``partial`` (some parts invalid), ``invalid``, ``too_large``, ``unauthorized``,
    ``unavailable``.
    """

    request_id: str
    source: str
    received_at: float
    status: int
    outcome: str
    query: str = ""
    body: bytes = b""
    events: Sequence[EventData] = ()
    outcomes: Sequence[Sequence[Placement]] = ()
    forwards: Sequence[Placement] = ()
    errors: Sequence[LineError] = ()
    error: str = ""
    duration_seconds: float = 0.0
    queued: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    unrouted: int = 0


class Observer(Protocol):
    """Told about every hit and every delivery outcome."""

    def on_hit(self, hit: HitRecord) -> None:
        """Called once per ingest request, after its answer was chosen."""

    def on_delivery(self, result: DeliveryResult) -> None:
        """Called once per batch outcome reported by the delivery worker."""


class Observers:
    """Fans records out to several observers; one failing observer never stops the others."""

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        self._observers = list(observers)

    def add(self, observer: Observer) -> None:
        self._observers.append(observer)

    def on_hit(self, hit: HitRecord) -> None:
        for observer in self._observers:
            try:
                observer.on_hit(hit)
            except Exception:  # an observer bug must not fail a hit that is already queued
                log.exception("observer %s failed on a hit", type(observer).__name__)

    def on_delivery(self, result: DeliveryResult) -> None:
        for observer in self._observers:
            try:
                observer.on_delivery(result)
            except Exception:  # nor a delivery
                log.exception("observer %s failed on a delivery", type(observer).__name__)
