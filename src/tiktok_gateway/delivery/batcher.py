"""Leased events -> Events API requests: one batch per (group, tag, pixel, test code).

A batch is cut when it holds ``max_events`` events (TikTok's maximum is 1000), when one more
event would take its request body past ``max_bytes`` (kept under TikTok's 1 MB), or when its
oldest event has waited ``max_wait`` seconds, so TikTok still sees events in near real time.

Decision: the age counts from when the event was *added* to the batcher (just after its lease),
not from when it was queued. ``max_wait`` bounds how long the batcher holds an event back to fill
a request; time spent in the queue (a backlog, a retry delay, a paused tag) is already spent and
is reported by the queue's ``oldest_age``. Counting from the queue would flush every retried or
backlogged event at once in small batches, just when TikTok most needs fewer requests.

Events of different groups never share a batch (a request carries one test code), and the
order of events within a group is kept.

Events stay JSON bytes (``RawEnvelope.event_json``) from the queue to the wire: a request body is
its head and the events' bytes joined by commas, the same bytes ``wire_json.dumps`` would write
for the whole body, and the byte budget counts exactly those bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from tiktok_gateway import wire_json
from tiktok_gateway.delivery.envelope import RawEnvelope
from tiktok_gateway.queue.base import Clock, LeasedItem, wall_clock
from tiktok_gateway.tags.tiktok.payload import MAX_BATCH_EVENTS, request_body

MAX_BYTES = 900_000


@dataclass(frozen=True, slots=True)
class Batch:
    """Events for one request, in order; ``items[i]`` is the queue item of ``envelopes[i]``."""

    group: str
    tag: str
    pixel_code: str
    test_event_code: str | None
    items: tuple[LeasedItem, ...]
    envelopes: tuple[RawEnvelope, ...]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]

    @property
    def event_ids(self) -> list[str]:
        return [envelope.event_id for envelope in self.envelopes]

    def body(self) -> bytes:
        """The request body (``payload.request_body``) as compact JSON, events spliced in."""
        events = (envelope.event_json for envelope in self.envelopes)
        return _open_body(self.pixel_code, self.test_event_code) + b",".join(events) + b"]}"

    def subset(self, indexes: Sequence[int]) -> Batch:
        """A batch of the same request shape with the events at ``indexes``, in that order."""
        return Batch(
            self.group,
            self.tag,
            self.pixel_code,
            self.test_event_code,
            tuple(self.items[i] for i in indexes),
            tuple(self.envelopes[i] for i in indexes),
        )

    def halves(self) -> tuple[Batch, Batch]:
        """The first and second half (the first is the smaller one for odd sizes)."""
        middle = len(self) // 2
        return self.subset(range(middle)), self.subset(range(middle, len(self)))


@lru_cache(maxsize=256)
def _open_body(pixel_code: str, test_event_code: str | None) -> bytes:
    """A request body without events, cut open after the ``[`` of its ``data`` list.

    Cached: a gateway has a few (pixel, test code) routes, and every request and every bisection
    step of one starts with the same bytes.
    """
    empty = wire_json.dumps(request_body(pixel_code, [], test_event_code))
    if not empty.endswith(b"[]}"):  # "data" must stay the last member for the splice
        raise ValueError(f"request_body does not end with its data list: {empty[-40:]!r}")
    return empty[:-2]


_Key = tuple[str, str, str, str | None]


@dataclass(slots=True)
class _Open:
    """A batch being filled: its events, their body size so far, and when the first came in."""

    items: list[LeasedItem] = field(default_factory=list)
    envelopes: list[RawEnvelope] = field(default_factory=list)
    size: int = 0
    first_added: float = 0.0


class Batcher:
    """Groups leased events into batches. Not thread-safe; used from one event loop."""

    def __init__(
        self,
        max_events: int = MAX_BATCH_EVENTS,
        max_bytes: int = MAX_BYTES,
        max_wait: float = 1.0,
        clock: Clock = wall_clock,
    ) -> None:
        self._max_events = max(max_events, 1)
        self._max_bytes = max_bytes
        self._max_wait = max_wait
        self._clock = clock
        self._open: dict[_Key, _Open] = {}
        self._full: list[Batch] = []
        self._pending = 0

    @property
    def pending(self) -> int:
        """Events added and not yet returned by ``ready``."""
        return self._pending

    def add(self, item: LeasedItem, envelope: RawEnvelope) -> None:
        """Add one event; a batch that is full (by count or bytes) becomes ready at once."""
        key = (item.group, envelope.tag, envelope.pixel_code, envelope.test_event_code)
        size = len(envelope.event_json) + 1  # the comma between two events
        current = self._open.get(key)
        if current is not None and current.size + size > self._max_bytes:
            self._close(key)
            current = None
        if current is None:
            overhead = len(_open_body(key[2], key[3])) + 2  # and the "]}" that closes it
            current = self._open[key] = _Open(size=overhead, first_added=self._clock())
        current.items.append(item)
        current.envelopes.append(envelope)
        current.size += size
        self._pending += 1
        if len(current.items) >= self._max_events or current.size >= self._max_bytes:
            self._close(key)

    def ready(self, force: bool = False) -> list[Batch]:
        """Batches to send now, removed from the batcher: the full ones, those whose oldest
        event has waited ``max_wait``, and with ``force`` every partial one too."""
        now = self._clock()
        for key in list(self._open):
            if force or now - self._open[key].first_added >= self._max_wait:
                self._close(key)
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

    def _close(self, key: _Key) -> None:
        current = self._open.pop(key)
        group, tag, pixel_code, test_event_code = key
        self._full.append(
            Batch(
                group,
                tag,
                pixel_code,
                test_event_code,
                tuple(current.items),
                tuple(current.envelopes),
            )
        )
