"""Accepting a request: every destination kind takes what it needs, then one commit (SPEC 1, 8).

This is the hot path of every request. ``Ingest.accept`` hands the request (``Arrival``: the raw
query, body and headers, the resolved request context) and its parsed events to each kind's
``Collector``; a collector appends queue items and says what it made of each event (TikTok:
route and map per tag) or of the whole hit (GA4: one forward). Then every item of the request
is put in one call, and ``accept`` returns only after the queue committed them, so an HTTP 2xx
built on its result means they survive a crash.

What a collector made of an event or a hit is a ``Placement``: the destination, the delivery
key of the item it queued (``Unit.key``: deliveries are joined to hits by it), or the reason it
queued nothing. Observers (metrics, logs, /debug) read placements, never a kind's own types.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tiktok_gateway.event_data import EventData, RequestContext
from tiktok_gateway.queue.base import NewItem


class Placement(Protocol):
    """What one destination made of one event, or of a whole hit."""

    @property
    def kind(self) -> str:
        """The destination's kind (``tiktok``, ``ga4``)."""

    @property
    def destination(self) -> str:
        """The destination's name."""

    @property
    def key(self) -> str | None:
        """The delivery key of the queued item; ``None`` when nothing was queued."""

    @property
    def reason(self) -> str | None:
        """Why nothing was queued (a low-cardinality word); ``None`` when an item was."""


@dataclass(frozen=True, slots=True)
class Cookie:
    """A first-party cookie the answer sets (``endpoints/cookies.py`` renders it)."""

    name: str
    value: str
    max_age: int


@dataclass(frozen=True, slots=True)
class Arrival:
    """One ingest request, as a destination kind may need it besides its parsed events.

    ``source``: ``ga4`` (/g/collect), ``mp`` (/mp/collect) or ``events``; ``query``: the raw
    query string as received; ``body``: the raw body (``b""`` for GET); ``headers``: lower-case
    names; ``context``: the resolved client address, user agent and cookies.
    """

    source: str
    request_id: str
    query: bytes
    body: bytes
    headers: Mapping[str, str]
    context: RequestContext


@dataclass(slots=True)
class IngestResult:
    """What became of a request.

    ``queued``: items committed (one per event and TikTok tag that mapped it, one per GA4
    forward); ``dropped``: events a destination did not take, by reason; ``unrouted``: events no
    destination took up at all; ``outcomes``: per event, what each destination made of it;
    ``forwards``: what each hit-level destination made of the whole hit; ``cookies``: what the
    answer sets.
    """

    queued: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    unrouted: int = 0
    outcomes: list[list[Placement]] = field(default_factory=list)
    forwards: list[Placement] = field(default_factory=list)
    cookies: list[Cookie] = field(default_factory=list)


class Collector(Protocol):
    """A destination kind's ingest side (``tags/<kind>/``)."""

    def collect(
        self,
        arrival: Arrival,
        events: Sequence[EventData],
        result: IngestResult,
        items: list[NewItem],
    ) -> None:
        """Append queue items for the request to ``items``; extend ``result.outcomes[i]``
        with a placement per destination that took up event ``i`` (subtracting one from
        ``result.unrouted`` when that list was empty: it starts at the number of events, so
        ``accept`` need not walk the outcomes again), or append hit-level
        placements to ``result.forwards``; count ``result.dropped``; add ``result.cookies``.
        Pure but for those appends: nothing is committed here, and nothing raises for input."""


class Sink(Protocol):
    """Where a request's items are put: a ``Queue``, or the runtime's ``Admission`` in front of
    one (which notes what the put did)."""

    async def put(self, items: Sequence[NewItem]) -> None:
        """Commit ``items``; returns after the commit (``Queue.put``)."""


class Ingest:
    """Hands each request to the collectors and commits what they queue."""

    def __init__(self, collectors: Sequence[Collector], queue: Sink) -> None:
        self._collectors = tuple(collectors)
        self._queue = queue

    async def accept(self, arrival: Arrival, events: Sequence[EventData]) -> IngestResult:
        """Collect and queue; returns after the queue's commit."""
        result = IngestResult(outcomes=[[] for _ in events], unrouted=len(events))
        items: list[NewItem] = []
        for collector in self._collectors:
            collector.collect(arrival, events, result, items)
        if items:
            await self._queue.put(items)
        result.queued = len(items)
        return result
