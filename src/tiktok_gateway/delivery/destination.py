"""What the delivery machinery needs of a destination: the plug-in interface of ``delivery/``.

A **destination** is one configured place items are delivered to (a TikTok tag, the GA4
forwarder); its **kind** (``tiktok``, ``ga4``) is the folder under ``tags/`` that implements it.
The queue group of an item is its destination's name, so a destination's items are leased,
held, paused and counted on their own (``delivery/lane.py``).

The worker never looks inside a payload: the destination turns each leased payload into a
``Unit`` (its route, its key, its size in a request), groups of units with one route into a
request, and the answer into an ``Outcome`` (``delivery/outcome.py``). Everything else (lease,
batching by count, bytes and age, back-off with jitter and Retry-After, holding a failing
destination, pause and probes, isolating a bad item, dead letters, expiry, release at shutdown)
is shared (Vector's sinks: a request builder, a service and a ``RetryLogic``, wrapped by
generic batching and retry layers).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from tiktok_gateway.delivery.outcome import Outcome
from tiktok_gateway.queue.base import LeasedItem


class Unit(Protocol):
    """One queued item as delivery handles it, made by ``Destination.unit``."""

    @property
    def route(self) -> Hashable:
        """Items with equal routes may share one request (TikTok: pixel and test code)."""

    @property
    def key(self) -> str:
        """The item's delivery key, unique within its destination: joins delivery results to
        the hits they came from (TikTok: the event_id; GA4: the forward id)."""

    @property
    def size(self) -> int:
        """Bytes the item adds to a request body (the byte budget of a batch)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Items for one request to one destination, in order; ``items[i]`` is ``units[i]``'s."""

    destination: str
    route: Hashable
    items: tuple[LeasedItem, ...]
    units: tuple[Unit, ...]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]

    @property
    def keys(self) -> list[str]:
        return [unit.key for unit in self.units]

    def subset(self, indexes: Sequence[int]) -> Batch:
        """A batch of the same request shape with the items at ``indexes``, in that order."""
        return Batch(
            self.destination,
            self.route,
            tuple(self.items[i] for i in indexes),
            tuple(self.units[i] for i in indexes),
        )

    def halves(self) -> tuple[Batch, Batch]:
        """The first and second half (the first is the smaller one for odd sizes)."""
        middle = len(self) // 2
        return self.subset(range(middle)), self.subset(range(middle, len(self)))


@dataclass(frozen=True, slots=True)
class Limits:
    """How a destination is delivered to.

    ``max_events``/``max_bytes``: per request (1 event: nothing is batched and a rejected item
    is dead-lettered at once); ``max_in_flight``: requests at once; ``max_age``: seconds after
    its put when a failing item is dead-lettered as ``expired``; ``timeout``: per request;
    ``hold_after``: requests failing in a row (for the destination's or the network's sake)
    before the destination backs off as a whole (``holds.py``): 1 when a request carries a
    whole batch, more when each carries one item and one stray 503 must not stop the others.
    """

    max_events: int
    max_bytes: int
    max_in_flight: int
    max_age: float
    timeout: float
    hold_after: int = 1


class Destination(Protocol):
    """One configured destination (see the module docstring)."""

    @property
    def name(self) -> str:
        """Unique among the destinations; the queue group of its items; a label in metrics."""

    @property
    def kind(self) -> str:
        """Its kind (``tiktok``, ``ga4``): the folder under ``tags/`` that implements it."""

    @property
    def limits(self) -> Limits: ...

    def unit(self, payload: bytes) -> Unit:
        """The unit of a queued payload; ``ValueError``, ``KeyError`` or ``TypeError`` for a
        payload this destination did not write (dead-lettered as ``invalid_payload``)."""

    def overhead(self, route: Hashable) -> int:
        """Bytes of a request for ``route`` before any unit (the byte budget of a batch)."""

    async def send(self, client: httpx.AsyncClient, batch: Batch) -> Outcome:
        """Send one request for ``batch`` and classify the answer. Raises nothing but
        cancellation: a failed request is a ``Retry`` (``cause="transport"``). ``client`` is the
        runtime's (it answers the built-in sandbox in process); a destination may send through
        a client of its own instead."""

    async def aclose(self) -> None:
        """Release what the destination holds (a client of its own); called at shutdown, after
        the worker stopped."""


def kinds_of(destinations: Mapping[str, Destination]) -> dict[str, str]:
    """Each destination's kind by its name (metrics' labels, dead-letter views)."""
    return {name: destination.kind for name, destination in destinations.items()}
