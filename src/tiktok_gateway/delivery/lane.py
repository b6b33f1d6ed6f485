"""One destination's delivery: lease its items -> batch -> send -> ack / retry / isolate /
dead-letter / pause.

Each destination has a lane of its own (``worker.DeliveryWorker`` runs them side by side): it
leases only its own queue group, has its own request slots, batcher and hold, so a backlog,
outage, back-off or pause of one destination never delays another.

Contract with the queue (``queue/base.py``), kept through the ``Ledger``: every item the lane
leases is finished exactly once, by ``ack`` (delivered), ``nack`` (retry later),
``dead_letter`` (permanent, with the destination's code and message) or ``release`` (not tried:
a held destination, or shutdown). An item whose finishing call was interrupted by a crash comes
back when its lease expires.

What to do with an answer is decided by the destination's classifier alone; the lane acts on
the outcome (``delivery/outcome.py``). A rejected batch is narrowed down to the bad items (by the
index the destination names, else by bisection) so the good ones still go out. Pause and
back-off are ``holds.Hold``. A batch whose delivery fails inside the lane (a bug) is released
and backs the destination off the same way, rather than being leased again at once.

While the destination is held (paused, or backing off, and its next probe not due) no batch
goes out, so no failed batch expires its items: every ``EXPIRE_INTERVAL`` seconds the lane moves
its items older than ``Limits.max_age`` into the dead letters itself (``Queue.expire``, reason
``expired``, the hold's reason as the message), ``EXPIRE_LIMIT`` a call, calling again while a
call moves that many and the destination is still held (``EXPIRE_CALLS`` at most). A probe that
is due is leased first: the round waits until it has gone out, and stops when one falls due.

While the queue cannot be reached, the lane waits as ``health.QueueHealth`` says (shared by every
lane: exponential with jitter, a few seconds at most, two log lines per outage); finishing calls
that fail keep what was learned (``ledger.py``), and ``Ledger.settle`` makes them first thing once
the queue answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from typing import Final

import httpx

from tiktok_gateway.delivery.backoff import BackoffPolicy, compute_backoff
from tiktok_gateway.delivery.batcher import Batcher
from tiktok_gateway.delivery.destination import Batch, Destination
from tiktok_gateway.delivery.health import CAP_SECONDS, QueueHealth
from tiktok_gateway.delivery.holds import Hold
from tiktok_gateway.delivery.ledger import Ledger
from tiktok_gateway.delivery.outcome import Delivered, Outcome, Pause, Reject, Retry, Split
from tiktok_gateway.queue.base import EXPIRED, Clock, LeasedItem, Queue, QueueUnavailable

log = logging.getLogger(__name__)

# While held: how often the destination's old items are expired, how many one queue call moves
# (one SQLite transaction: a put waits behind at most that), and how many calls one round makes
# at most (while each moves a full EXPIRE_LIMIT). 400 x 250 = 100,000 items a minute: expiry
# keeps up with a destination that was sent up to about 1,600 events/s one max age ago.
EXPIRE_INTERVAL: Final = 60.0
EXPIRE_LIMIT: Final = 250
EXPIRE_CALLS: Final = 400


class Lane:
    """Delivers one destination's items. Driven by ``DeliveryWorker`` from one event loop."""

    def __init__(
        self,
        destination: Destination,
        queue: Queue,
        client: httpx.AsyncClient,
        ledger: Ledger,
        *,
        clock: Clock,
        rng: random.Random,
        policy: BackoffPolicy,
        max_wait: float,
        lease_seconds: float,
        lease_limit: int,
        poll_interval: float,
        health: QueueHealth,
    ) -> None:
        self.destination = destination
        self.name = destination.name
        self._queue, self._client, self._ledger = queue, client, ledger
        self._clock, self._rng, self._policy = clock, rng, policy
        self._limits = destination.limits
        self._batcher = Batcher(destination, max_wait, clock)
        self._lease_seconds, self._lease_limit = lease_seconds, lease_limit
        self._poll_interval = poll_interval
        self._max_in_flight = max(self._limits.max_in_flight, 1)
        self.hold = Hold(policy, rng.random, self._limits.hold_after)
        self._outbox: deque[Batch] = deque()  # ready batches waiting for a free request slot
        self._tasks: set[asyncio.Task[None]] = set()
        self._health = health
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopping = False
        self._next_expiry = 0.0  # clock time of the next expiry round while held

    @property
    def in_flight(self) -> int:
        """Batches being sent now (each may take several requests when split or bisected)."""
        return len(self._tasks)

    async def run(self) -> None:
        """Deliver until ``stop_leasing()``: lease, batch, send (``max_in_flight`` at once),
        then sleep until the next batch is due, a send ends, or ``poll_interval`` passes. While
        the queue cannot be reached, wait as ``health`` says; a bug in a step is logged with its
        traceback and waited out the same way (never retried in a hot loop)."""
        bugs = 0
        while not self._stopping:
            await self._health.wait(self._stop)
            if self._stopping:
                break
            try:
                await self._ledger.settle()
                _, backlog = await self.step(force=False)
            except QueueUnavailable as error:
                self._health.failed(error)
                continue
            except Exception:  # a bug: shown, and not retried at once
                log.exception("delivery step of %s failed; trying again", self.name)
                rng = self._rng.random
                await asyncio.sleep(compute_backoff(bugs, base=0.1, cap=CAP_SECONDS, rng=rng))
                bugs += 1
                continue
            bugs = 0
            self._health.succeeded()
            if not backlog:
                await self._idle()
            await asyncio.sleep(0)  # a backlog must not starve the sends

    async def drain(self) -> None:
        """Send everything available now, at once, and wait until it is finished (tests).

        Never sleeps: items nacked with a delay, and a held destination's items, stay in the
        queue until the clock passes their time and ``drain()`` is called again."""
        while True:
            leased, _ = await self.step(force=True)
            if self._tasks:
                await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
            elif not leased and not self._outbox:
                return

    def stop_leasing(self) -> None:
        """Step 1 of the shutdown: the run loop ends after its current step."""
        self._stopping = True
        self._wake.set()
        self._stop.set()

    async def finish(self, until: float) -> None:
        """Steps 2-4 of the shutdown: flush partial batches, send them and wait for in-flight
        sends until the event loop time ``until``, then cancel what is still sending (the
        destination may or may not have it; its items stay held, and are released)."""
        loop = asyncio.get_running_loop()
        self._outbox.extend(self._batcher.ready(force=True))
        while (self._outbox or self._tasks) and loop.time() < until:
            self._launch()
            await asyncio.wait(
                set(self._tasks), timeout=until - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._outbox.clear()

    # -- leasing and batching ---------------------------------------------------------------

    async def step(self, force: bool) -> tuple[int, bool]:
        """Start what waits for a free request slot, lease ahead when nothing waits, batch,
        start ready batches.

        Leasing ahead: the next lease is taken and batched while every slot is busy, so a slot
        that frees starts its batch at once instead of waiting for a lease (and its commit).
        Only when nothing waits in the outbox: one lease ahead at most, since the leases of a
        waiting batch run down while it waits. A held destination is not leased for at all.

        Returns how many items were leased and whether the lease was full (more may wait)."""
        self._wake.clear()
        self._launch()
        await self._expire_held(self._clock())
        leased, room = 0, self._lease_limit - self._batcher.pending
        if (
            not self._stopping
            and not self._outbox
            and room > 0
            and not self.hold.held(self._clock())
        ):
            items = await self._queue.lease(room, self._lease_seconds, only_groups=(self.name,))
            leased = len(items)
            await self._accept(items)
        self._outbox.extend(self._batcher.ready(force))
        self._launch()
        return leased, room > 0 and leased == room

    async def _expire_held(self, now: float) -> int:
        """While held (paused or backing off, next probe not due), at most every
        ``EXPIRE_INTERVAL`` seconds: move the items put more than ``Limits.max_age`` ago and not
        leased (a probe's are left to its answer) into the dead letters. Returns how many moved.

        Only while held, the simplest way to keep a due probe from waiting: a round is up to
        ``EXPIRE_CALLS`` queue calls (seconds), and the probe is the batch that may end the
        outage; run before its lease, a round would also take the very items it was to carry.
        A round stops when a probe falls due during it (or an answer lifts the hold); the rest
        waits for the next round, after the probe has gone out (``take_probe`` holds again)."""
        pause, backoff = self.hold.pause, self.hold.backoff
        if not self.hold.held(now) or now < self._next_expiry or self._stopping:
            return 0
        self._next_expiry = now + EXPIRE_INTERVAL
        if pause is not None:
            held = f"paused ({pause.reason}: {pause.message})" if pause.message else "paused"
        else:
            held = f"backing off ({backoff.reason})" if backoff is not None else "held"
        message = f"not sent while the destination was {held}"
        before = now - self._limits.max_age
        moved = 0
        try:
            for _ in range(EXPIRE_CALLS):
                count = await self._queue.expire(self.name, before, EXPIRE_LIMIT, message)
                moved += count
                if count < EXPIRE_LIMIT or self._stopping or not self.hold.held(self._clock()):
                    break
                await asyncio.sleep(0)  # the hits' puts and the other lanes go first
        finally:  # what moved is reported, even when a later call failed
            if moved:
                self._ledger.expired(self.name, moved, message)
        return moved

    async def _idle(self) -> None:
        if self._stopping:
            return
        timeout = self._poll_interval
        deadline = self._batcher.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(deadline - self._clock(), 0.0))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _accept(self, items: Sequence[LeasedItem]) -> None:
        now = self._clock()
        held_back: list[str] = []
        for item in items:
            try:
                unit = self.destination.unit(item.payload)
            except (ValueError, KeyError, TypeError) as error:
                reason = f"{type(error).__name__}: {error}"
                await self._ledger.dead_letter_item(item, "invalid_payload", reason)
                continue
            if self.hold.paused_until(now):
                held_back.append(item.id)  # leased just before the pause began
                continue
            self._ledger.hold(item)
            self._batcher.add(item, unit)
        await self._ledger.release(held_back)

    def _launch(self) -> None:
        while self._outbox and len(self._tasks) < self._max_in_flight:
            task = asyncio.create_task(self._deliver(self._outbox.popleft()))
            self._tasks.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    # -- sending and acting on outcomes -------------------------------------------------------

    async def _deliver(self, batch: Batch) -> None:
        """Send one batch and every sub-batch it turns into (split, bisection)."""
        try:
            now = self._clock()
            if self.hold.held(now):  # leased before the hold began, or a probe is out
                await self._ledger.release(batch.ids)
                return
            self.hold.take_probe(now)
            work = [batch]
            stop = False
            while work:
                part = work.pop()
                if stop:  # the answer paused the destination or backs it off: the rest waits
                    await self._ledger.release(part.ids)
                    continue
                started = time.perf_counter()
                outcome = await self.destination.send(self._client, part)
                latency = time.perf_counter() - started
                work.extend(reversed(await self._act(part, outcome, latency)))
                stop = self.hold.pause is not None or self.hold.backoff is not None
        except Exception as error:
            log.exception(
                "delivery of a batch of %s failed; its items are released", batch.destination
            )
            with contextlib.suppress(Exception):
                await self._ledger.release(batch.ids)
            # A bug or a failing queue: sending the released items again at once would fail
            # again, in a loop as fast as the lane can lease. The destination waits its back-off.
            self._back_off(Retry(None, "delivery_error", None, type(error).__name__))

    async def _act(self, batch: Batch, outcome: Outcome, latency: float) -> list[Batch]:
        """Finish the batch's items as ``outcome`` says; returns sub-batches to send next."""
        if isinstance(outcome, Retry) and outcome.holds:
            self._back_off(outcome)
        elif self.hold.answered():
            log.warning("destination %s answers again; back-off ended", self.name)
        match outcome:
            case Delivered():
                await self._ledger.ack(batch, outcome, latency)
                if self.hold.delivered():
                    log.warning("destination %s delivers again; pause lifted", self.name)
            case Retry():
                await self._retry(batch, outcome, latency)
            case Pause():
                if self.hold.pause_for(outcome, self._clock()):
                    log.warning(
                        "destination %s paused: %s (%s)", self.name, outcome.reason, outcome.message
                    )
                await self._ledger.release(batch.ids)
                self._ledger.report(batch, "paused", outcome, latency)
            case Reject(scope="batch"):
                await self._ledger.dead_letter(batch, "rejected", outcome, latency)
            case _ if len(batch) == 1:  # a Split or Reject of one item: it is the bad one
                await self._ledger.dead_letter(batch, "rejected", outcome, latency)
            case Split():
                self._ledger.report(batch, "split", outcome, latency)
                return list(batch.halves())
            case Reject(index=int(index)) if 0 <= index < len(batch):
                await self._ledger.dead_letter(batch.subset([index]), "rejected", outcome, latency)
                return [batch.subset([i for i in range(len(batch)) if i != index])]
            case _:
                # The destination did not say which item: send each half on its own until found.
                self._ledger.report(batch, "bisect", outcome, latency)
                return list(batch.halves())
        return []

    def _back_off(self, outcome: Retry) -> None:
        delay = self.hold.back_off(outcome, self._clock())
        if delay is not None:
            log.warning(
                "destination %s backs off: %s (%s); one probe in %.1f s",
                self.name,
                outcome.reason,
                outcome.message,
                delay,
            )

    async def _retry(self, batch: Batch, outcome: Retry, latency: float) -> None:
        now = self._clock()
        expired: list[int] = []
        exhausted: list[int] = []
        by_attempts: dict[int, list[int]] = {}
        for i, item in enumerate(batch.items):
            if now - item.enqueued_at >= self._limits.max_age:
                expired.append(i)
            elif outcome.max_attempts is not None and item.attempts + 1 >= outcome.max_attempts:
                exhausted.append(i)
            else:
                by_attempts.setdefault(item.attempts, []).append(i)
        sent: float | None = latency  # only the first result of a request carries its latency
        for attempts, indexes in sorted(by_attempts.items()):
            # Each item backs off by its own failure count; one nack per count.
            delay = self._policy.delay(attempts, self._rng.random, outcome.after)
            await self._ledger.nack(batch.subset(indexes), delay, outcome, sent)
            sent = None
        for kind, indexes in ((EXPIRED, expired), ("retries_exhausted", exhausted)):
            if indexes:
                await self._ledger.dead_letter(batch.subset(indexes), kind, outcome, sent)
                sent = None
