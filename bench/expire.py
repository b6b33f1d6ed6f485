"""What expiring a held destination's old events costs, and what a lease of one group costs while
another group holds a backlog (issue 13 item 6), on SQLite and on Redis.

With ``--depth`` items (default 100,000; 650-byte payloads, as ``queue_commit.py``'s) queued in
group ``held``, put one second apart in blocks of 1,000 (so half of them are older than the
expiry time used below):

- ``expire 250``: one ``Queue.expire("held", before, 250, ...)`` call that moves 250 items (what
  the lane calls every 60 s while the destination is held, again while a call moves 250);
- ``expire, nothing due``: one call with ``before`` earlier than every item (the call a held
  destination with nothing old makes every 60 s);
- ``lease of other group``: a lease (``only_groups=["live"]``) of 100 items of group ``live`` and
  their ack, side by side (alternating rounds) on a queue whose ``held`` group is empty and on one
  whose ``held`` group holds ``--depth`` items: the ratio shows whether a lease reads the other
  group's backlog;
- SQLite: a put of 1,000 items with this tree's index on ``(grp, enqueued_at)`` and with the
  index on ``enqueued_at`` it replaced, alternating, ``--depth`` items queued in each file.

Redis also reports: the first leases of ``live`` after ``--depth`` unread ``held`` entries were
put ahead of its own (a lease reads 2,000 unread entries per call at most: how many calls and how
long until the ``live`` item comes), and the memory of the ``held`` group's enqueued set per item
(``MEMORY USAGE``). With ``--baseline REV`` (a git revision, e.g. ``main``) it also times a lease
of 1,000 items and their ack with the Lua scripts of ``REV`` and of this tree, alternating: what
keeping the enqueued set costs the delivery path.

Each number is the MEDIAN of ``--repeat`` calls (its largest in brackets), timed from the event
loop. Redis runs at ``--redis`` (default ``redis://127.0.0.1:6379/13``) under key prefixes of its
own, deleted afterwards.

    .venv/bin/python bench/expire.py [--depth 100000] [--repeat 21] [--baseline main]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import tempfile
import time
import types
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from statistics import median

import redis.asyncio as redis

from tiktok_gateway.queue import redis_scripts
from tiktok_gateway.queue.base import NewItem, Queue
from tiktok_gateway.queue.redis_streams import RedisStreamsQueue
from tiktok_gateway.queue.sqlite import SQLiteQueue

PAYLOAD = b'{"event":"PageView","event_id":"0123456789abcdef","properties":{}}' * 10
START = 1_700_000_000.0
BLOCK = 1000


class Clock:
    """A clock the bench sets (enqueued times one second apart per block of puts)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class Store:
    """Opens queues on one backend and removes what they stored afterwards."""

    def __init__(self, name: str, directory: Path, redis_url: str) -> None:
        self.name, self.directory, self.redis_url = name, directory, redis_url
        self.prefixes: list[str] = []

    async def open(self, label: str, clock: Clock) -> Queue:
        if self.name == "sqlite":
            return await SQLiteQueue.open(self.directory / f"{label}.db", clock=clock)
        prefix = f"bench-expire-{uuid.uuid4().hex[:8]}-{label}"
        self.prefixes.append(prefix)
        return await RedisStreamsQueue.open(self.redis_url, clock=clock, prefix=prefix)

    async def clean(self) -> None:
        if not self.prefixes:
            return
        client = redis.Redis.from_url(self.redis_url)
        for prefix in self.prefixes:
            keys = [key async for key in client.scan_iter(match=f"{{{prefix}}}*", count=1000)]
            for start in range(0, len(keys), 1000):
                await client.delete(*keys[start : start + 1000])
        await client.aclose()


async def fill(queue: Queue, clock: Clock, group: str, count: int) -> None:
    """``count`` items of ``group``, one block of ``BLOCK`` per second of the clock."""
    for start in range(0, count, BLOCK):
        await queue.put([NewItem(group, PAYLOAD)] * min(BLOCK, count - start))
        clock.now += 1.0


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await call()
    return time.perf_counter() - began


