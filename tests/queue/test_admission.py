"""Admission's own task: ``stop`` ends it whenever it comes, even when the read it interrupts
drops the cancel (the endpoint tests cover what it admits)."""

from __future__ import annotations

import asyncio

from tests.harness import run
from tiktok_gateway.queue.admission import Admission
from tiktok_gateway.queue.base import QueueStats
from tiktok_gateway.queue.memory import MemoryQueue


class DropsCancels(MemoryQueue):
    """A queue whose reads return their result when cancelled, as redis-py's commands do when
    the cancel lands as their write ends (``asyncio.wait_for`` on Python 3.11). ``reading`` is
    set while a read is under way. Once ``hang`` is set its reads never return, so a task that
    missed its stop can still be cancelled at the test's end."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.hang = False

    async def stats(self) -> QueueStats:
        if self.hang:
            await asyncio.Event().wait()
        self.reading.set()
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            pass  # dropped, as the library does
        finally:
            self.reading.clear()
        return await super().stats()


def test_stop_ends_the_task_when_a_read_drops_the_cancel() -> None:
    """CI hung here: the task slept on after the dropped cancel, ``stop`` waited forever."""

    async def scenario() -> None:
        queue = DropsCancels()
        admission = Admission(queue, max_items=10, max_bytes=10, interval=0.001)
        admission.start()
        await queue.reading.wait()
        stopping = asyncio.ensure_future(admission.stop())
        try:
            done, _ = await asyncio.wait([stopping], timeout=5)
            assert done, "stop never returned: the task went on"
        finally:
            queue.hang = True
        assert admission._task is None

    run(scenario())
