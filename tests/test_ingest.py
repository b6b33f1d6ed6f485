"""``Ingest.accept``: every collector's placements and the count of events nobody took up."""

from __future__ import annotations

import asyncio

from tiktok_gateway.event_data import RequestContext
from tiktok_gateway.ingest import Arrival, Ingest
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.tags.tiktok.collector import TikTokCollector
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings
from tiktok_gateway.tags.triggers import TriggerSettings


def _tag(name: str, *events: str) -> TikTokTagSettings:
    return TikTokTagSettings(
        name=name, pixel_code=f"C{name.upper()}", trigger=TriggerSettings(include_events=events)
    )


def test_unrouted_counts_the_events_no_destination_took_up_once_each() -> None:
    # purchase fires both tags, view_item one, scroll none: one event unrouted, not three.
    collector = TikTokCollector([_tag("shop", "purchase", "view_item"), _tag("brand", "purchase")])
    queue = MemoryQueue()
    context = RequestContext(1_700_000_000.0, None, "203.0.113.9", {})
    events = [
        {"event_name": name, "client_id": "1.2", "x-gw-source": "ga4"}
        for name in ("purchase", "view_item", "scroll")
    ]
    arrival = Arrival("ga4", "r-1", b"", b"", {}, context)
    result = asyncio.run(Ingest([collector], queue).accept(arrival, events))
    assert [len(placements) for placements in result.outcomes] == [2, 1, 0]
    assert (result.unrouted, result.queued) == (1, 3)