def paired(label: str, ours: list[float], theirs: list[float]) -> None:
    """The ratio of the medians, and the median of the rounds' own ratios (each round ran both
    side by side, so it is the one that load from other processes disturbs least)."""
    rounds = median(a / b for a, b in zip(ours, theirs, strict=True))
    print(f"  ratio ({label}): {median(ours) / median(theirs):.2f}, by round {rounds:.2f}")


def show(name: str, times: list[float]) -> None:
    print(f"  {name:42s} {median(times) * 1000:8.2f} ms ({max(times) * 1000:.2f})")


async def expiry(store: Store, depth: int, repeat: int) -> None:
    clock = Clock()
    queue = await store.open("expire", clock)
    await fill(queue, clock, "held", depth)
    if isinstance(queue, RedisStreamsQueue):  # another lane's leases have read the entries
        await _read_all(queue, store.redis_url)
    before = START + (depth // BLOCK) / 2  # half of the items are older
    moved: list[float] = []
    nothing: list[float] = []
    for _ in range(repeat):
        moved.append(await timed(lambda: _expect(queue.expire("held", before, 250, "m"), 250)))
        nothing.append(await timed(lambda: _expect(queue.expire("held", START - 1, 250, "m"), 0)))
    show("expire 250 (250 moved)", moved)
    show("expire, nothing due", nothing)
    print(f"  queued after: {(await queue.stats()).depth:,}")
    if isinstance(queue, RedisStreamsQueue):
        client = redis.Redis.from_url(store.redis_url)
        key = f"{queue._prefix}:enqueued:held"
        size, count = await client.memory_usage(key, samples=0), await client.zcard(key)
        await client.aclose()
        print(f"  enqueued set: {(size or 0) / count:.0f} bytes per item ({count:,} items)")
    await queue.close()


async def _read_all(queue: RedisStreamsQueue, url: str) -> None:
    """Leases of an empty group until no entry is unread (each reads 2,000 at most)."""
    client = redis.Redis.from_url(url)
    try:
        while True:
            await queue.lease(1, 60, only_groups=["live"])
            (group,) = await client.xinfo_groups(queue._keys[0])
            if not group["lag"]:
                return
    finally:
        await client.aclose()


async def _expect(call: Awaitable[int], count: int) -> None:
    got = await call
    assert got == count, (got, count)


async def lease_beside_backlog(store: Store, depth: int, repeat: int) -> None:
    clocks = {"empty": Clock(), "backlog": Clock()}
    queues = {label: await store.open(label, clocks[label]) for label in clocks}
    await fill(queues["backlog"], clocks["backlog"], "held", depth)
    first_calls = 0
    first_time = 0.0
    for label, queue in queues.items():
        await queue.put([NewItem("live", PAYLOAD)])
        began = time.perf_counter()
        calls = 0
        while True:  # the first lease(s): Redis reads the unread entries ahead of "live"'s
            calls += 1
            leased = await queue.lease(100, 60, only_groups=["live"])
            if leased:
                await queue.ack([item.id for item in leased])
                break
        if label == "backlog":
            first_calls, first_time = calls, time.perf_counter() - began
    times: dict[str, list[float]] = {label: [] for label in queues}
    for _ in range(repeat):
        for label, queue in queues.items():  # alternating rounds
            await queue.put([NewItem("live", PAYLOAD)] * 100)

            async def lease_and_ack(queue: Queue = queue) -> None:
                leased = await queue.lease(100, 60, only_groups=["live"])
                assert len(leased) == 100
                await queue.ack([item.id for item in leased])

            times[label].append(await timed(lease_and_ack))
    show("lease 100 of other group + ack", times["empty"])
    show(f"  the same, {depth:,} in group held", times["backlog"])
    paired("backlog / empty", times["backlog"], times["empty"])
    if store.name == "redis":
        print(
            f"  first lease after {depth:,} unread held entries: {first_calls} calls,"
            f" {first_time * 1000:.0f} ms in all"
        )
    for queue in queues.values():
        await queue.close()


async def put_cost(store: Store, depth: int, repeat: int) -> None:
    """Puts of 1,000 items on two SQLite files holding ``depth`` items each: one with this
    tree's index items_group_enqueued(grp, enqueued_at), one with the index it replaced,
    items_enqueued(enqueued_at) (swapped in by hand: the put itself is the same statement)."""
    clocks = {"this tree": Clock(), "replaced index": Clock()}
    queues = {label: await store.open(label.replace(" ", "-"), clocks[label]) for label in clocks}
    for label, queue in queues.items():
        await fill(queue, clocks[label], "held", depth)
    replaced = queues["replaced index"]
    assert isinstance(replaced, SQLiteQueue)

    def swap(conn: sqlite3.Connection) -> None:
        conn.execute("DROP INDEX items_group_enqueued")
        conn.execute("CREATE INDEX items_enqueued ON items(enqueued_at)")

    await replaced._run(swap)
    times: dict[str, list[float]] = {label: [] for label in queues}
    for _ in range(repeat):
        for label, queue in queues.items():
            clocks[label].now += 1.0
            batch = [NewItem("live", PAYLOAD)] * 1000
            times[label].append(await timed(partial(queue.put, batch)))
    for label in queues:
        show(f"put 1,000 (fsync), {label}", times[label])
    paired("this tree / replaced index", times["this tree"], times["replaced index"])
    for queue in queues.values():
        await queue.close()


def _scripts_of(revision: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{revision}:src/tiktok_gateway/queue/redis_scripts.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("baseline_scripts")
    exec(compile(source, f"{revision}:redis_scripts.py", "exec"), module.__dict__)
    return module


async def delivery_scripts(store: Store, revision: str, repeat: int) -> None:
    """Lease 1,000 + ack with the scripts of ``revision`` and of this tree, alternating."""
    variants = {revision: _scripts_of(revision), "this tree": redis_scripts}
    queues: dict[str, RedisStreamsQueue] = {}
    for label, scripts in variants.items():
        queue = await store.open(label.replace(" ", "-"), Clock())
        assert isinstance(queue, RedisStreamsQueue)
        client = queue._client
        queue._lease = client.register_script(scripts.LEASE)
        queue._ack = client.register_script(scripts.ACK)
        queues[label] = queue
    times: dict[str, list[float]] = {label: [] for label in queues}
    for _ in range(repeat):
        for label, queue in queues.items():
            await queue.put([NewItem("live", PAYLOAD)] * 1000)

            async def lease_and_ack(queue: RedisStreamsQueue = queue) -> None:
                leased = await queue.lease(1000, 60, only_groups=["live"])
                assert len(leased) == 1000
                await queue.ack([item.id for item in leased])

            times[label].append(await timed(lease_and_ack))
    for label in queues:
        show(f"lease 1,000 + ack, scripts of {label}", times[label])
    paired(f"this tree / {revision}", times["this tree"], times[revision])
    for queue in queues.values():
        await queue.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--baseline", metavar="REV", help="also time Redis lease+ack vs REV")
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        for name in ("sqlite", "redis"):
            store = Store(name, Path(directory), args.redis)
            print(f"{name} ({args.depth:,} queued, median of {args.repeat})")
            try:
                await expiry(store, args.depth, args.repeat)
                await lease_beside_backlog(store, args.depth, args.repeat)
                if name == "sqlite":
                    await put_cost(store, args.depth, args.repeat)
                if name == "redis" and args.baseline:
                    await delivery_scripts(store, args.baseline, args.repeat)
            finally:
                await store.clean()


if __name__ == "__main__":
    asyncio.run(main())
