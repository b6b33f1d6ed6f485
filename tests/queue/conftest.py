"""One fixture runs a test scenario against every queue backend, each on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeClock
from tiktok_gateway.queue.base import Queue
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.queue.sqlite import SQLiteQueue

Scenario = Callable[[Queue, FakeClock], Coroutine[Any, Any, None]]
RunScenario = Callable[[Scenario], None]


async def open_backend(name: str, path: Path, clock: FakeClock) -> Queue:
    if name == "memory":
        return MemoryQueue(clock)
    return await SQLiteQueue.open(path, clock=clock)


@pytest.fixture(params=["memory", "sqlite"])
def run_scenario(request: pytest.FixtureRequest, tmp_path: Path) -> RunScenario:
    """Runs ``scenario(queue, clock)`` in a fresh event loop, closing the queue afterwards."""
    name: str = request.param

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            clock = FakeClock()
            queue = await open_backend(name, tmp_path / "queue.db", clock)
            try:
                await scenario(queue, clock)
            finally:
                await queue.close()

        asyncio.run(main())

    return run
