"""What the Redis Streams queue does beyond the shared contract: several processes on one queue,
Redis going away and coming back, its durability settings, consumers and key prefixes.

The contract itself runs in test_contract.py and test_state_machine.py against the shared test
server; tests here that stop a server or need its settings run a private one.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from tests import redis_server
from tests.fakes import FakeClock
from tests.system.processes import free_port
from tiktok_gateway.config import load_config
from tiktok_gateway.errors import ConfigError
from tiktok_gateway.queue import redis_streams
from tiktok_gateway.queue.base import DeadLetter, NewItem, QueueStats, QueueUnavailable
from tiktok_gateway.queue.redis_streams import NO_APPEND_ONLY_FILE, RedisStreamsQueue, split_url
from tiktok_gateway.runtime import start_runtime, stop_runtime


@pytest.fixture
def prefix() -> Iterator[str]:
    redis_server.require()
    name = redis_server.new_prefix()
    yield name
    redis_server.delete_prefix(name)


def items(count: int, group: str = "g") -> list[NewItem]:
    return [NewItem(group, str(n).encode()) for n in range(count)]


def pending_by_consumer(prefix: str) -> dict[str, int]:
    client: Any = redis.Redis.from_url(redis_server.URL)
    try:
        summary = client.xpending(f"{{{prefix}}}:items", "delivery")
        return {c["name"].decode(): c["pending"] for c in summary["consumers"]}
    finally:
        client.close()


def test_two_processes_share_the_queue_and_take_over_expired_leases(prefix: str) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        url = redis_server.URL
        first = await RedisStreamsQueue.open(url, clock=clock, prefix=prefix, consumer="a:1")
        second = await RedisStreamsQueue.open(url, clock=clock, prefix=prefix, consumer="b:2")
        try:
            await first.put(items(6))
            await second.put(items(4))
            held_by_first = await first.lease(4, 10)
            held_by_second = await second.lease(100, 60)
            assert [i.payload for i in held_by_first] == [b"0", b"1", b"2", b"3"]
            assert [i.payload for i in held_by_second] == [b"4", b"5", b"0", b"1", b"2", b"3"]
            assert pending_by_consumer(prefix) == {"a:1": 4, "b:2": 6}

            clock.advance(10)  # the first process died holding its leases
            taken_over = await second.lease(100, 60)
            assert [i.payload for i in taken_over] == [i.payload for i in held_by_first]
            assert pending_by_consumer(prefix) == {"b:2": 10}
            await first.nack([i.id for i in held_by_first], delay=0)  # stale: changes nothing
            assert await second.lease(100, 60) == []

            await second.ack([i.id for i in held_by_second + taken_over])
            assert await first.stats() == QueueStats(depth=0, leased=0, oldest_age=0.0, dead=0)
        finally:
            await first.close()
            await second.close()

    asyncio.run(scenario())


def test_idle_consumers_are_dropped_at_open_but_not_those_holding_items(prefix: str) -> None:
    async def scenario() -> None:
        url = redis_server.URL
        for name in ("gone:1", "gone:2", "holder:3"):
            queue = await RedisStreamsQueue.open(url, prefix=prefix, consumer=name)
            await queue.put(items(1))
            if name != "holder:3":
                await queue.ack([i.id for i in await queue.lease(10, 60)])
            else:
                await queue.lease(10, 60)
            await queue.close()
        queue = await RedisStreamsQueue.open(url, prefix=prefix, consumer="new:4")
        await queue.close()

    asyncio.run(scenario())
    assert pending_by_consumer(prefix) == {"holder:3": 1}
    client: Any = redis.Redis.from_url(redis_server.URL)
    try:
        names = {c["name"] for c in client.xinfo_consumers(f"{{{prefix}}}:items", "delivery")}
    finally:
        client.close()
    assert names == {b"holder:3"}  # "new:4" reads nothing: Redis creates it on its first read


def test_an_unreachable_redis_raises_queue_unavailable_until_it_is_back(tmp_path: Path) -> None:
    port = free_port()

    async def scenario() -> None:
        with redis_server.private_server(tmp_path, port=port) as server:
            queue = await RedisStreamsQueue.open(server.url)
            await queue.put(items(1))
        try:  # the server is gone
            with pytest.raises(QueueUnavailable):
                await queue.put(items(1))
            with pytest.raises(QueueUnavailable):
                await queue.lease(10, 30)
            with pytest.raises(QueueUnavailable):
                await queue.stats()
            # Back, empty (it kept nothing on disk): the queue reconnects and recreates its
            # stream and consumer group.
            with redis_server.private_server(tmp_path, port=port):
                await queue.put(items(2))
                assert [i.payload for i in await queue.lease(10, 30)] == [b"0", b"1"]
        finally:
            await queue.close()

    asyncio.run(scenario())


def test_opening_an_unreachable_redis_raises_queue_unavailable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(QueueUnavailable, match="redis: ConnectionError"):
        asyncio.run(RedisStreamsQueue.open(url))


def test_with_an_append_only_file_put_items_survive_a_kill_of_redis(tmp_path: Path) -> None:
    port = free_port()

    async def put_then_kill() -> None:
        with redis_server.private_server(tmp_path, port=port, append_only=True) as server:
            queue = await RedisStreamsQueue.open(server.url)
            assert queue.durability_warning == ""
            await queue.put(items(3))
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            await queue.close()

    async def reopen() -> list[bytes]:
        with redis_server.private_server(tmp_path, port=port, append_only=True) as server:
            queue = await RedisStreamsQueue.open(server.url)
            try:
                return [i.payload for i in await queue.lease(10, 30)]
            finally:
                await queue.close()

    asyncio.run(put_then_kill())
    assert asyncio.run(reopen()) == [b"0", b"1", b"2"]


def test_without_an_append_only_file_the_queue_says_what_a_restart_loses(tmp_path: Path) -> None:
    async def warning() -> str:
        with redis_server.private_server(tmp_path) as server:
            queue = await RedisStreamsQueue.open(server.url)
            await queue.close()
            return queue.durability_warning

    assert "appendonly" in asyncio.run(warning())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h:6379/0", ("redis://h:6379/0", "tiktok-gateway")),
        ("redis://h/1?key_prefix=shop-a", ("redis://h/1", "shop-a")),
        (
            "rediss://:pw@h/0?socket_timeout=2&key_prefix=b",
            ("rediss://:pw@h/0?socket_timeout=2", "b"),
        ),
    ],
)
def test_the_key_prefix_comes_from_the_url(url: str, expected: tuple[str, str]) -> None:
    assert split_url(url) == expected


@pytest.mark.parametrize("url", ["redis://h/0?key_prefix=", "redis://h/0?key_prefix=a{b}"])
def test_a_bad_key_prefix_names_queue_url(url: str) -> None:
    with pytest.raises(ConfigError, match="queue_url"):
        split_url(url)


def test_items_survive_their_consumer_group_being_destroyed(prefix: str) -> None:
    """An operator's XGROUP DESTROY (or FLUSH of the group alone) loses no item: the group is
    recreated on the next call and every item in the stream can be leased again."""

    async def scenario() -> None:
        clock = FakeClock()
        queue = await RedisStreamsQueue.open(redis_server.URL, clock=clock, prefix=prefix)
        try:
            await queue.put(items(2))
            assert len(await queue.lease(10, 30)) == 2
            client: Any = redis.Redis.from_url(redis_server.URL)
            client.xgroup_destroy(f"{{{prefix}}}:items", "delivery")
            client.close()
            again = await queue.lease(10, 30)
            assert [i.payload for i in again] == [b"0", b"1"]
            await queue.ack([i.id for i in again])
            assert (await queue.stats()).depth == 0
        finally:
            await queue.close()

    asyncio.run(scenario())


def test_serve_logs_what_a_redis_restart_would_lose(tmp_path: Path) -> None:
    async def start_and_stop(url: str) -> None:
        config = load_config(None, {"TIKTOK_PIXEL_CODE": "CTEST", "GATEWAY_QUEUE_URL": url})
        runtime = await start_runtime(config, run_worker=False)
        await stop_runtime(runtime)

    with redis_server.private_server(tmp_path) as server, capture_logs() as lines:
        asyncio.run(start_and_stop(server.url))
    assert [line["detail"] for line in lines if line["event"] == "queue_not_durable"] == [
        NO_APPEND_ONLY_FILE
    ]


def test_a_paused_groups_backlog_is_read_in_bounded_steps(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unread entries of an excluded group are moved aside at most MAX_READ_PER_LEASE per call
    (one call never holds Redis long); another group's items behind them come a few calls
    later, none lost."""
    monkeypatch.setattr(redis_streams, "MAX_READ_PER_LEASE", 40)

    async def scenario() -> list[int]:
        queue = await RedisStreamsQueue.open(redis_server.URL, prefix=prefix)
        try:
            await queue.put(items(100, group="paused"))
            await queue.put(items(3, group="live"))
            counts = []
            for _ in range(4):
                counts.append(len(await queue.lease(10, 60, {"paused"})))
            assert [i.group for i in await queue.lease(200, 60)] == ["paused"] * 100
            return counts
        finally:
            await queue.close()

    assert asyncio.run(scenario()) == [0, 0, 3, 0]  # 40 + 40 + (20 paused, 3 live) read


