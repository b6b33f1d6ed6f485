"""The queue contract every backend (memory, SQLite, Redis Streams) fulfils.

The queue holds opaque payloads (one mapped TikTok event each, JSON bytes) grouped by a delivery
``group`` (one tag and test event code: everything in a group can share one Events API request).
Delivery is **at least once**:

1. ``put`` returns only once the items are committed: after a crash (kill -9) at any later moment
   they are still there. The HTTP layer answers 2xx only after ``put`` returned.
2. ``lease`` hands out available items and hides them for ``lease_seconds``; it never deletes.
   An item whose lease expires without ``ack``/``nack``/``release``/``dead_letter`` (its worker
   crashed) becomes available again.
3. The worker that leased an item must finish it with exactly one of:
   ``ack`` (TikTok has it: delete), ``nack`` (failed: available again after ``delay``, attempts +1),
   ``release`` (not tried, e.g. at shutdown: available again now, attempts unchanged) or
   ``dead_letter`` (permanent failure: moved to the dead letters with TikTok's reason).
   Finishing an id that is no longer leased (lease expired and re-leased) is a no-op for
   ``nack``/``release``; ``ack`` and ``dead_letter`` still remove the item.
4. ``replay`` moves dead letters back into the queue (attempts reset); ``purge`` deletes them.

Time comes from an injected ``clock`` (unix seconds) so tests can move it without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

Clock = Callable[[], float]


def wall_clock() -> float:
    """The default clock: unix seconds."""
    return time.time()


@dataclass(frozen=True, slots=True)
class NewItem:
    """An item to put: its delivery group and payload (JSON bytes of one queued event)."""

    group: str
    payload: bytes


class LeasedItem(NamedTuple):
    """An item handed to a worker.

    ``id`` names this lease, not the item: every lease of an item gets a new id, which is how a
    stale ``nack``/``release`` (point 3) is told apart. ``attempts`` counts earlier failed
    deliveries (nacks). (A named tuple, not a frozen dataclass: a lease makes one per item, and
    a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``.)
    """

    id: str
    group: str
    payload: bytes
    attempts: int
    enqueued_at: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Why an item is dead: a stable ``reason`` (``rejected``, ``expired``) and TikTok's words."""

    id: str
    reason: str
    code: int | None = None
    message: str = ""
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class DeadRecord:
    """A stored dead letter, as listed by the CLI and the admin API."""

    id: str
    group: str
    payload: bytes
    attempts: int
    enqueued_at: float
    dead_at: float
    reason: str
    code: int | None
    message: str
    request_id: str


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Queue counters.

    ``depth``: items not yet delivered (available, delayed or leased); ``leased``: of those,
    leased now; ``oldest_age``: seconds since the oldest of them was put (0 when empty).
    """

    depth: int
    leased: int
    oldest_age: float
    dead: int

    def to_json(self) -> dict[str, int | float]:
        """What ``/readyz``, ``/admin/queue`` and ``queue stats`` show."""
        return {
            "depth": self.depth,
            "leased": self.leased,
            "oldest_age_seconds": round(self.oldest_age, 3),
            "dead_letters": self.dead,
        }


class QueueUnavailable(Exception):
    """The queue's storage cannot be reached or written now (Redis down, a network timeout, a
    full disk, a locked or unreadable SQLite file).

    Raised by any method; nothing was committed by a ``put`` that raised it. The HTTP layer
    answers 503 so the sender may retry; the delivery worker waits and tries again later
    (``delivery/health.py``).
    """


# The dead-letter reason of an item older than its destination's maximum age (the worker's
# ``Limits.max_age``), whether found in a failed batch or by ``Queue.expire``.
EXPIRED: Final = "expired"

# Items of the group that one ``expire`` call looks at, at most (``limit`` if larger): a call
# never holds the storage long, however many of the oldest are leased.
MAX_EXPIRE_SCAN: Final = 2_000

# How long a health check, a scrape or an admin page waits for stats() before it reports the
# queue as unavailable.
STATS_TIMEOUT: Final = 2.0


async def stats_within_timeout(queue: Queue) -> QueueStats:
    """``queue.stats()``, or ``TimeoutError`` after ``STATS_TIMEOUT`` seconds."""
    async with asyncio.timeout(STATS_TIMEOUT):
        return await queue.stats()


class Queue(Protocol):
    """A durable, at-least-once queue. Every method is safe to call from one event loop."""

    async def put(self, items: Sequence[NewItem]) -> None:
        """Commit ``items`` durably; returns after the commit (group commits are allowed)."""

    async def lease(
        self,
        limit: int,
        lease_seconds: float,
        exclude_groups: Collection[str] = (),
        only_groups: Collection[str] | None = None,
    ) -> list[LeasedItem]:
        """Up to ``limit`` available items of the groups in ``only_groups`` (every group when
        ``None``; none when empty), skipping ``exclude_groups`` either way.

        Items come in the order they became available: put order for fresh items; a nacked item
        after what became available before its retry time. A lease restricted by ``only_groups``
        keeps that order among its groups' items; other groups' items, however early or many,
        neither come nor count toward ``limit``, so a worker can lease each group in a lane of
        its own.
        """

    async def ack(self, ids: Sequence[str]) -> None:
        """Delivered: remove the items."""

    async def nack(self, ids: Sequence[str], delay: float) -> None:
        """Failed: available again ``delay`` seconds from now, with ``attempts`` + 1."""

    async def release(self, ids: Sequence[str]) -> None:
        """Not tried: available again now, ``attempts`` unchanged."""

    async def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Move the items to the dead letters with their reasons."""

    async def expire(self, group: str, enqueued_before: float, limit: int, message: str) -> int:
        """Move at most ``limit`` items of ``group`` put (or replayed) before ``enqueued_before``
        and not leased now into the dead letters, oldest first (``enqueued_at``, then put
        order), as ``DeadLetter(reason=EXPIRED, code=None, message=message)``; returns how many.

        For a destination that sends nothing (held or paused), so that its items still expire
        without being leased. Delayed items (nacked) expire too; leased ones are left to their
        worker. Reads only that group's oldest items (no scan of the queue), and of those
        ``max(limit, MAX_EXPIRE_SCAN)`` at most: when more of the oldest than that are leased, a
        call moves fewer than it could (until their worker finishes them)."""

    async def stats(self) -> QueueStats:
        """Depth, leased count, oldest age and dead-letter count."""

    async def stored_bytes(self) -> int | None:
        """The bytes the queue's storage holds for its items and dead letters, cheaply (no
        scan); ``None`` when the backend does not measure them (Redis: see its module)."""

    async def probe_write(self) -> None:
        """One small durable write that changes nothing the contract shows, to learn whether
        the storage takes writes again; raises ``QueueUnavailable`` while it does not."""

    async def groups(self) -> set[str]:
        """The groups of undelivered items (available, delayed or leased), without reading the
        items: for finding items no worker leases (their destination is gone). The Redis backend
        sees the items some lease has read (every lease reads the unread ones first)."""

    async def dead_letters(self, limit: int = 100) -> list[DeadRecord]:
        """The most recent dead letters first."""

    async def replay(self, ids: Sequence[str] | None = None) -> int:
        """Move the given dead letters (all when ``None``) back into the queue; returns how many.

        Replayed items are new items: new ids, attempts 0, ``enqueued_at`` now (so the expiry
        age starts again).
        """

    async def purge(self) -> int:
        """Delete every dead letter; returns how many."""

    async def close(self) -> None:
        """Finish pending commits and release the storage."""
