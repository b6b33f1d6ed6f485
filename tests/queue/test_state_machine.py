"""The durable queues against the in-memory reference model, step by step (hypothesis).

The backend (SQLite, or Redis Streams on the real server) and the model share one fake clock
and receive the same calls; every answer must be equal and, after every step, so must the stats
and the dead letters. ``reopen`` closes the backend and opens the same storage again, which must
change nothing. The last invariant also compares the stored items with the model's items field
by field (leases, payloads, times): SQLite's rows, Redis's stream entries and sets.
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

import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests import redis_server
from tests.fakes import FakeClock
from tiktok_gateway.queue.base import DeadLetter, NewItem, Queue
from tiktok_gateway.queue.memory import MemoryQueue, lease_id
from tiktok_gateway.queue.redis_streams import RedisStreamsQueue
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


Row = tuple[int, str, bytes, int, float, float, float | None, int]


class QueueComparison(RuleBasedStateMachine):
    """The rules and invariants; a subclass opens the backend and reads its stored items."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.model = MemoryQueue(self.clock)
        self.backend = self.run(self.open_backend())
        self.handed_out: list[str] = []

    async def open_backend(self) -> Queue:
        raise NotImplementedError

    def stored_items(self) -> list[Row]:
        """The backend's items as (number, group, payload, attempts, enqueued_at, available_at,
        lease_until, leases), in number order."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Remove the backend's storage (after it is closed)."""

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
            self.run(self.backend.close())
        finally:
            self.loop.close()
            self.cleanup()

    @initialize(items=new_items)
    def start(self, items: list[NewItem]) -> None:
        self.put(items)

    @rule(items=new_items)
    def put(self, items: list[NewItem]) -> None:
        self.run(self.model.put(items))
        self.run(self.backend.put(items))

    @rule(batches=st.lists(new_items, min_size=2, max_size=4))
    def put_concurrently(self, batches: list[list[NewItem]]) -> None:
        """Concurrent puts share one group commit, in the order they were called."""

        async def all_at_once() -> None:
            await asyncio.gather(*(self.backend.put(items) for items in batches))

        for items in batches:
            self.run(self.model.put(items))
        assert isinstance(self.backend, SQLiteQueue | RedisStreamsQueue)
        commits = self.backend.commits
        self.run(all_at_once())
        assert self.backend.commits == commits + 1

    @rule(
        limit=st.integers(0, 5),
        lease_seconds=st.sampled_from([1.0, 5.0, 30.0]),
        exclude=st.frozensets(st.sampled_from(GROUPS), max_size=1),
        only=st.none() | st.frozensets(st.sampled_from(GROUPS), max_size=2),
    )
    def lease(
        self, limit: int, lease_seconds: float, exclude: frozenset[str], only: frozenset[str] | None
    ) -> None:
        expected = self.run(self.model.lease(limit, lease_seconds, exclude, only))
        assert self.run(self.backend.lease(limit, lease_seconds, exclude, only)) == expected
        self.handed_out += [item.id for item in expected]

    @precondition(lambda self: self.handed_out)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        ids = self.draw_ids(data)
        self.run(self.model.ack(ids))
        self.run(self.backend.ack(ids))

    @precondition(lambda self: self.handed_out)
    @rule(data=st.data(), delay=delays)
    def nack(self, data: st.DataObject, delay: float) -> None:
        ids = self.draw_ids(data)
        self.run(self.model.nack(ids, delay))
        self.run(self.backend.nack(ids, delay))

    @precondition(lambda self: self.handed_out)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        ids = self.draw_ids(data)
        self.run(self.model.release(ids))
        self.run(self.backend.release(ids))

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
        self.run(self.backend.dead_letter(letters))

    @rule(
        group=st.sampled_from(GROUPS),
        age=st.sampled_from([0.0, 1.0, 5.0, 30.0]),
        limit=st.integers(0, 4),
    )
    def expire(self, group: str, age: float, limit: int) -> None:
        """Items put more than ``age`` seconds ago; leased ones are left alone."""
        before = self.clock() - age
        message = f"older than {age:g} s"
        expected = self.run(self.model.expire(group, before, limit, message))
        assert self.run(self.backend.expire(group, before, limit, message)) == expected

    @precondition(lambda self: self.model._dead)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        dead_ids = [record.id for record in self.run(self.model.dead_letters(1000))]
        ids = data.draw(st.none() | st.lists(st.sampled_from([*dead_ids, "7", "x"]), max_size=3))
        assert self.run(self.backend.replay(ids)) == self.run(self.model.replay(ids))

    @precondition(lambda self: self.model._dead)
    @rule()
    def purge(self) -> None:
        assert self.run(self.backend.purge()) == self.run(self.model.purge())

    @rule(seconds=st.sampled_from([0.5, 1.0, 5.0, 31.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def reopen(self) -> None:
        self.run(self.backend.close())
        self.backend = self.run(self.open_backend())

    @invariant()
    def same_state(self) -> None:
        assert self.run(self.backend.stats()) == self.run(self.model.stats())
        assert self.run(self.backend.dead_letters(1000)) == self.run(self.model.dead_letters(1000))

    @invariant()
    def same_items(self) -> None:
        assert self.stored_items() == [
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


class SQLiteComparison(QueueComparison):
    def __init__(self) -> None:
        self.directory = tempfile.TemporaryDirectory(dir=SCRATCH)
        self.path = Path(self.directory.name) / "queue.db"
        super().__init__()

    async def open_backend(self) -> Queue:
        return await SQLiteQueue.open(self.path, clock=self.clock, commit_window=0)

    def stored_items(self) -> list[Row]:
        with closing(sqlite3.connect(self.path)) as conn:
            return conn.execute(
                "SELECT id, grp, payload, attempts, enqueued_at, available_at, lease_until, leases"
                " FROM items ORDER BY id"
            ).fetchall()

    def cleanup(self) -> None:
        self.directory.cleanup()


class RedisComparison(QueueComparison):
    def __init__(self) -> None:
        redis_server.require()
        self.prefix = redis_server.new_prefix()
        self.inspect = redis.Redis.from_url(redis_server.URL)
        super().__init__()

    async def open_backend(self) -> Queue:
        return await RedisStreamsQueue.open(redis_server.URL, clock=self.clock, prefix=self.prefix)

    def stored_items(self) -> list[Row]:
        """Unread entries are available since their put; read ones carry their ready score."""
        key = f"{{{self.prefix}}}"
        db: Any = self.inspect  # redis-py's sync replies are typed as unions of every shape
        leased = {int(m): float(s) for m, s in db.zrange(f"{key}:leased", 0, -1, withscores=True)}
        leases = {int(n): int(v) for n, v in db.hgetall(f"{key}:leases").items()}
        attempts = {int(n): int(v) for n, v in db.hgetall(f"{key}:attempts").items()}
        ready: dict[int, float] = {}
        enqueued: dict[int, float] = {}
        for group in db.smembers(f"{key}:groups"):
            members = db.zrange(f"{key}:ready:{group.decode()}", 0, -1, withscores=True)
            ready.update((int(m), float(s)) for m, s in members)
            members = db.zrange(f"{key}:enqueued:{group.decode()}", 0, -1, withscores=True)
            enqueued.update((int(m), float(s)) for m, s in members)
        # Every read entry is in its group's enqueued set with its put time, and only those.
        assert set(enqueued) == set(ready)
        # Sets of groups left with no item are deleted (Redis deletes empty keys).
        assert {k.decode() for k in db.keys(f"{key}:enqueued:*")} == {
            f"{key}:enqueued:{g.decode()}" for g in db.smembers(f"{key}:groups")
        }
        rows: list[Row] = []
        for entry_id, fields in db.xrange(f"{key}:items"):
            number = int(entry_id.split(b"-")[1])
            enqueued_at = float(fields[b"enqueued_at"])
            assert enqueued.get(number, enqueued_at) == enqueued_at
            rows.append(
                (
                    number,
                    fields[b"group"].decode(),
                    fields[b"payload"],
                    attempts.get(number, 0),
                    enqueued_at,
                    ready.get(number, enqueued_at),
                    leased.get(number),
                    leases.get(number, 0),
                )
            )
        return rows

    def cleanup(self) -> None:
        self.inspect.close()
        redis_server.delete_prefix(self.prefix)


SQLiteComparison.TestCase.settings = settings(
    max_examples=75, stateful_step_count=40, deadline=None
)
RedisComparison.TestCase.settings = settings(max_examples=75, stateful_step_count=40, deadline=None)
TestSQLiteAgainstModel = SQLiteComparison.TestCase
TestRedisAgainstModel = RedisComparison.TestCase
