"""What the sandbox accepted: the last events in memory, and running totals.

The store is bounded (the oldest events fall out first) but the totals count everything since
the start or the last ``clear``. A lock makes it safe to read from another thread than the one
serving requests (tests, a debug page).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One accepted event with the request it came in."""

    pixel_code: str
    test_event_code: str | None
    request_id: str
    received_at: float
    event: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Totals:
    """Requests seen, events accepted, requests rejected (a non-zero code) or faulted."""

    requests_total: int = 0
    accepted_total: int = 0
    rejected_total: int = 0
    faulted_total: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class EventStore:
    """The last ``capacity`` accepted events, oldest first, and the totals."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._events: deque[StoredEvent] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._requests = 0
        self._accepted = 0
        self._rejected = 0
        self._faulted = 0

    def count_request(self) -> None:
        with self._lock:
            self._requests += 1

    def count_rejected(self) -> None:
        with self._lock:
            self._rejected += 1

    def count_faulted(self) -> None:
        with self._lock:
            self._faulted += 1

    def add(
        self,
        events: Iterable[dict[str, Any]],
        *,
        pixel_code: str,
        test_event_code: str | None,
        request_id: str,
        received_at: float,
    ) -> None:
        """Keep the events of one accepted request."""
        stored = [
            StoredEvent(pixel_code, test_event_code, request_id, received_at, event)
            for event in events
        ]
        with self._lock:
            self._events.extend(stored)
            self._accepted += len(stored)

    def events(self, pixel_code: str | None = None, limit: int | None = None) -> list[StoredEvent]:
        """Kept events, oldest first; only ``pixel_code``'s; only the newest ``limit``."""
        with self._lock:
            kept = list(self._events)
        if pixel_code is not None:
            kept = [event for event in kept if event.pixel_code == pixel_code]
        if limit is not None:
            kept = kept[-limit:] if limit > 0 else []
        return kept

    def totals(self) -> Totals:
        with self._lock:
            return Totals(self._requests, self._accepted, self._rejected, self._faulted)

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def clear(self) -> None:
        """Forget the events and reset the totals."""
        with self._lock:
            self._events.clear()
            self._requests = self._accepted = self._rejected = self._faulted = 0
