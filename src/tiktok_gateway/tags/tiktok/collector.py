"""The TikTok kind's ingest side: route every event through the tags that fire, map, queue.

Per event, each tag whose trigger fires maps it (``router.route``: a ``MappedEvent`` or a
``DroppedEvent``, both placements); each mapped event becomes one queue item of its tag's group.
The answer sets the ``ttclid`` cookie (SPEC 10.2) from the click id a mapped event found in the
page URL, unless a tag's consent policy blocked that event.
"""

from __future__ import annotations

from collections.abc import Sequence

from tiktok_gateway.event_data import EventData
from tiktok_gateway.ingest import Arrival, Cookie, IngestResult
from tiktok_gateway.queue.base import NewItem
from tiktok_gateway.tags.tiktok.envelope import queue_item
from tiktok_gateway.tags.tiktok.mapping import DroppedEvent
from tiktok_gateway.tags.tiktok.router import TagResult, route
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings

TTCLID_COOKIE = "ttclid"
TTCLID_MAX_AGE = 30 * 24 * 3600
# TikTok's click ids are a few hundred characters; a longer value is no click id, and a cookie
# is no place for it (and the rendered header is cached by value).
TTCLID_MAX_LENGTH = 512


def ttclid_cookie_of(outcomes: Sequence[TagResult]) -> str | None:
    """The click id the answer sets as a cookie for one event's outcomes (SPEC 10.2): the first
    mapped event's, and none when any tag's consent policy blocked the event."""
    cookie: str | None = None
    for outcome in outcomes:
        if isinstance(outcome, DroppedEvent):
            if outcome.reason == "consent":
                return None
        else:
            cookie = cookie or outcome.ttclid_cookie
    return cookie


class TikTokCollector:
    """Maps events for the configured tags (``Collector``, ``ingest.py``)."""

    def __init__(self, tags: Sequence[TikTokTagSettings]) -> None:
        self._tags = tuple(tags)

    def collect(
        self,
        arrival: Arrival,
        events: Sequence[EventData],
        result: IngestResult,
        items: list[NewItem],
    ) -> None:
        cookie: str | None = None
        for data, placements in zip(events, result.outcomes, strict=True):
            outcomes = route(data, self._tags)
            if not outcomes:
                continue
            if not placements:  # the first destination to take the event up
                result.unrouted -= 1
            placements.extend(outcomes)
            for outcome in outcomes:
                if isinstance(outcome, DroppedEvent):
                    result.dropped[outcome.reason] += 1
                else:
                    items.append(NewItem(*queue_item(outcome)))
            cookie = ttclid_cookie_of(outcomes) or cookie
        if cookie and len(cookie) <= TTCLID_MAX_LENGTH:
            result.cookies.append(Cookie(TTCLID_COOKIE, cookie, TTCLID_MAX_AGE))
