"""``DebugRecorder``: the observer behind ``/debug``; the latest hits and their deliveries.

Contract:

- ``on_hit`` and ``on_delivery`` never await, never raise for well-formed records and cost
  O(events x destinations of the record) while nobody watches: a hit is kept as its ``HitRecord``
  (bodies over 64 KiB and events past ``views.MAX_EVENTS`` trimmed) and rendered into its
  redacted view (``views.hit_view``) only when first asked for, once. With live subscribers
  ``on_hit`` renders at once to publish the view.
- The latest ``capacity`` hits are kept (a ring buffer); older ones are forgotten together with
  their entries in the ``(destination, key)`` index that joins deliveries to hits.
- A delivery reported before its hit was recorded (the worker can be quicker than the handler)
  is kept aside (at most ``_EARLY_LIMIT`` such keys) and applied when the hit arrives.
- Subscribers (``subscribe``) each get a bounded ``asyncio.Queue`` of ``(event, data)``
  messages, ``"hit"`` (a hit view) or ``"delivery"`` (``{"request_id", "destination",
  "keys", "delivery"}``). A full queue drops the message and counts it in
  ``Subscription.dropped``: a slow client never slows a hit down. Use from the event loop's
  thread only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from tiktok_gateway.admin.redact import MAX_BODY_BYTES
from tiktok_gateway.admin.views import (
    MAX_EVENTS,
    DeliveryKey,
    View,
    apply_delivery,
    delivery_state,
    event_keys,
    hit_view,
)
from tiktok_gateway.delivery.ledger import DeliveryResult
from tiktok_gateway.observe import HitRecord

DEFAULT_CAPACITY: Final = 200
DEFAULT_SUBSCRIBER_BOUND: Final = 512
_EARLY_LIMIT: Final = 1000

Message = tuple[str, View]


class Subscription:
    """One live listener's bounded queue; ``dropped`` counts messages that did not fit."""

    def __init__(self, bound: int) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=bound)
        self.dropped = 0

    def offer(self, message: Message) -> None:
        """Queue ``message`` unless the queue is full (then drop it); never blocks."""
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1


@dataclass(slots=True, eq=False)
class _Entry:
    hit: HitRecord
    keys: list[DeliveryKey]
    events_total: int
    deliveries: dict[DeliveryKey, View] = field(default_factory=dict)
    view: View | None = None


def _trimmed(hit: HitRecord) -> HitRecord:
    """``hit`` without what the page never shows (huge bodies, events past the limit)."""
    if len(hit.body) <= MAX_BODY_BYTES + 1 and len(hit.events) <= MAX_EVENTS:
        return hit
    return dataclasses.replace(
        hit,
        body=hit.body[: MAX_BODY_BYTES + 1],
        events=list(hit.events[:MAX_EVENTS]),
        outcomes=list(hit.outcomes[:MAX_EVENTS]),
    )


class DebugRecorder:
    """Observer that keeps the latest hits for ``/debug`` (module docstring)."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        subscriber_bound: int = DEFAULT_SUBSCRIBER_BOUND,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.capacity = max(capacity, 1)
        self._bound = max(subscriber_bound, 1)
        self._clock = clock
        self._entries: deque[_Entry] = deque()
        self._index: dict[DeliveryKey, list[_Entry]] = {}
        self._early: OrderedDict[DeliveryKey, View] = OrderedDict()
        self._subscribers: set[Subscription] = set()
        self.closed = False

    def __len__(self) -> int:
        return len(self._entries)

    # Observer -------------------------------------------------------------------------------

    def on_hit(self, hit: HitRecord) -> None:
        """Keep ``hit`` (evicting the oldest past ``capacity``); publish it to subscribers."""
        entry = _Entry(_trimmed(hit), event_keys(hit), len(hit.events))
        for key in entry.keys:
            early = self._early.pop(key, None)
            if early is not None:
                entry.deliveries[key] = early
            self._index.setdefault(key, []).append(entry)
        self._entries.append(entry)
        while len(self._entries) > self.capacity:
            self._forget(self._entries.popleft())
        if self._subscribers:
            self._publish(("hit", self._view(entry)))

    def on_delivery(self, result: DeliveryResult) -> None:
        """Join ``result`` to the hits holding its items (by destination and key)."""
        state = delivery_state(result, self._clock())
        touched: dict[int, tuple[_Entry, list[str]]] = {}
        for item_key in result.keys:
            key = (result.destination, item_key)
            entries = self._index.get(key)
            if not entries:
                self._early[key] = state
                self._early.move_to_end(key)
                if len(self._early) > _EARLY_LIMIT:
                    self._early.popitem(last=False)
                continue
            for entry in entries:
                entry.deliveries[key] = state
                if entry.view is not None:
                    apply_delivery(entry.view, key, state)
                touched.setdefault(id(entry), (entry, []))[1].append(item_key)
        if self._subscribers:
            for entry, keys in touched.values():
                update = {
                    "request_id": entry.hit.request_id,
                    "destination": result.destination,
                    "keys": keys,
                    "delivery": state,
                }
                self._publish(("delivery", update))

    # Readers --------------------------------------------------------------------------------

    def hits(self) -> list[View]:
        """The views of the kept hits, oldest first (rendered now if not yet)."""
        return [self._view(entry) for entry in self._entries]

    def subscribe(self) -> Subscription:
        """A new live listener; call ``unsubscribe`` when it goes."""
        subscription = Subscription(self._bound)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """End every live stream within a second (``closed``). Call when the server starts
        shutting down: uvicorn waits for open streams before the app's lifespan ends."""
        self.closed = True
        self._publish(("close", {}))

    # Internals ------------------------------------------------------------------------------

    def _view(self, entry: _Entry) -> View:
        if entry.view is None:
            entry.view = hit_view(entry.hit, entry.deliveries, entry.events_total)
        return entry.view

    def _publish(self, message: Message) -> None:
        for subscription in self._subscribers:
            subscription.offer(message)

    def _forget(self, entry: _Entry) -> None:
        for key in entry.keys:
            entries = self._index.get(key)
            if entries is None:
                continue
            remaining = [other for other in entries if other is not entry]
            if remaining:
                self._index[key] = remaining
            else:
                del self._index[key]
