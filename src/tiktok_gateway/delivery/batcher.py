"""Leased items -> requests: one batch per route of one destination.

A batch is cut when it holds ``max_events`` items, when one more item would take its request
body past ``max_bytes``, or when its oldest item has waited ``max_wait`` seconds, so the
destination still sees events in near real time.

Decision: the age counts from when the item was *added* to the batcher (just after its lease),
not from when it was queued. ``max_wait`` bounds how long the batcher holds an item back to fill
a request; time spent in the queue (a backlog, a retry delay, a paused destination) is already
spent and is reported by the queue's ``oldest_age``. Counting from the queue would flush every
retried or backlogged item at once in small batches, just when the destination most needs fewer
requests.

Items of different routes never share a batch (a TikTok request carries one pixel and one test
code), and the order of items within a route is kept. The byte budget counts
``Destination.overhead(route)`` plus each unit's ``size``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from tiktok_gateway.delivery.destination import Batch, Destination, Unit
from tiktok_gateway.queue.base import Clock, LeasedItem, wall_clock


@dataclass(slots=True)
class _Open:
    """A batch being filled: its items, their body size so far, and when the first came in."""

    items: list[LeasedItem] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    size: int = 0
    first_added: float = 0.0


class Batcher:
    """Groups one destination's leased items into batches. Not thread-safe; one event loop."""

    def __init__(
        self, destination: Destination, max_wait: float = 1.0, clock: Clock = wall_clock
    ) -> None:
        self._destination = destination
        limits = destination.limits
        self._max_events = max(limits.max_events, 1)
        self._max_bytes = limits.max_bytes
        self._max_wait = max_wait
        self._clock = clock
        self._open: dict[Hashable, _Open] = {}
        self._full: list[Batch] = []
        self._pending = 0

    @property
    def pending(self) -> int:
        """Items added and not yet returned by ``ready``."""
        return self._pending

    def add(self, item: LeasedItem, unit: Unit) -> None:
        """Add one item; a batch that is full (by count or bytes) becomes ready at once."""
        route = unit.route
        size = unit.size
        current = self._open.get(route)
        if current is not None and current.size + size > self._max_bytes:
            self._close(route)
            current = None
        if current is None:
            overhead = self._destination.overhead(route)
            current = self._open[route] = _Open(size=overhead, first_added=self._clock())
        current.items.append(item)
        current.units.append(unit)
        current.size += size
        self._pending += 1
        if len(current.items) >= self._max_events or current.size >= self._max_bytes:
            self._close(route)

    def ready(self, force: bool = False) -> list[Batch]:
        """Batches to send now, removed from the batcher: the full ones, those whose oldest
        item has waited ``max_wait``, and with ``force`` every partial one too."""
        now = self._clock()
        for route in list(self._open):
            if force or now - self._open[route].first_added >= self._max_wait:
                self._close(route)
        batches, self._full = self._full, []
        self._pending -= sum(len(batch) for batch in batches)
        return batches

    def next_deadline(self) -> float | None:
        """When ``ready`` will next return something (clock time; now if a batch is full),
        ``None`` when the batcher is empty."""
        if self._full:
            return self._clock()
        starts = [current.first_added for current in self._open.values()]
        return min(starts) + self._max_wait if starts else None

    def _close(self, route: Hashable) -> None:
        current = self._open.pop(route)
        self._full.append(
            Batch(self._destination.name, route, tuple(current.items), tuple(current.units))
        )
