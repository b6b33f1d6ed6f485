"""The delivery worker while its queue cannot be reached (issue 14): it waits, backing off with
jitter, logs one line when the outage starts and one when it ends, counts the failed attempts,
and keeps what it learned (a delivery whose ack failed is acked later, not sent again)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import httpx
import pytest

from tests.delivery.test_worker import TikTok, destinations
from tests.fakes import FakeClock
from tests.harness import HIT, running
from tiktok_gateway.delivery.health import QueueHealth
from tiktok_gateway.delivery.worker import DeliveryResult, DeliveryWorker
from tiktok_gateway.queue import sqlite as sqlite_module
from tiktok_gateway.queue.base import DeadLetter, LeasedItem, NewItem, Queue, QueueUnavailable
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.queue.sqlite import SQLiteQueue
from tiktok_gateway.tags.tiktok.envelope import Envelope

OUTAGE = 1.0  # seconds of real time


class FailingQueue(MemoryQueue):
    """The memory queue, whose delivery calls fail while ``down`` (a real-time window), and
    which counts them."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.until = 0.0
        self.failed_ops: tuple[str, ...] = ("lease", "ack", "nack", "release", "dead_letter")
        self.calls: dict[str, int] = {}
        self.refused = 0

    def down(self, seconds: float, ops: Sequence[str] | None = None) -> None:
        self.until = time.monotonic() + seconds
        if ops is not None:
            self.failed_ops = tuple(ops)

    def _check(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        if op in self.failed_ops and time.monotonic() < self.until:
            self.refused += 1
            raise QueueUnavailable("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    async def lease(
        self,
        limit: int,
        lease_seconds: float,
        exclude_groups: Collection[str] = (),
        only_groups: Collection[str] | None = None,
    ) -> list[LeasedItem]:
        self._check("lease")
        return await super().lease(limit, lease_seconds, exclude_groups, only_groups)

    async def ack(self, ids: Sequence[str]) -> None:
        self._check("ack")
        await super().ack(ids)

    async def nack(self, ids: Sequence[str], delay: float) -> None:
        self._check("nack")
        await super().nack(ids, delay)

    async def release(self, ids: Sequence[str]) -> None:
        self._check("release")
        await super().release(ids)

    async def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        self._check("dead_letter")
        await super().dead_letter(letters)


async def put(queue: Queue, count: int, first: int = 0) -> None:
    envelopes = [
        Envelope("shop", "PIXEL1", None, {"event": "ViewContent", "event_id": f"e{n}"})
        for n in range(first, first + count)
    ]
    await queue.put([NewItem(e.group, e.to_bytes()) for e in envelopes])


async def delivered(tiktok: TikTok, wanted: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(len(body["data"]) for body in tiktok.bodies) < wanted:
        assert time.monotonic() < deadline, f"only {len(tiktok.bodies)} requests"
        await asyncio.sleep(0.02)


def test_a_worker_waits_out_an_unreachable_queue_and_says_so_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tiktok_gateway")
    tiktok = TikTok()
    results: list[DeliveryResult] = []

    async def main() -> tuple[FailingQueue, QueueHealth, float]:
        clock = FakeClock()
        queue = FailingQueue(clock)
        async with httpx.AsyncClient(transport=httpx.MockTransport(tiktok.handle)) as client:
            worker = DeliveryWorker(
                queue, destinations(), client, clock=clock, max_wait=0.0, on_result=results.append
            )
            queue.down(OUTAGE)
            started = time.process_time()
            task = asyncio.create_task(worker.run())
            await put(queue, 3)
            await asyncio.sleep(OUTAGE)
            cpu = time.process_time() - started
            await delivered(tiktok, 3)
            await worker.stop()
            task.cancel()
        return queue, worker.health, cpu

    queue, health, cpu = asyncio.run(main())
    # Two lanes (shop, free) and the sweep shared one back-off: a handful of attempts per
    # second of outage (from 50 ms doubling, with jitter), not one per poll.
    assert 2 <= health.failures <= 20, health.failures
    assert queue.refused == health.failures  # every refused call was counted, once
    assert cpu < 0.5 * OUTAGE  # waiting, not spinning
    lines = [r for r in caplog.records if r.name.startswith("tiktok_gateway.delivery")]
    warnings = [r.getMessage() for r in lines if r.levelno >= logging.WARNING]
    assert warnings == [
        "the queue cannot be reached (QueueUnavailable: Error 111 connecting to 127.0.0.1:6390."
        " Connection refused.); delivery waits and tries again"
    ]
    recovered = [r.getMessage() for r in lines if r.levelno == logging.INFO]
    assert len(recovered) == 1
    assert recovered[0].startswith("the queue answers again after ")
    assert (
        f"({health.failures} failed attempts)" in recovered[0] or "failed attempts" in recovered[0]
    )
    assert not any(r.exc_info for r in caplog.records)  # no traceback
    assert not health.failing
    assert [r.outcome_kind for r in results] == ["delivered"]


def test_an_ack_that_fails_is_made_later_and_the_events_are_not_sent_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tiktok_gateway")
    tiktok = TikTok()

    async def main() -> FailingQueue:
        clock = FakeClock()
        queue = FailingQueue(clock)
        async with httpx.AsyncClient(transport=httpx.MockTransport(tiktok.handle)) as client:
            worker = DeliveryWorker(queue, destinations(), client, clock=clock, max_wait=0.0)
            await put(queue, 2)
            queue.down(0.5, ops=["ack"])  # leases work; the ack after TikTok's answer fails
            task = asyncio.create_task(worker.run())
            await delivered(tiktok, 2)
            assert (await queue.stats()).depth == 2  # delivered, not acked yet
            await asyncio.sleep(0.8)
            clock.advance(3600)  # far past the leases: only a kept ack keeps them from TikTok
            await asyncio.sleep(0.3)
            await worker.stop()
            task.cancel()
        return queue

    queue = asyncio.run(main())
    assert asyncio.run(queue.stats()).depth == 0
    assert len(tiktok.bodies) == 1  # sent once: the ack was made when the queue came back
    assert not any(r.exc_info for r in caplog.records)


def test_a_locked_sqlite_queue_is_unavailable_and_waited_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds the SQLite file's write lock: the lease fails as QueueUnavailable
    (not a raw sqlite3 error), the worker says so once, waits, and delivers once it is free."""
    caplog.set_level(logging.INFO, logger="tiktok_gateway")
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_SECONDS", 0.1)
    tiktok = TikTok()
    path = tmp_path / "queue.db"

    async def main() -> QueueHealth:
        clock = FakeClock()
        queue = await SQLiteQueue.open(path, clock=clock)
        await put(queue, 2)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # the lock, held by "another process"
        try:
            with pytest.raises(QueueUnavailable, match="database is locked"):
                await queue.lease(1, 30)
            async with httpx.AsyncClient(transport=httpx.MockTransport(tiktok.handle)) as client:
                worker = DeliveryWorker(queue, destinations(), client, clock=clock, max_wait=0.0)
                task = asyncio.create_task(worker.run())
                await asyncio.sleep(0.6)
                assert tiktok.bodies == []
                other.execute("ROLLBACK")
                await delivered(tiktok, 2)
                await worker.stop()
                task.cancel()
        finally:
            other.close()
            await queue.close()
        return worker.health

    health = asyncio.run(main())
    assert health.failures >= 1
    assert not health.failing
    records = [r for r in caplog.records if r.name == "tiktok_gateway.delivery.health"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.INFO]
    assert "SQLite: database is locked" in records[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


def test_a_hit_is_refused_with_503_while_the_sqlite_queue_is_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_SECONDS", 0.1)
    path = tmp_path / "queue.db"

    async def main() -> tuple[int, dict[str, object], int]:
        queue = await SQLiteQueue.open(path)
        async with running(queue=queue) as gw:
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN EXCLUSIVE")
            try:
                refused = await gw.client.get(f"/g/collect?{HIT}")
            finally:
                other.close()
            # Refused until a write goes through again: /readyz probes one.
            for _ in range(50):
                if (await gw.admin.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            accepted = await gw.client.get(f"/g/collect?{HIT}")
        return refused.status_code, refused.json(), accepted.status_code

    status, body, after = asyncio.run(main())
    assert (status, body["error"], after) == (503, "queue_unavailable", 204)
