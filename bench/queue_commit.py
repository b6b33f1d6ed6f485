"""Queue group commit: puts per second and commits per put, by number of concurrent callers.

Each caller loops ``put`` of 1 to 5 items (as the HTTP layer does for one accepted hit) for
``--seconds``; every put waits for its commit (synchronous=FULL: one fsync per commit), so one
caller alone measures the disk's fsync rate, and more callers show how many puts share a commit.
Latency is that of one ``put`` (the extra time a hit's answer waits). The queue file goes to a
fresh temporary directory under ``--dir`` (default: the system's; put it on the disk you deploy on,
a RAM disk makes fsync free). ``--redis URL`` measures the Redis Streams queue instead (under a
key prefix of its own, deleted afterwards): one script call per group of puts, no fsync unless
the server's ``appendfsync always`` asks for one. Not named ``queue.py``: run as a script, that
would shadow the standard library's ``queue``.

``--depth N`` measures instead what one call costs with N items queued (650-byte payloads, as
the delivery bench's events): ``stats()`` (what ``/readyz`` and ``/metrics`` run), a put of 1 and
of 1,000 items, a lease of 1,000 and their ack. Each is the MEDIAN of ``--repeat`` calls, timed
from the event loop (so it includes the hop to the queue thread); every call holds that thread,
and every put waits behind it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from statistics import median, quantiles

import redis.asyncio as redis

from tiktok_gateway.queue.base import NewItem
from tiktok_gateway.queue.redis_streams import RedisStreamsQueue
from tiktok_gateway.queue.sqlite import SQLiteQueue

Backend = SQLiteQueue | RedisStreamsQueue
REDIS_URL: str | None = None  # --redis

PAYLOAD = b'{"event":"PageView","event_id":"0123456789abcdef","properties":{}}' * 4


def _redis_prefix(path: Path) -> str:
    return f"bench-{os.getpid()}-{path.stem}"


async def open_queue(path: Path) -> Backend:
    """SQLite at ``path``, or (``--redis``) Redis under a prefix named after the file."""
    if REDIS_URL is None:
        return await SQLiteQueue.open(path)
    return await RedisStreamsQueue.open(REDIS_URL, prefix=_redis_prefix(path))


async def close_queue(queue: Backend, path: Path) -> None:
    await queue.close()
    if REDIS_URL is not None:
        client = redis.Redis.from_url(REDIS_URL)
        pattern = f"{{{_redis_prefix(path)}}}*"  # every key carries the prefix as its hash tag
        keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def burst(path: Path, callers: int) -> None:
    """``callers`` puts of one item at once: how many commits they take."""
    queue = await open_queue(path)
    await asyncio.gather(*(queue.put([NewItem("g", PAYLOAD)]) for _ in range(callers)))
    print(f"burst: {callers} concurrent puts of 1 item -> {queue.commits} commit(s)")
    await close_queue(queue, path)


async def sustained(path: Path, callers: int, seconds: float) -> None:
    queue = await open_queue(path)
    latencies: list[float] = []
    items = 0
    deadline = time.perf_counter() + seconds

    async def caller(rng: random.Random) -> None:
        nonlocal items
        while (start := time.perf_counter()) < deadline:
            batch = [NewItem("g", PAYLOAD) for _ in range(rng.randint(1, 5))]
            await queue.put(batch)
            latencies.append(time.perf_counter() - start)
            items += len(batch)

    began = time.perf_counter()
    await asyncio.gather(*(caller(random.Random(n)) for n in range(callers)))
    elapsed = time.perf_counter() - began
    await close_queue(queue, path)
    puts, commits, cuts = len(latencies), max(queue.commits, 1), quantiles(latencies, n=100)
    print(
        f"{callers:4d} callers: {puts / elapsed:8.0f} puts/s {items / elapsed:8.0f} items/s"
        f"  {commits:6d} commits ({puts / commits:6.1f} puts each)"
        f"  latency p50 {cuts[49] * 1000:6.2f} ms p99 {cuts[98] * 1000:6.2f} ms"
    )


OP_PAYLOAD = (PAYLOAD * 3)[:650]


async def timed(call: Callable[[], Awaitable[object]], repeat: int) -> tuple[float, float]:
    """Median and maximum seconds of ``repeat`` awaited calls."""
    times: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return median(times), max(times)


async def operations(path: Path, depth: int, repeat: int) -> None:
    """The cost of single queue operations with ``depth`` items queued."""
    queue = await open_queue(path)
    for start in range(0, depth, 1000):
        await queue.put([NewItem("g", OP_PAYLOAD)] * min(1000, depth - start))
    one, thousand = [NewItem("g", OP_PAYLOAD)], [NewItem("g", OP_PAYLOAD)] * 1000
    print(f"{depth:,} items queued; median (max) of {repeat} calls:")
    print(f"  stats() returns    {await queue.stats()}")
    acks: list[float] = []

    async def lease_and_ack() -> None:
        leased = await queue.lease(1000, 60)
        began = time.perf_counter()
        await queue.ack([item.id for item in leased])
        acks.append(time.perf_counter() - began)

    for name, call in (
        ("stats()", queue.stats),
        ("put 1 item", lambda: queue.put(one)),
        ("put 1,000 items", lambda: queue.put(thousand)),
        ("lease 1,000 + ack", lease_and_ack),
    ):
        middle, most = await timed(call, repeat)
        print(f"  {name:18s} {middle * 1000:8.2f} ms ({most * 1000:.2f})")
    print(f"  of which ack 1,000 {median(acks) * 1000:8.2f} ms ({max(acks) * 1000:.2f})")
    await close_queue(queue, path)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where the queue file goes")
    parser.add_argument("--seconds", type=float, default=3.0, help="per concurrency level")
    parser.add_argument("--callers", type=int, nargs="*", default=[1, 10, 100, 200])
    parser.add_argument("--depth", type=int, default=0, help="time single operations instead")
    parser.add_argument("--repeat", type=int, default=20, help="calls per operation (--depth)")
    parser.add_argument("--redis", metavar="URL", help="measure the Redis queue at URL instead")
    args = parser.parse_args()
    global REDIS_URL
    REDIS_URL = args.redis
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        if args.depth:
            await operations(Path(directory) / "ops.db", args.depth, args.repeat)
            return
        await burst(Path(directory) / "burst.db", 200)
        for callers in args.callers:
            await sustained(Path(directory) / f"queue-{callers}.db", callers, args.seconds)


if __name__ == "__main__":
    asyncio.run(main())
