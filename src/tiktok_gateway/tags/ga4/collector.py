"""The GA4 kind's ingest side: every accepted ``/g/collect`` hit and ``/mp/collect`` request
becomes one forward, queued in the same commit as the request's TikTok events (SPEC 12).

A request reaches collectors only once it was accepted as a whole (``v=2`` and a ``tid``, a
right ``api_secret``); one with some bad lines or events is still forwarded, whole. Its
measurement id must be on the allow-list (``GA4Settings.measurement_ids``; empty: all), else
the placement says ``measurement_id_not_allowed`` and nothing is queued. ``/events`` requests
are not GA4's and get no placement at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from tiktok_gateway.event_data import EventData
from tiktok_gateway.ingest import Arrival, IngestResult
from tiktok_gateway.queue.base import NewItem
from tiktok_gateway.sources.ga4_params import MEASUREMENT_ID_KEY
from tiktok_gateway.sources.ga4_values import decode_component
from tiktok_gateway.tags.ga4.destination import KIND
from tiktok_gateway.tags.ga4.forward import Forward, mp_forward, web_forward
from tiktok_gateway.tags.ga4.payload import QueuedForward
from tiktok_gateway.tags.ga4.settings import GA4Settings

NOT_ALLOWED: Final = "measurement_id_not_allowed"
# The query parameter naming the measurement id, by source.
_ID_PARAMS: Final = {"ga4": "tid", "mp": "measurement_id"}


@dataclass(frozen=True, slots=True)
class ForwardPlacement:
    """What GA4 forwarding made of one hit (an ``ingest.Placement``): queued under ``key`` (the
    hit's request id), or not, for ``reason``."""

    destination: str
    key: str | None
    reason: str | None
    measurement_id: str
    path: str
    target: str  # where it goes, in words (GA4Settings.target)

    @property
    def kind(self) -> str:
        return KIND


def measurement_id(arrival: Arrival, events: Sequence[EventData]) -> str:
    """The request's measurement id: its events' (the parsers checked it), else the query's."""
    for data in events:
        found = data.get(MEASUREMENT_ID_KEY)
        if isinstance(found, str):
            return found.strip()
    wanted = _ID_PARAMS.get(arrival.source, "tid")
    for segment in arrival.query.decode("latin-1").split("&"):
        name, _, value = segment.partition("=")
        if decode_component(name) == wanted:
            return decode_component(value).strip()
    return ""


class GA4Collector:
    """Queues one forward per accepted GA4 request (``Collector``, ``ingest.py``)."""

    def __init__(self, name: str, settings: GA4Settings) -> None:
        self._name = name
        self._settings = settings

    def forward_of(self, arrival: Arrival) -> Forward | None:
        """What goes to Google for ``arrival`` (``None`` for a request that is not GA4's)."""
        if arrival.source == "ga4":
            return web_forward(
                arrival.query,
                arrival.body,
                arrival.headers,
                arrival.context.ip,
                self._settings.ip_mode,
            )
        if arrival.source == "mp":
            return mp_forward(arrival.query, arrival.body, arrival.headers)
        return None

    def collect(
        self,
        arrival: Arrival,
        events: Sequence[EventData],
        result: IngestResult,
        items: list[NewItem],
    ) -> None:
        forward = self.forward_of(arrival)
        if forward is None:
            return
        mid = measurement_id(arrival, events)
        target = self._settings.target(forward.region1)
        if not self._settings.allows(mid):
            result.forwards.append(
                ForwardPlacement(self._name, None, NOT_ALLOWED, mid, forward.path, target)
            )
            return
        queued = QueuedForward(arrival.request_id, mid, forward)
        items.append(NewItem(self._name, queued.to_bytes()))
        result.forwards.append(
            ForwardPlacement(self._name, queued.key, None, mid, forward.path, target)
        )
