"""Opening the queue a URL names: ``sqlite:///path`` (default), ``memory://``."""

from __future__ import annotations

from pathlib import Path

from tiktok_gateway.errors import ConfigError
from tiktok_gateway.queue.base import Clock, Queue, wall_clock
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.queue.sqlite import SQLiteQueue


async def open_queue(url: str, *, clock: Clock = wall_clock) -> Queue:
    """The queue for ``url``; ``ConfigError`` naming ``queue_url`` for an unknown scheme."""
    if url.startswith("sqlite:///"):
        return await SQLiteQueue.open(Path(url.removeprefix("sqlite:///")), clock=clock)
    if url == "memory://":
        return MemoryQueue(clock=clock)
    scheme = url.partition(":")[0] or url
    raise ConfigError("queue_url", f"unsupported queue {scheme!r}; use sqlite:///path or memory://")
