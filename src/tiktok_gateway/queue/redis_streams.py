"""The shared queue: a Redis stream that several gateway processes put to and lease from.

Chosen with ``queue_url = "redis://host:port/db"`` (``rediss://`` for TLS; a password in the URL is
never printed). ``?key_prefix=NAME`` in the URL (default ``tiktok-gateway``) lets several
gateways share one database. It talks to one Redis server (a standalone one, or a managed
service's primary endpoint); Sentinel and Cluster clients are not used. Storage layout, every
key under the hash tag ``{P}`` (``P`` = the prefix)::

    {P}:items            STREAM  one entry per item, id "0-<number>" (XADD 0-*: numbers
                                 increase, never reused); fields group, payload, enqueued_at
                                 consumer group "delivery": one consumer per gateway process
                                 ("<host>:<pid>"); its pending list holds every item a worker
                                 has read and not yet finished, owned by whoever leased it last
    {P}:ready:<group>    ZSET    number (19 digits, zero-padded) -> available_at, for every
                                 item of the group read from the stream and not finished
    {P}:enqueued:<group> ZSET    number -> enqueued_at, for the same items as its ready set:
                                 the group's oldest items first, for expire
    {P}:groups           SET     the groups whose ready set is not empty
    {P}:leased           ZSET    number -> lease_until, items whose latest lease was not finished
                                 by nack or release (expired ones too, as SQLite's index)
    {P}:leases           HASH    number -> leases so far (LeasedItem.id is "<number>:<leases>")
    {P}:attempts         HASH    number -> nacks so far (absent: 0)
    {P}:dead             ZSET    number -> dead_at
    {P}:dead:<number>    HASH    group, payload, attempts, enqueued_at, dead_at, reason, code,
                                 message, request_id
    {P}:probe            STRING  written by probe_write (does Redis take writes?), expires in 60 s

Invariants:

* Every undelivered item is one stream entry: ``depth`` is the stream's length, and the first
  entry is the oldest put (replayed items are new entries). ``ack`` and ``dead_letter`` acknowledge
  and delete the entry (and its ready member, lease and counters) in one script; nothing is
  deleted by reading, and the stream is never trimmed.
* An entry is either unread (after the consumer group's last-delivered id; available since its
  put) or in its group's ready set. ``lease`` first moves unread entries there, in stream order,
  until ``limit`` of the groups it takes (those not excluded; with ``only_groups``, those named
  and not excluded) have moved (unread entries after them cannot come earlier) or 2,000
  (``limit``, if larger) were read (so one call never holds Redis long, however large the
  backlog of a paused group, or of another group than those named), then takes the earliest
  ``available_at <= now`` across the ready sets of the groups it takes (with ``only_groups``,
  those sets alone), sets ``available_at = lease_until`` (so a lease hides the item and its
  expiry brings it back with no write) and claims the entry for its consumer (XCLAIM), which
  keeps ``XPENDING`` true to who holds what. So a lease of one group reads another group's
  entries once, when they join their sets (2,000 a call at most), and never again after.
* A read entry is in its group's enqueued set too (joined with its ready member, removed with
  it): ``expire`` reads the oldest of one group there, since the ready set's order
  (``available_at``) puts an item a probe nacked behind the whole backlog. Entries read by a
  version without this set (an upgrade with items queued) are not in it: those expire only
  when a lease carries them.
* Times come from the queue's clock, passed to every script: lease expiry and ``nack`` delays
  need the same clock as the other backends (the tests move a fake one), so Redis's own idle
  times (XAUTOCLAIM) are not used to find abandoned items; an expired lease simply makes the item
  available in its ready set, for any process to lease.
  Processes sharing a queue must therefore agree on the time (NTP): one whose clock runs ahead
  sees the others' leases end early and may send their events a second time (TikTok drops the
  repeat by event_id).
* Ids, lease order and stale-lease handling are those of the reference model, ``memory.py``,
  checked step by step against it (tests/queue/test_state_machine.py).

Puts that arrive while another is on its way to Redis are sent together, in call order, as the
next call of the put script (``commits`` counts them): one round trip for many concurrent hits,
and put order is call order, as with SQLite's group commit.

Durability is Redis's: ``put`` returns once Redis has applied its entries, which survives a
crash of the gateway, but a crash of Redis only with ``appendonly yes`` and ``appendfsync always``
(``everysec`` may lose the last second). ``open`` sets ``durability_warning`` when the server
keeps no append-only file (``serve`` logs it). A Redis that cannot be reached, or that refuses
writes (``OOM``: ``maxmemory`` reached under ``noeviction``; ``MISCONF``: it cannot persist;
``READONLY``: a replica; and the like), raises ``QueueUnavailable`` (the HTTP layer answers 503).

Size: ``stored_bytes`` is ``None``: the queue is capped by items only. Redis's memory is bounded by
the server itself (``maxmemory``, whose refusals become ``QueueUnavailable`` above), it may hold
other data than this queue, and the bytes of a stream are known only as an estimate (``MEMORY
USAGE`` samples it) that would cost a round trip per check.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tiktok_gateway.errors import ConfigError
from tiktok_gateway.queue import redis_scripts
from tiktok_gateway.queue.base import (
    MAX_EXPIRE_SCAN,
    Clock,
    DeadLetter,
    DeadRecord,
    LeasedItem,
    NewItem,
    QueueStats,
    QueueUnavailable,
    wall_clock,
)
from tiktok_gateway.queue.memory import lease_id, parse_dead_id, parse_lease_id

DEFAULT_PREFIX: Final = "tiktok-gateway"
CONSUMER_GROUP: Final = "delivery"
# Unread entries one lease call moves into the ready sets at most (see the invariants). Reached
# only when a paused group's events fill the stream: 30,000 of them took 89-92 ms a call with
# 10,000 (Redis serves nobody else meanwhile), about 18 with 2,000.
MAX_READ_PER_LEASE: Final = 2_000
# Seconds a command may take before the queue counts as unreachable (the URL may override it:
# ?socket_timeout=N).
SOCKET_TIMEOUT: Final = 5.0

NO_APPEND_ONLY_FILE: Final = (
    "Redis keeps no append-only file (appendonly no): queued events are lost if Redis restarts;"
    " set appendonly yes and appendfsync always on the Redis server"
)


def split_url(url: str) -> tuple[str, str]:
    """``(url for redis-py, key prefix)``: ``key_prefix`` taken out of the query string."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for key, value in query if key == "key_prefix"]
    prefix = prefixes[-1] if prefixes else DEFAULT_PREFIX
    if not prefix or any(c in prefix for c in "{}"):
        raise ConfigError("queue_url", "key_prefix must be non-empty, without { or }")
    rest = urlencode([(key, value) for key, value in query if key != "key_prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def default_consumer() -> str:
    """This process's consumer name in the stream's consumer group."""
    return f"{socket.gethostname()}:{os.getpid()}"


# Error codes of a Redis that refuses to write now, whatever the command: out of memory, unable
# to persist, a replica, too few replicas, a busy script, loading, a cluster down. They pass.
_REFUSALS: Final = (
    "OOM",
    "MISCONF",
    "READONLY",
    "NOREPLICAS",
    "MASTERDOWN",
    "BUSY",
    "LOADING",
    "CLUSTERDOWN",
    "TRYAGAIN",
)


def refusal_of(error: ResponseError) -> str | None:
    """``redis: CODE: text`` when ``error`` is a refusal of the storage (above), else ``None``.
    redis-py strips the code of the errors it has a class for (OOM, READONLY); the text keeps
    Redis's first sentence (never a secret), without the script's hash and line."""
    text = str(error).split(" script: ", 1)[0].split(". ", 1)[0].strip()  # the first sentence
    if isinstance(error, OutOfMemoryError):
        code = "OOM"
    elif isinstance(error, ReadOnlyError):
        code = "READONLY"
    else:
        code = text.split(" ", 1)[0]
        if code not in _REFUSALS:
            return None
        text = text[len(code) :].strip()
    return f"redis: {code}: {text[:160]}"


@asynccontextmanager
async def _reachable() -> AsyncIterator[None]:
    """Turn "Redis cannot be reached" and "Redis refuses writes now" into ``QueueUnavailable``;
    other errors are bugs."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as error:
        raise QueueUnavailable(f"redis: {type(error).__name__}") from error
    except ResponseError as error:
        refusal = refusal_of(error)
        if refusal is None:
            raise
        raise QueueUnavailable(refusal) from error


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


class RedisStreamsQueue:
    """The ``Queue`` contract on a Redis stream (layout and invariants above)."""

    def __init__(
        self, client: redis.Redis, prefix: str, *, clock: Clock = wall_clock, consumer: str = ""
    ) -> None:
        self._client = client
        self._clock = clock
        self._consumer = consumer or default_consumer()
        self._prefix = f"{{{prefix}}}"
        self._stream = f"{self._prefix}:items"
        self._dead = f"{self._prefix}:dead"
        self._keys = [
            self._stream,
            f"{self._prefix}:groups",
            f"{self._prefix}:leased",
            f"{self._prefix}:leases",
            f"{self._prefix}:attempts",
            self._dead,
        ]
        self._pending: list[tuple[Sequence[NewItem], str, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.commits = 0  # calls of the put script so far (one per group of puts)
        self.durability_warning = ""  # set by open: what a Redis restart would lose
        self._put = client.register_script(redis_scripts.PUT)
        self._lease = client.register_script(redis_scripts.LEASE)
        self._ack = client.register_script(redis_scripts.ACK)
        self._return = client.register_script(redis_scripts.RETURN)
        self._dead_letter = client.register_script(redis_scripts.DEAD_LETTER)
        self._expire = client.register_script(redis_scripts.EXPIRE)
        self._replay = client.register_script(redis_scripts.REPLAY)
        self._purge = client.register_script(redis_scripts.PURGE)
        self._drop_idle = client.register_script(redis_scripts.DROP_IDLE_CONSUMERS)
        self._stats = client.register_script(redis_scripts.STATS)
        self._probe = client.register_script(redis_scripts.PROBE)
        self._probe_key = f"{self._prefix}:probe"

    @classmethod
    async def open(
        cls, url: str, *, clock: Clock = wall_clock, prefix: str | None = None, consumer: str = ""
    ) -> RedisStreamsQueue:
        """Connect, create the stream and its consumer group if missing, drop idle consumers.

        ``prefix`` overrides the URL's ``key_prefix``. Raises ``QueueUnavailable`` when Redis
        does not answer.
        """
        client_url, url_prefix = split_url(url)
        client = redis.Redis.from_url(
            client_url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
        )
        queue = cls(client, prefix or url_prefix, clock=clock, consumer=consumer)
        try:
            async with _reachable():
                await queue._create_group()
                await queue._drop_idle_consumers()
                await queue._check_persistence()
        except BaseException:
            await client.aclose()
            raise
        return queue

    async def _create_group(self) -> None:
        try:
            await self._client.xgroup_create(self._stream, CONSUMER_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):  # it exists already: fine
                raise

    async def _drop_idle_consumers(self) -> None:
        """Consumers of processes gone by: only those with nothing pending (a running one that is
        dropped is recreated by its next read or claim, so this is safe while others run)."""
        await self._drop_idle(keys=self._keys, args=[self._prefix, self._consumer])

    async def _check_persistence(self) -> None:
        try:
            info = await self._client.info("persistence")
        except ResponseError:  # INFO disabled (some managed services): nothing to check
            return
        self.durability_warning = "" if info.get("aof_enabled") else NO_APPEND_ONLY_FILE

    async def _run(self, script: Any, *args: object) -> Any:
        async with _reachable():
            try:
                return await script(keys=self._keys, args=[self._prefix, *args])
            except ResponseError as error:
                # The stream or its group vanished (a Redis restarted without persistence, keys
                # deleted by hand): recreate them, as open does, and run the script again.
                if "NOGROUP" not in str(error):
                    raise
                await self._create_group()
                return await script(keys=self._keys, args=[self._prefix, *args])

    async def put(self, items: Sequence[NewItem]) -> None:
        if not items:
            return
        done = asyncio.get_running_loop().create_future()
        self._pending.append((items, repr(self._clock()), done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        await done

    async def _write_pending(self) -> None:
        """Send what is pending as one transaction, again until nothing is; every waiting put
        gets the outcome of the transaction that carried its items."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                args = [
                    part
                    for items, now, _ in batch
                    for item in items
                    for part in (item.group, item.payload, now)
                ]
                await self._run(self._put, *args)
                self.commits += 1
            except Exception as error:  # every waiting put fails with it; the writer goes on
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(error)
                continue
            for _, _, done in batch:
                if not done.done():  # a put whose caller went away was cancelled
                    done.set_result(None)

    async def lease(
        self,
        limit: int,
        lease_seconds: float,
        exclude_groups: Collection[str] = (),
        only_groups: Collection[str] | None = None,
    ) -> list[LeasedItem]:
        if only_groups is None:  # every group but the excluded ones
            mode, groups = "except", sorted(set(exclude_groups))
        else:  # the named ones but the excluded ones
            mode, groups = "only", sorted(set(only_groups) - set(exclude_groups))
        if limit <= 0 or (mode == "only" and not groups):
            return []
        now = self._clock()
        rows = await self._run(
            self._lease,
            repr(now),
            repr(now + lease_seconds),
            limit,
            self._consumer,
            MAX_READ_PER_LEASE,
            mode,
            *groups,
        )
        return [
            LeasedItem(
                id=lease_id(int(number), int(leases)),
                group=_text(group),
                payload=bytes(payload),
                attempts=int(attempts),
                enqueued_at=float(enqueued_at),
            )
            for number, leases, group, payload, attempts, enqueued_at in rows
        ]

    async def ack(self, ids: Sequence[str]) -> None:
        numbers = [parsed[0] for parsed in map(parse_lease_id, ids) if parsed]
        if numbers:
            await self._run(self._ack, *numbers)

    async def _finish_lease(self, ids: Sequence[str], available_at: float, attempt: bool) -> None:
        pairs = [str(part) for parsed in map(parse_lease_id, ids) if parsed for part in parsed]
        if pairs:
            now = self._clock()
            await self._run(self._return, repr(now), repr(available_at), int(attempt), *pairs)

    async def nack(self, ids: Sequence[str], delay: float) -> None:
        await self._finish_lease(ids, self._clock() + max(delay, 0.0), attempt=True)

    async def release(self, ids: Sequence[str]) -> None:
        await self._finish_lease(ids, self._clock(), attempt=False)

    async def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        args: list[object] = []
        for letter in letters:
            parsed = parse_lease_id(letter.id)
            if parsed:
                code = "" if letter.code is None else str(letter.code)
                args += [parsed[0], letter.reason, code, letter.message, letter.request_id]
        if args:
            await self._run(self._dead_letter, repr(self._clock()), *args)

    async def expire(self, group: str, enqueued_before: float, limit: int, message: str) -> int:
        """One script: unread entries join their sets (at most ``MAX_READ_PER_LEASE``, as a
        lease's do), then a range of the group's enqueued set (``MAX_EXPIRE_SCAN`` members at
        most) is read and its items not leased moved; no other group's set is read."""
        if limit <= 0:
            return 0
        moved = await self._run(
            self._expire,
            repr(self._clock()),
            self._consumer,
            MAX_READ_PER_LEASE,
            group,
            repr(enqueued_before),
            limit,
            max(limit, MAX_EXPIRE_SCAN),
            message,
        )
        return int(moved)

    async def stats(self) -> QueueStats:
        now = self._clock()
        depth, leased, first, dead = await self._run(self._stats, repr(now))
        oldest = float(first) if first else now
        return QueueStats(depth=depth, leased=leased, oldest_age=max(now - oldest, 0.0), dead=dead)

    async def stored_bytes(self) -> int | None:
        """Not measured (module docstring: the Redis queue is capped by items)."""
        return None

    async def probe_write(self) -> None:
        async with _reachable():
            await self._probe(keys=[self._probe_key], args=[b"1" * 1024])

    async def groups(self) -> set[str]:
        async with _reachable():
            members: set[Any] = await self._client.smembers(self._keys[1])
        return {_text(member) for member in members}

    async def dead_letters(self, limit: int = 100) -> list[DeadRecord]:
        if limit <= 0:
            return []
        async with _reachable():
            members: list[Any] = await self._client.zrevrange(self._dead, 0, limit - 1)
            async with self._client.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.hgetall(f"{self._dead}:{int(member)}")
                records = await pipe.execute()
        return [
            DeadRecord(
                id=str(int(member)),
                group=_text(record[b"group"]),
                payload=bytes(record[b"payload"]),
                attempts=int(record[b"attempts"]),
                enqueued_at=float(record[b"enqueued_at"]),
                dead_at=float(record[b"dead_at"]),
                reason=_text(record[b"reason"]),
                code=int(record[b"code"]) if record[b"code"] else None,
                message=_text(record[b"message"]),
                request_id=_text(record[b"request_id"]),
            )
            for member, record in zip(members, records, strict=True)
            if record  # purged between the two reads
        ]

    async def replay(self, ids: Sequence[str] | None = None) -> int:
        now = repr(self._clock())
        if ids is None:
            return int(await self._run(self._replay, now, 1))
        numbers = sorted({n for n in map(parse_dead_id, ids) if n is not None})
        return int(await self._run(self._replay, now, 0, *numbers)) if numbers else 0

    async def purge(self) -> int:
        return int(await self._run(self._purge))

    async def close(self) -> None:
        """Send pending puts, then close the connections."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        await self._client.aclose()