def test_calls_larger_than_the_read_limit_and_the_command_slices(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lease larger than MAX_READ_PER_LEASE still takes every available item (it once stopped
    at the read limit), and acks and dead letters of thousands of ids (sent to Redis in slices
    of 1,000 arguments) remove them all."""
    monkeypatch.setattr(redis_streams, "MAX_READ_PER_LEASE", 40)

    async def scenario() -> None:
        queue = await RedisStreamsQueue.open(redis_server.URL, prefix=prefix)
        try:
            await queue.put(items(2_500))
            leased = await queue.lease(2_500, 60)
            assert [i.payload for i in leased] == [str(n).encode() for n in range(2_500)]
            letters = [DeadLetter(i.id, "rejected", 40002, "bad") for i in leased[:1_200]]
            await queue.dead_letter(letters + letters)  # the second letter of an item is ignored
            await queue.ack([i.id for i in leased[1_200:]])
            assert await queue.stats() == QueueStats(depth=0, leased=0, oldest_age=0.0, dead=1_200)
            assert await queue.replay() == 1_200
            assert len(await queue.lease(5_000, 60)) == 1_200
        finally:
            await queue.close()

    asyncio.run(scenario())


def test_a_lease_of_some_groups_reads_past_other_groups_in_bounded_steps(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only entries of the named groups count toward a lease's limit: unread entries of other
    groups move into their own ready sets, at most MAX_READ_PER_LEASE per call, until the named
    group's items behind them come; the others' are leased later, in order, none lost."""
    monkeypatch.setattr(redis_streams, "MAX_READ_PER_LEASE", 40)

    async def scenario() -> list[int]:
        queue = await RedisStreamsQueue.open(redis_server.URL, prefix=prefix)
        try:
            await queue.put(items(100, group="backlog"))
            await queue.put(items(3, group="lane"))
            counts = []
            for _ in range(4):
                counts.append(len(await queue.lease(10, 60, only_groups={"lane"})))
            backlog = await queue.lease(200, 60, only_groups={"backlog"})
            assert [i.payload for i in backlog] == [str(n).encode() for n in range(100)]
            return counts
        finally:
            await queue.close()

    assert asyncio.run(scenario()) == [0, 0, 3, 0]  # 40 + 40 + (20 backlog, 3 lane) read
