"""Opening the queue a URL names: ``sqlite:///path`` (default), ``redis://host:port/db``
(``rediss://`` with TLS), ``memory://``.

The Redis backend (and redis-py, 55 ms of imports) is imported only for a Redis URL: ``serve``
with the SQLite queue answers ``/healthz`` that much sooner (bench/million.py)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tiktok_gateway.errors import ConfigError
from tiktok_gateway.queue.base import Clock, Queue, wall_clock
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.queue.sqlite import SQLiteQueue

SCHEMES = ("sqlite:///", "redis://", "rediss://", "memory://")
_UNSUPPORTED = "unsupported queue {!r}; use sqlite:///path, redis://host:port/db or memory://"


def check_queue_url(url: str) -> None:
    """Raise ``ValueError`` with the reason when ``url`` cannot name a queue ("" is the default).

    A Redis URL is checked as redis-py will read it (its options and their values), without
    connecting: a typo fails the configuration, not the first request.
    """
    if not url:
        return
    if not url.startswith(SCHEMES) or (url.startswith("memory:") and url != "memory://"):
        raise ValueError(_UNSUPPORTED.format(url.partition(":")[0] or url))
    if url.startswith(("redis://", "rediss://")):
        import redis.asyncio as redis

        from tiktok_gateway.queue.redis_streams import split_url

        try:
            client_url, _ = split_url(url)
            client = redis.Redis.from_url(client_url)
            client.connection_pool.make_connection()  # type: ignore[no-untyped-call]  # no I/O
        except ConfigError as error:
            raise ValueError(error.reason) from None
        except TypeError as error:  # redis-py passes unknown options on as keyword arguments
            option = re.search(r"argument '(\w+)'", str(error))
            name = repr(option[1]) if option else "in the URL"
            raise ValueError(f"not a usable Redis URL: unknown option {name}") from None
        except ValueError as error:  # a bad value of a known option
            raise ValueError(f"not a usable Redis URL: {error}") from None


async def open_queue(url: str, *, clock: Clock = wall_clock) -> Queue:
    """The queue for ``url``; ``ConfigError`` naming ``queue_url`` for an unknown scheme.

    Raises ``QueueUnavailable`` when a Redis queue's server does not answer.
    """
    if url.startswith("sqlite:///"):
        return await SQLiteQueue.open(Path(url.removeprefix("sqlite:///")), clock=clock)
    if url.startswith(("redis://", "rediss://")):
        from tiktok_gateway.queue.redis_streams import RedisStreamsQueue

        return await RedisStreamsQueue.open(url, clock=clock)
    if url == "memory://":
        return MemoryQueue(clock=clock)
    raise ConfigError("queue_url", _UNSUPPORTED.format(url.partition(":")[0] or url))


def durability_warning(queue: Queue) -> str:
    """What a restart of the queue's server would lose ("" when nothing: SQLite commits to disk)."""
    warning = getattr(queue, "durability_warning", "")  # RedisStreamsQueue's
    return warning if isinstance(warning, str) else ""


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
