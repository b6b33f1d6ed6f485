"""The delivery worker: one lane per destination (``lane.py``), run side by side.

Each lane leases only its own destination's queue group, with its own request slots, batcher
and hold (pause, back-off), so the destinations are independent: a TikTok outage never delays a
GA4 forward, and one TikTok tag's backlog never another tag's events. The worker owns what the
lanes share: the queue, the HTTP client, the ledger of held items (``ledger.py``) and the
shutdown order.

While the queue cannot be reached, every lane (and the sweep) waits as one ``QueueHealth`` says
(``health.py``): exponential back-off with jitter, capped at a few seconds, one warning line when
it starts and one info line when it ends.

Items whose group names no configured destination (a tag removed from the configuration while
its events were queued) are swept into the dead letters as ``unknown_destination`` (replayable
once the destination is back) when the worker starts and every ``sweep_interval`` seconds.

Shutdown (DESIGN habit 12): 1. every lane stops leasing; 2. partial batches are flushed; 3. they
are sent and in-flight requests awaited, up to the deadline; 4. what is still sending is
cancelled; 5. whatever is still leased is released, never acked: it is delivered after restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping

import httpx

from tiktok_gateway.delivery.backoff import BackoffPolicy
from tiktok_gateway.delivery.destination import Destination, kinds_of
from tiktok_gateway.delivery.health import QueueHealth
from tiktok_gateway.delivery.holds import BackoffState, PauseState
from tiktok_gateway.delivery.lane import Lane
from tiktok_gateway.delivery.ledger import DeliveryResult, Ledger
from tiktok_gateway.queue.base import Clock, Queue, QueueUnavailable, wall_clock

__all__ = ["DEFAULT_POLICY", "DeliveryResult", "DeliveryWorker"]

log = logging.getLogger(__name__)

DEFAULT_POLICY = BackoffPolicy()
SWEEP_LIMIT = 100


class DeliveryWorker:
    """Delivers the queue's items to their destinations. Use from one event loop: ``run()`` in
    a task and ``stop()`` at shutdown, or ``drain()`` in tests. ``destinations`` maps names to
    destinations (``delivery/destination.py``)."""

    def __init__(
        self,
        queue: Queue,
        destinations: Mapping[str, Destination],
        client: httpx.AsyncClient,
        *,
        clock: Clock = wall_clock,
        rng: random.Random | None = None,
        max_wait: float = 1.0,
        lease_seconds: float = 60.0,
        lease_limit: int = 1000,
        policy: BackoffPolicy = DEFAULT_POLICY,
        poll_interval: float = 0.1,
        sweep_interval: float = 600.0,
        on_result: Callable[[DeliveryResult], None] | None = None,
        health: QueueHealth | None = None,
    ) -> None:
        self._queue = queue
        self._lease_seconds = lease_seconds
        self._sweep_interval = sweep_interval
        rng = rng if rng is not None else random.Random()
        self.health = health if health is not None else QueueHealth(rng=rng.random)
        kinds = kinds_of(destinations)
        # What we hold, and how each item ended.
        self._ledger = Ledger(queue, on_result, kinds, self.health)
        self.lanes = {
            name: Lane(
                destination,
                queue,
                client,
                self._ledger,
                clock=clock,
                rng=rng,
                policy=policy,
                max_wait=max_wait,
                lease_seconds=lease_seconds,
                lease_limit=lease_limit,
                poll_interval=poll_interval,
                health=self.health,
            )
            for name, destination in destinations.items()
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()

    @property
    def in_flight(self) -> int:
        """Batches being sent now, over every destination."""
        return sum(lane.in_flight for lane in self.lanes.values())

    @property
    def paused(self) -> dict[str, PauseState]:
        """The paused destinations and why (their configuration: token, permission, URL)."""
        return {name: lane.hold.pause for name, lane in self.lanes.items() if lane.hold.pause}

    @property
    def backing_off(self) -> dict[str, BackoffState]:
        """The destinations backing off while they (or the network) fail their requests."""
        return {name: lane.hold.backoff for name, lane in self.lanes.items() if lane.hold.backoff}

    async def run(self) -> None:
        """Deliver until ``stop()``: every lane in a task of its own, plus the sweep."""
        self._stopped.clear()
        self._tasks = [
            asyncio.create_task(lane.run(), name=f"delivery:{name}")
            for name, lane in self.lanes.items()
        ]
        try:
            while not self._stopped.is_set():
                interval = self._sweep_interval
                try:
                    await self.sweep()
                except QueueUnavailable as error:  # try again soon; the lanes wait meanwhile
                    interval = min(interval, self.health.failed(error))
                except Exception:  # a bug: shown; the lanes go on
                    log.exception("the sweep of unconfigured destinations failed")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._stopped.wait()
        finally:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Send everything available now and wait until it is finished (tests); never sleeps."""
        await self.sweep()
        await asyncio.gather(*(lane.drain() for lane in self.lanes.values()))

    async def sweep(self) -> int:
        """Dead-letter the available items of groups no destination is configured for;
        returns how many. Finding them costs one look at the queue's groups, not a read of its
        items, however many are queued."""
        unknown = await self._queue.groups() - set(self.lanes)
        swept = 0
        while unknown:
            items = await self._queue.lease(SWEEP_LIMIT, self._lease_seconds, only_groups=unknown)
            for item in items:
                why = f"destination {item.group!r} is not configured"
                await self._ledger.dead_letter_item(item, "unknown_destination", why)
            swept += len(items)
            if len(items) < SWEEP_LIMIT:
                break
        return swept

    async def stop(self, deadline: float = 10.0) -> None:
        """Shut down within ``deadline`` seconds (module docstring); returns when done."""
        loop = asyncio.get_running_loop()
        until = loop.time() + deadline
        # 1. Stop leasing: each lane ends its current step and its loop exits.
        for lane in self.lanes.values():
            lane.stop_leasing()
        self._stopped.set()
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(until):
                    await asyncio.gather(*self._tasks, return_exceptions=True)
        # 2.-4. Flush, send and wait up to the deadline, cancel the rest: all lanes at once.
        await asyncio.gather(*(lane.finish(until) for lane in self.lanes.values()))
        # 5. Release, never ack, whatever is still leased: it is delivered after the restart.
        await self._ledger.release_all()
