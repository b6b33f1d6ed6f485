"""End-to-end delivery contract (DESIGN habit 10): /g/collect -> queue -> worker -> sandbox,
for both destinations: TikTok events and GA4 forwards.

The sandbox fails at random on both sides (TikTok: 5xx, 50000, 40100 throttling; Google: 5xx,
429), the transport times out at random (before or after the sandbox saw the request), and a few
items are invalid (TikTok events with a bad field, forwards Google answers 404). Every event id
and every forward must end delivered (at least once) or dead-lettered with the destination's
reason; none may vanish. The worker is driven with ``drain()`` and a fake clock, never with
sleeps. It runs on both durable queues: SQLite and Redis Streams (the real server on loopback).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import redis_server
from tests.fakes import FakeClock
from tests.harness import GA4_SANDBOX, config_of, running
from tiktok_gateway.delivery.backoff import BackoffPolicy
from tiktok_gateway.delivery.destination import Destination
from tiktok_gateway.delivery.worker import DeliveryWorker
from tiktok_gateway.queue.base import NewItem, Queue
from tiktok_gateway.queue.redis_streams import RedisStreamsQueue
from tiktok_gateway.queue.sqlite import SQLiteQueue
from tiktok_gateway.runtime import SANDBOX_ORIGIN
from tiktok_gateway.sandbox.app import create_sandbox_app, sandbox_of
from tiktok_gateway.sandbox.faults import FaultSettings
from tiktok_gateway.tags.ga4.destination import GA4Destination, ga4_limits
from tiktok_gateway.tags.ga4.forward import Forward
from tiktok_gateway.tags.ga4.payload import QueuedForward
from tiktok_gateway.tags.tiktok.destination import TikTokDestination, tiktok_limits
from tiktok_gateway.tags.tiktok.envelope import Envelope

N = 400
BAD = 4


class FlakyTransport(httpx.AsyncBaseTransport):
    """Times out a share of requests: half before TikTok sees them, half after it answered."""

    def __init__(self, inner: httpx.AsyncBaseTransport, rng: random.Random, rate: float) -> None:
        self.inner, self.rng, self.rate = inner, rng, rate
        self.timeouts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        fate = self.rng.random()
        if fate < self.rate / 2:
            self.timeouts += 1
            raise httpx.ConnectTimeout("injected", request=request)
        response = await self.inner.handle_async_request(request)
        if fate < self.rate:
            self.timeouts += 1
            await response.aclose()
            raise httpx.ReadTimeout("injected after delivery", request=request)
        return response


async def open_backend(name: str, tmp_path: Path, clock: FakeClock, prefix: str) -> Queue:
    if name == "redis":
        return await RedisStreamsQueue.open(redis_server.URL, clock=clock, prefix=prefix)
    return await SQLiteQueue.open(tmp_path / "queue.db", clock=clock)


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """The durable queue to run on, and a key prefix of its own for Redis (deleted after)."""
    prefix = redis_server.new_prefix()
    if request.param == "redis":
        redis_server.require()
    yield request.param, prefix
    if request.param == "redis":
        redis_server.delete_prefix(prefix)


def test_every_event_is_delivered_or_dead_lettered_with_a_reason(
    tmp_path: Path, backend: tuple[str, str]
) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        queue = await open_backend(backend[0], tmp_path, clock, backend[1])
        faults = FaultSettings(fail_rate=0.2, throttle_rate=0.1)
        sandbox = create_sandbox_app(faults=faults, ga4_faults=faults, seed=11, admin_prefix="")
        flaky = FlakyTransport(httpx.ASGITransport(app=sandbox), random.Random(5), rate=0.1)
        config = config_of({"GATEWAY_BATCH_MAX_WAIT_MS": "0", **GA4_SANDBOX})
        good = {f"ok-{index}" for index in range(N)}
        bad = {f"bad-{index}" for index in range(BAD)}
        async with running(config, queue=queue, clock=clock) as gateway:
            for index in range(N):
                hit = f"v=2&tid=G-1&cid=1.2&en=view_item&ep.event_id=ok-{index}&pr1=id{index}"
                assert (await gateway.client.get(f"/g/collect?{hit}")).status_code == 204
            # Items the destinations refuse (the gateway never makes them; a change at TikTok
            # or a stand-in answering 404 could).
            invalid = [
                Envelope(
                    "default",
                    "CTEST",
                    None,
                    {"event": "Pageview", "event_time": "x", "event_id": i},
                )
                for i in sorted(bad)
            ]
            await queue.put([NewItem(e.group, e.to_bytes()) for e in invalid])
            refused = [
                QueuedForward(i, "G-1", Forward("/g/nowhere", "v=2&tid=G-1", (), b"", False))
                for i in sorted(bad)
            ]
            await queue.put([NewItem("ga4", forward.to_bytes()) for forward in refused])
            async with httpx.AsyncClient(transport=flaky) as client:
                limits = tiktok_limits(max_in_flight=4, max_age=7 * 24 * 3600.0, timeout=10.0)
                small = dataclasses.replace(limits, max_events=50)
                destinations: dict[str, Destination] = {
                    tag.name: TikTokDestination(tag, SANDBOX_ORIGIN, small) for tag in config.tags
                }
                forwarding = ga4_limits(config.ga4, timeout=10.0)
                destinations["ga4"] = GA4Destination("ga4", config.ga4, SANDBOX_ORIGIN, forwarding)
                worker = DeliveryWorker(
                    queue,
                    destinations,
                    client,
                    clock=clock,
                    rng=random.Random(3),
                    policy=BackoffPolicy(base=1.0, cap=20.0),
                )
                for _ in range(100):
                    await worker.drain()
                    if (await queue.stats()).depth == 0:
                        break
                    clock.advance(21)
            stats = await queue.stats()
            records = await queue.dead_letters(1000)
            dead = {
                Envelope.from_bytes(r.payload).event["event_id"]: r
                for r in records
                if r.group == "default"
            }
            dead_forwards = {
                QueuedForward.from_bytes(r.payload).key: r for r in records if r.group == "ga4"
            }

        delivered = {stored.event["event_id"] for stored in sandbox_of(sandbox).store.events()}
        google = sandbox_of(sandbox).google.store
        forwarded = {
            value for hit in google.hits() for name, value in hit.params if name == "ep.event_id"
        }
        totals = sandbox_of(sandbox).store.totals()
        assert stats.depth == 0
        assert good <= delivered, f"lost: {sorted(good - delivered - dead.keys())[:10]}"
        assert set(dead) == bad
        for record in dead.values():
            assert record.reason == "rejected"
            assert record.code == 40002
            assert "event_time" in record.message
        assert good <= forwarded, f"not forwarded: {sorted(good - forwarded)[:10]}"
        assert set(dead_forwards) == bad
        for record in dead_forwards.values():
            assert (record.reason, record.message) == ("rejected", "HTTP 404")
        # The faults really happened: retries were needed and some requests timed out.
        assert totals.faulted_total > 0
        assert google.totals().faulted_total > 0
        assert flaky.timeouts > 0

    asyncio.run(scenario())
