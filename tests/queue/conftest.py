"""One fixture runs a test scenario against every queue backend, each on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import redis_server
from tests.fakes import FakeClock
from tiktok_gateway.queue.base import Queue
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.queue.redis_streams import RedisStreamsQueue
from tiktok_gateway.queue.sqlite import SQLiteQueue

Scenario = Callable[[Queue, FakeClock], Coroutine[Any, Any, None]]
RunScenario = Callable[[Scenario], None]


async def open_backend(name: str, path: Path, clock: FakeClock, prefix: str) -> Queue:
    if name == "memory":
        return MemoryQueue(clock)
    if name == "redis":
        return await RedisStreamsQueue.open(redis_server.URL, clock=clock, prefix=prefix)
    return await SQLiteQueue.open(path, clock=clock)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def run_scenario(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunScenario]:
    """Runs ``scenario(queue, clock)`` in a fresh event loop, closing the queue afterwards.

    The Redis backend runs against the real server (``tests/redis_server.py``), under a key
    prefix of its own that is deleted afterwards.
    """
    name: str = request.param
    prefix = redis_server.new_prefix()
    if name == "redis":
        redis_server.require()

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            clock = FakeClock()
            queue = await open_backend(name, tmp_path / "queue.db", clock, prefix)
            try:
                await scenario(queue, clock)
            finally:
                await queue.close()

        asyncio.run(main())

    yield run
    if name == "redis":
        redis_server.delete_prefix(prefix)
