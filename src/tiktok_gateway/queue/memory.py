"""An in-memory queue: the reference model of the contract in ``base.py``, not durable.

Used by the tests and as the model the SQLite backend is checked against, so it
is written to be obviously right rather than fast (every lease sorts the whole queue).

Semantics shared with the SQLite backend, on top of the contract:

* Items get increasing integer numbers (1, 2, ...), never reused; a replayed dead letter gets a
  new number. Dead letters keep their item's number: ``DeadRecord.id`` is ``"<number>"``.
* Every lease of an item counts (``leases``), and ``LeasedItem.id`` is ``"<number>:<leases>"``.
  That is how ``nack``/``release`` tell the current lease from a stale one: a worker whose lease
  expired while another took the item holds an id that no longer matches, and does nothing.
  ``ack``/``dead_letter`` use the number only (the contract says they still remove the item).
  Ids in any other shape are unknown ids: ignored.
* ``lease`` hands out items in the order they became available (``available_at``, then number):
  for fresh items that is put order; a nacked item queues behind what became available before
  its retry time. A lease restricted to some groups (``only_groups``) keeps that order among
  their items. (The SQLite backend walks an index in that order instead of sorting.)
* Taking a lease sets ``available_at = lease_until``, so "available" is one comparison,
  ``available_at <= now``, and "leased" is ``lease_until > now``.
* ``expire`` takes a group's items in ``(enqueued_at, number)`` order, of which it looks at
  ``max(limit, MAX_EXPIRE_SCAN)`` at most (the other backends' bounded read, written out).
* ``replay`` restarts ``enqueued_at`` at now: the delivery worker expires items by age, and a
  replayed item must get its full time again. A negative ``nack`` delay counts as 0.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from tiktok_gateway.queue.base import (
    EXPIRED,
    MAX_EXPIRE_SCAN,
    Clock,
    DeadLetter,
    DeadRecord,
    LeasedItem,
    NewItem,
    QueueStats,
    wall_clock,
)


def lease_id(number: int, leases: int) -> str:
    """The id a worker holds for the ``leases``-th lease of item ``number``."""
    return f"{number}:{leases}"


# ASCII digits, few enough to fit SQLite's 64-bit integers: anything else is an unknown id.
_LEASE_ID = re.compile(r"([0-9]{1,18}):([0-9]{1,18})")
_DEAD_ID = re.compile(r"[0-9]{1,18}")


def parse_lease_id(text: str) -> tuple[int, int] | None:
    """``(number, leases)`` from a ``lease_id``; ``None`` for anything else."""
    match = _LEASE_ID.fullmatch(text)
    return (int(match[1]), int(match[2])) if match else None


def parse_dead_id(text: str) -> int | None:
    """The item number of a ``DeadRecord.id``; ``None`` for anything else."""
    return int(text) if _DEAD_ID.fullmatch(text) else None


@dataclass(slots=True)
class _Item:
    number: int
    group: str
    payload: bytes
    attempts: int
    enqueued_at: float
    available_at: float
    lease_until: float | None = None
    leases: int = 0


def _leased(item: _Item, now: float) -> bool:
    return item.lease_until is not None and item.lease_until > now


class MemoryQueue:
    """The ``Queue`` contract held in two dictionaries; lost when the process ends."""

    def __init__(self, clock: Clock = wall_clock) -> None:
        self._clock = clock
        self._items: dict[int, _Item] = {}
        self._dead: dict[int, DeadRecord] = {}
        self._last_number = 0

    def _add(self, group: str, payload: bytes, now: float) -> None:
        self._last_number += 1
        self._items[self._last_number] = _Item(self._last_number, group, payload, 0, now, now)

    def _current_lease(self, leased_id: str, now: float) -> _Item | None:
        """The item if ``leased_id`` is its lease and that lease is still running."""
        parsed = parse_lease_id(leased_id)
        item = self._items.get(parsed[0]) if parsed else None
        if item is None or parsed is None or item.leases != parsed[1]:
            return None
        if not _leased(item, now):
            return None
        return item

    async def put(self, items: Sequence[NewItem]) -> None:
        now = self._clock()
        for item in items:
            self._add(item.group, item.payload, now)

    async def lease(
        self,
        limit: int,
        lease_seconds: float,
        exclude_groups: Collection[str] = (),
        only_groups: Collection[str] | None = None,
    ) -> list[LeasedItem]:
        now = self._clock()
        ready = sorted(
            (item.available_at, item.number)
            for item in self._items.values()
            if item.available_at <= now
            and item.group not in exclude_groups
            and (only_groups is None or item.group in only_groups)
        )
        leased: list[LeasedItem] = []
        for _, number in ready[: max(limit, 0)]:
            item = self._items[number]
            item.leases += 1
            item.lease_until = item.available_at = now + lease_seconds
            leased.append(
                LeasedItem(
                    id=lease_id(number, item.leases),
                    group=item.group,
                    payload=item.payload,
                    attempts=item.attempts,
                    enqueued_at=item.enqueued_at,
                )
            )
        return leased

    async def ack(self, ids: Sequence[str]) -> None:
        for leased_id in ids:
            parsed = parse_lease_id(leased_id)
            if parsed:
                self._items.pop(parsed[0], None)

    async def nack(self, ids: Sequence[str], delay: float) -> None:
        now = self._clock()
        for leased_id in ids:
            item = self._current_lease(leased_id, now)
            if item is not None:
                item.attempts += 1
                item.available_at = now + max(delay, 0.0)
                item.lease_until = None

    async def release(self, ids: Sequence[str]) -> None:
        now = self._clock()
        for leased_id in ids:
            item = self._current_lease(leased_id, now)
            if item is not None:
                item.available_at = now
                item.lease_until = None

    async def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        now = self._clock()
        for letter in letters:
            parsed = parse_lease_id(letter.id)
            item = self._items.pop(parsed[0], None) if parsed else None
            if item is None:
                continue
            self._dead[item.number] = DeadRecord(
                id=str(item.number),
                group=item.group,
                payload=item.payload,
                attempts=item.attempts,
                enqueued_at=item.enqueued_at,
                dead_at=now,
                reason=letter.reason,
                code=letter.code,
                message=letter.message,
                request_id=letter.request_id,
            )

    async def expire(self, group: str, enqueued_before: float, limit: int, message: str) -> int:
        """Of the group's ``max(limit, MAX_EXPIRE_SCAN)`` oldest items put before
        ``enqueued_before`` (by ``enqueued_at``, then number), the first ``limit`` not leased now
        are moved to the dead letters (the bounded read of the other backends, written out)."""
        now = self._clock()
        oldest = sorted(
            (item.enqueued_at, item.number)
            for item in self._items.values()
            if item.group == group and item.enqueued_at < enqueued_before
        )[: max(limit, MAX_EXPIRE_SCAN)]
        moved = [number for _, number in oldest if not _leased(self._items[number], now)][
            : max(limit, 0)
        ]
        letters = [
            DeadLetter(lease_id(n, self._items[n].leases), EXPIRED, None, message) for n in moved
        ]
        await self.dead_letter(letters)
        return len(moved)

    async def stats(self) -> QueueStats:
        now = self._clock()
        items = self._items.values()
        oldest = min((item.enqueued_at for item in items), default=now)
        return QueueStats(
            depth=len(items),
            leased=sum(1 for i in items if _leased(i, now)),
            oldest_age=max(now - oldest, 0.0),
            dead=len(self._dead),
        )

    async def groups(self) -> set[str]:
        return {item.group for item in self._items.values()}

    async def stored_bytes(self) -> int | None:
        """The payload bytes of the items and dead letters (a sum over them: obviously right)."""
        items = sum(len(item.payload) for item in self._items.values())
        return items + sum(len(record.payload) for record in self._dead.values())

    async def probe_write(self) -> None:
        """Memory always takes writes."""

    async def dead_letters(self, limit: int = 100) -> list[DeadRecord]:
        newest_first = sorted(
            self._dead.values(), key=lambda r: (r.dead_at, int(r.id)), reverse=True
        )
        return newest_first[: max(limit, 0)]

    async def replay(self, ids: Sequence[str] | None = None) -> int:
        if ids is None:
            numbers = set(self._dead)
        else:
            numbers = {n for n in map(parse_dead_id, ids) if n is not None and n in self._dead}
        now = self._clock()
        for number in sorted(numbers):
            record = self._dead.pop(number)
            self._add(record.group, record.payload, now)
        return len(numbers)

    async def purge(self) -> int:
        count = len(self._dead)
        self._dead.clear()
        return count

    async def close(self) -> None:
        """Nothing to release; the items are simply dropped with the object."""
