"""Opening the queue a URL names: ``sqlite:///path`` (default), ``redis://host:port/db``
(``rediss://`` with TLS), ``memory://``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tiktok_gateway.errors import ConfigError
from tiktok_gateway.queue.base import Clock, Queue, wall_clock
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.queue.redis_streams import RedisStreamsQueue
from tiktok_gateway.queue.sqlite import SQLiteQueue


async def open_queue(url: str, *, clock: Clock = wall_clock) -> Queue:
    """The queue for ``url``; ``ConfigError`` naming ``queue_url`` for an unknown scheme.

    Raises ``QueueUnavailable`` when a Redis queue's server does not answer.
    """
    if url.startswith("sqlite:///"):
        return await SQLiteQueue.open(Path(url.removeprefix("sqlite:///")), clock=clock)
    if url.startswith(("redis://", "rediss://")):
        return await RedisStreamsQueue.open(url, clock=clock)
    if url == "memory://":
        return MemoryQueue(clock=clock)
    scheme = url.partition(":")[0] or url
    raise ConfigError(
        "queue_url",
        f"unsupported queue {scheme!r}; use sqlite:///path, redis://host:port/db or memory://",
    )


def durability_warning(queue: Queue) -> str:
    """What a restart of the queue's server would lose ("" when nothing: SQLite commits to disk)."""
    return queue.durability_warning if isinstance(queue, RedisStreamsQueue) else ""


def redacted_url(url: str) -> str:
    """``url`` without its password (a Redis URL may carry one), for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(not a valid URL)"
    if password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
