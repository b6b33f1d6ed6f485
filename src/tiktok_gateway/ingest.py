"""Accepting events: route each through the tags that fire, queue what they map to (SPEC 1, 8).

This is the hot path of every request. It returns only after the queue committed the events, so
an HTTP 2xx built on its result means the events survive a crash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tiktok_gateway.delivery.envelope import queue_item
from tiktok_gateway.event_data import EventData
from tiktok_gateway.queue.base import NewItem, Queue
from tiktok_gateway.tags.router import Outcome, route
from tiktok_gateway.tags.tiktok.mapping import DroppedEvent
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings


@dataclass(slots=True)
class IngestResult:
    """What became of a request's events.

    ``queued``: TikTok events committed (one per event and tag that mapped it); ``dropped``:
    counts by reason; ``unrouted``: events no trigger fired on; ``ttclid_cookie``: the click id
    the answer sets as a cookie (only when no tag's consent policy blocked that event);
    ``outcomes``: per event, what each tag that fired made of it.
    """

    queued: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    unrouted: int = 0
    ttclid_cookie: str | None = None
    outcomes: list[list[Outcome]] = field(default_factory=list)


def ttclid_cookie_of(outcomes: Sequence[Outcome]) -> str | None:
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


class Ingest:
    """Maps events for the configured tags and commits the results to the queue."""

    def __init__(self, tags: Sequence[TikTokTagSettings], queue: Queue) -> None:
        self._tags = tuple(tags)
        self._queue = queue

    async def accept(self, events: Sequence[EventData]) -> IngestResult:
        """Route, map and queue ``events``; returns after the queue's commit."""
        result = IngestResult()
        items: list[NewItem] = []
        for data in events:
            outcomes = route(data, self._tags)
            result.outcomes.append(outcomes)
            if not outcomes:
                result.unrouted += 1
                continue
            for outcome in outcomes:
                if isinstance(outcome, DroppedEvent):
                    result.dropped[outcome.reason] += 1
                else:
                    items.append(NewItem(*queue_item(outcome)))
            result.ttclid_cookie = ttclid_cookie_of(outcomes) or result.ttclid_cookie
        if items:
            await self._queue.put(items)
        result.queued = len(items)
        return result
