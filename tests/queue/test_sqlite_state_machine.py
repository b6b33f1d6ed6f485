"""The SQLite queue against the in-memory reference model, step by step (hypothesis).

Both queues share one fake clock and receive the same calls; every answer must be equal and,
after every step, so must the stats and the dead letters. ``reopen`` closes the SQLite queue and
opens the same file again, which must change nothing. The last invariant also compares the
rows of ``items`` with the model's items field by field (leases, payloads, times).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from collections.abc import Coroutine
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.fakes import FakeClock
from tiktok_gateway.queue.base import DeadLetter, NewItem
from tiktok_gateway.queue.memory import MemoryQueue, lease_id
from tiktok_gateway.queue.sqlite import SQLiteQueue

T = TypeVar("T")

# Every write fsyncs (synchronous=FULL); a RAM-backed directory, where there is one, halves the
# run time and the (much longer) time to shrink a failure. Durability is not checked here.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None

GROUPS = ("a", "b", "c")
new_items = st.lists(
    st.builds(NewItem, st.sampled_from(GROUPS), st.binary(max_size=8)), min_size=1, max_size=5
)
delays = st.sampled_from([0.0, 0.0, 1.0, 10.0])


class QueueComparison(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.directory = tempfile.TemporaryDirectory(dir=SCRATCH)
        self.path = Path(self.directory.name) / "queue.db"
        self.clock = FakeClock()
        self.model = MemoryQueue(self.clock)
        self.sqlite = self.run(SQLiteQueue.open(self.path, clock=self.clock, commit_window=0))
        self.handed_out: list[str] = []

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def draw_ids(self, data: st.DataObject) -> list[str]:
        """Ids a worker may hold: mostly current leases, else stale ones or ones never leased."""
        now = self.clock()
        current = [
            lease_id(item.number, item.leases)
            for item in self.model._items.values()
            if item.lease_until is not None and item.lease_until > now
        ]
        choices = [st.sampled_from(["junk", "99:1", "1:99"])]
        choices += [st.sampled_from(current)] * 4 if current else []
        choices += [st.sampled_from(self.handed_out)] if self.handed_out else []
        return data.draw(st.lists(st.one_of(choices), max_size=3))

    def teardown(self) -> None:
        try:
            self.run(self.sqlite.close())
        finally:
            self.loop.close()
            self.directory.cleanup()

    @initialize(items=new_items)
    def start(self, items: list[NewItem]) -> None:
        self.put(items)

    @rule(items=new_items)
    def put(self, items: list[NewItem]) -> None:
        self.run(self.model.put(items))
        self.run(self.sqlite.put(items))

    @rule(batches=st.lists(new_items, min_size=2, max_size=4))
    def put_concurrently(self, batches: list[list[NewItem]]) -> None:
        """Concurrent puts share one group commit, in the order they were called."""

        async def all_at_once() -> None:
            await asyncio.gather(*(self.sqlite.put(items) for items in batches))

        for items in batches:
            self.run(self.model.put(items))
        commits = self.sqlite.commits
        self.run(all_at_once())
        assert self.sqlite.commits == commits + 1

    @rule(
        limit=st.integers(0, 5),
        lease_seconds=st.sampled_from([1.0, 5.0, 30.0]),
        exclude=st.frozensets(st.sampled_from(GROUPS), max_size=1),
    )
    def lease(self, limit: int, lease_seconds: float, exclude: frozenset[str]) -> None:
        expected = self.run(self.model.lease(limit, lease_seconds, exclude))
        assert self.run(self.sqlite.lease(limit, lease_seconds, exclude)) == expected
        self.handed_out += [item.id for item in expected]

    @precondition(lambda self: self.handed_out)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        ids = self.draw_ids(data)
        self.run(self.model.ack(ids))
        self.run(self.sqlite.ack(ids))

    @precondition(lambda self: self.handed_out)
    @rule(data=st.data(), delay=delays)
    def nack(self, data: st.DataObject, delay: float) -> None:
        ids = self.draw_ids(data)
        self.run(self.model.nack(ids, delay))
        self.run(self.sqlite.nack(ids, delay))

    @precondition(lambda self: self.handed_out)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        ids = self.draw_ids(data)
        self.run(self.model.release(ids))
        self.run(self.sqlite.release(ids))

    @precondition(lambda self: self.handed_out)
    @rule(
        data=st.data(),
        reason=st.sampled_from(["rejected", "expired"]),
        code=st.none() | st.integers(40000, 40010),
    )
    def dead_letter(self, data: st.DataObject, reason: str, code: int | None) -> None:
        ids = self.draw_ids(data)
        letters = [DeadLetter(i, reason, code, "message " + i, "req-" + i) for i in ids]
        self.run(self.model.dead_letter(letters))
        self.run(self.sqlite.dead_letter(letters))

    @precondition(lambda self: self.model._dead)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        dead_ids = [record.id for record in self.run(self.model.dead_letters(1000))]
        ids = data.draw(st.none() | st.lists(st.sampled_from([*dead_ids, "7", "x"]), max_size=3))
        assert self.run(self.sqlite.replay(ids)) == self.run(self.model.replay(ids))

    @precondition(lambda self: self.model._dead)
    @rule()
    def purge(self) -> None:
        assert self.run(self.sqlite.purge()) == self.run(self.model.purge())

    @rule(seconds=st.sampled_from([0.5, 1.0, 5.0, 31.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def reopen(self) -> None:
        self.run(self.sqlite.close())
        self.sqlite = self.run(SQLiteQueue.open(self.path, clock=self.clock, commit_window=0))

    @invariant()
    def same_state(self) -> None:
        assert self.run(self.sqlite.stats()) == self.run(self.model.stats())
        assert self.run(self.sqlite.dead_letters(1000)) == self.run(self.model.dead_letters(1000))

    @invariant()
    def same_items(self) -> None:
        with closing(sqlite3.connect(self.path)) as conn:
            rows = conn.execute(
                "SELECT id, grp, payload, attempts, enqueued_at, available_at, lease_until, leases"
                " FROM items ORDER BY id"
            ).fetchall()
        assert rows == [
            (
                i.number,
                i.group,
                i.payload,
                i.attempts,
                i.enqueued_at,
                i.available_at,
                i.lease_until,
                i.leases,
            )
            for i in self.model._items.values()
        ]


QueueComparison.TestCase.settings = settings(max_examples=75, stateful_step_count=40, deadline=None)
TestQueueComparison = QueueComparison.TestCase
