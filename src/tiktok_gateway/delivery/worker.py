"""The delivery worker: lease -> batch -> send -> ack / retry / isolate / dead-letter / pause.

Contract with the queue (``queue/base.py``): every item the worker leases is finished exactly
once, by ``ack`` (TikTok has it), ``nack`` (retry later), ``dead_letter`` (permanent, with
TikTok's code and message) or ``release`` (not tried: a paused tag, or shutdown). An item whose
finishing call was interrupted by a crash comes back when its lease expires.

What to do with an answer is decided by ``tags/tiktok/classify.py`` alone; the worker only acts
on the outcome (Delivered, Retry, Reject, Pause, Split). A rejected batch is narrowed down to
the bad events (by TikTok's ``Batch.<i>`` index, else by bisection) so the good ones still go
out. A tag whose token or permission is wrong is paused: its events stay queued, untouched,
and one batch probes TikTok every ``policy.probe_interval`` seconds until one is delivered.

A tag whose request failed for TikTok's or the network's sake (throttled, 5xx, timeout, no
connection: ``Retry.holds_tag``) backs off as a whole: besides each event's own retry delay, none
of its events is leased until the tag's back-off delay has passed (exponential with full jitter
by consecutive failures, at most ``policy.probe_interval``, never under Retry-After), then one
batch probes; the first answer that is not such a failure ends the back-off. So an outage costs
one request per back-off interval, not one per batch and retry, and new events wait in the queue
instead of failing one by one. A batch whose delivery fails inside the worker (a bug, a failing
queue) is released and backs its tag off the same way, rather than being leased again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import httpx

from tiktok_gateway.delivery.backoff import BackoffPolicy
from tiktok_gateway.delivery.batcher import MAX_BYTES, Batch, Batcher
from tiktok_gateway.delivery.envelope import RawEnvelope, group_of, split_group
from tiktok_gateway.delivery.ledger import DeliveryResult, Ledger
from tiktok_gateway.queue.base import Clock, LeasedItem, Queue, wall_clock
from tiktok_gateway.tags.tiktok.classify import Delivered, Outcome, Pause, Reject, Retry, Split
from tiktok_gateway.tags.tiktok.client import post_batch
from tiktok_gateway.tags.tiktok.payload import MAX_BATCH_EVENTS
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings

__all__ = ["DEFAULT_POLICY", "BackoffState", "DeliveryResult", "DeliveryWorker", "PauseState"]

log = logging.getLogger(__name__)

DEFAULT_POLICY = BackoffPolicy()


@dataclass(frozen=True, slots=True)
class PauseState:
    """Why a tag is paused, since when, and when the next probe may go out (clock times)."""

    reason: str
    code: int | None
    message: str
    since: float
    probe_at: float


@dataclass(frozen=True, slots=True)
class BackoffState:
    """A tag backing off: why, how many requests failed in a row (a probe counts from when it
    goes out), since when, and when the next probe may go out (clock times)."""

    reason: str
    failures: int
    since: float
    retry_at: float


class DeliveryWorker:
    """Delivers the queue's events to TikTok. Use from one event loop: ``run()`` in a task and
    ``stop()`` at shutdown, or ``drain()`` in tests. ``tags`` maps tag names to settings."""

    def __init__(
        self,
        queue: Queue,
        tags: Mapping[str, TikTokTagSettings],
        client: httpx.AsyncClient,
        *,
        clock: Clock = wall_clock,
        rng: random.Random | None = None,
        max_wait: float = 1.0,
        max_in_flight: int = 4,
        lease_seconds: float = 60.0,
        lease_limit: int = 1000,
        policy: BackoffPolicy = DEFAULT_POLICY,
        request_timeout: float = 10.0,
        poll_interval: float = 0.1,
        max_events: int = MAX_BATCH_EVENTS,
        max_bytes: int = MAX_BYTES,
        on_result: Callable[[DeliveryResult], None] | None = None,
    ) -> None:
        self._queue, self._tags, self._client = queue, tags, client
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._batcher = Batcher(max_events, max_bytes, max_wait, clock)
        self._max_in_flight = max(max_in_flight, 1)
        self._lease_seconds, self._lease_limit = lease_seconds, lease_limit
        self._policy, self._request_timeout = policy, request_timeout
        self._poll_interval = poll_interval
        self._ledger = Ledger(queue, on_result)  # what we hold, and how each item ended
        self.paused: dict[str, PauseState] = {}
        self.backing_off: dict[str, BackoffState] = {}
        # Queue groups seen per tag: a paused tag's groups are left out of leases.
        self._groups = {
            name: {group_of(name, None), group_of(name, s.test_event_code or None)}
            for name, s in tags.items()
        }
        self._outbox: deque[Batch] = deque()  # ready batches waiting for a free request slot
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop_done = asyncio.Event()
        self._loop_done.set()
        self._stopping = False

    @property
    def in_flight(self) -> int:
        """Batches being sent now (each may take several requests when split or bisected)."""
        return len(self._tasks)

    async def run(self) -> None:
        """Deliver until ``stop()``: lease, batch, send (at most ``max_in_flight`` at once),
        then sleep until the next batch is due, a send ends, or ``poll_interval`` passes."""
        self._stopping = False
        self._loop_done.clear()
        try:
            while not self._stopping:
                try:
                    _, backlog = await self._step(force=False)
                except Exception:  # the queue failed (disk full, Redis gone): retry, do not die
                    log.exception("delivery step failed; trying again")
                    backlog = False
                if not backlog:
                    await self._idle()
                await asyncio.sleep(0)  # a backlog must not starve the sends
        finally:
            self._loop_done.set()

    async def drain(self) -> None:
        """Send everything available now, at once, and wait until it is finished (tests).

        Never sleeps: events nacked with a delay, and paused or backing-off tags, stay in the
        queue until the clock passes their time and ``drain()`` is called again."""
        while True:
            leased, _ = await self._step(force=True)
            if self._tasks:
                await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
            elif not leased and not self._outbox:
                return

    async def stop(self, deadline: float = 10.0) -> None:
        """Shut down within ``deadline`` seconds (DESIGN habit 12); returns when done."""
        loop = asyncio.get_running_loop()
        until = loop.time() + deadline
        # 1. Stop leasing: the run loop ends its current step and exits.
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._loop_done.wait(), max(until - loop.time(), 0.0))
        # 2. Flush partial batches: every event in the batcher is sent now.
        self._outbox.extend(self._batcher.ready(force=True))
        # 3. Send them and wait for in-flight sends, up to the deadline.
        while (self._outbox or self._tasks) and loop.time() < until:
            self._launch()
            await asyncio.wait(
                set(self._tasks), timeout=until - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
        # 4. Past the deadline: cancel what is still sending (TikTok may or may not have it).
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._outbox.clear()
        # 5. Release, never ack, whatever is still leased: it is delivered after the restart.
        await self._ledger.release_all()

    # -- leasing and batching ---------------------------------------------------------------

    async def _step(self, force: bool) -> tuple[int, bool]:
        """Start what waits for a free request slot, lease ahead when nothing waits, batch,
        start ready batches.

        Leasing ahead: the next lease is taken and batched while every slot is busy, so a slot
        that frees starts its batch at once instead of waiting for a lease (and its commit).
        Only when nothing waits in the outbox: one lease ahead at most, since the leases of a
        waiting batch run down while it waits.

        Returns how many items were leased and whether the lease was full (more may wait)."""
        self._wake.clear()
        self._launch()
        leased, room = 0, self._lease_limit - self._batcher.pending
        if not self._stopping and not self._outbox and room > 0 and not self._all_held():
            items = await self._queue.lease(room, self._lease_seconds, self._excluded())
            leased = len(items)
            await self._accept(items)
        self._outbox.extend(self._batcher.ready(force))
        self._launch()
        return leased, room > 0 and leased == room

    async def _idle(self) -> None:
        if self._stopping:
            return
        timeout = self._poll_interval
        deadline = self._batcher.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(deadline - self._clock(), 0.0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _excluded(self) -> list[str]:
        now = self._clock()
        held = [tag for tag in {*self.paused, *self.backing_off} if self._held(tag, now)]
        return [group for tag in held for group in self._groups.get(tag, ())]

    def _all_held(self) -> bool:
        """Whether every configured tag is paused or backing off: nothing may be leased now.

        Then the worker does not ask the queue at all: a lease that excludes groups still reads
        past their available items, every poll (an outage's whole backlog, ten times a second).
        """
        now = self._clock()
        return all(self._held(tag, now) for tag in self._tags)

    def _held(self, tag: str, now: float) -> bool:
        """Whether ``tag``'s events must not be sent now: paused, or backing off, and its next
        probe not due yet."""
        paused, backoff = self.paused.get(tag), self.backing_off.get(tag)
        return (paused is not None and now < paused.probe_at) or (
            backoff is not None and now < backoff.retry_at
        )

    def _take_probe(self, tag: str, now: float) -> None:
        """The batch about to go out for a paused or backing-off ``tag`` is its probe: the next
        one waits another interval, set now, so that a probe that fails, or ends without an
        answer, leaves the tag waiting (as a batch leased before the hold found it)."""
        paused = self.paused.get(tag)
        if paused is not None:
            self.paused[tag] = replace(paused, probe_at=now + self._policy.probe_interval)
        backoff = self.backing_off.get(tag)
        if backoff is not None:
            failures = backoff.failures + 1
            delay = self._policy.probe_delay(failures, self._rng.random)
            self.backing_off[tag] = replace(backoff, failures=failures, retry_at=now + delay)

    async def _accept(self, items: Sequence[LeasedItem]) -> None:
        now = self._clock()
        held_back: list[str] = []
        for item in items:
            self._groups.setdefault(split_group(item.group)[0], set()).add(item.group)
            try:
                envelope = RawEnvelope.from_bytes(item.payload)
            except (ValueError, KeyError, TypeError) as error:
                reason = f"{type(error).__name__}: {error}"
                await self._ledger.dead_letter_item(item, "invalid_payload", reason)
                continue
            if envelope.tag not in self._tags:
                await self._ledger.dead_letter_item(
                    item, "unknown_tag", f"tag {envelope.tag!r} is not configured"
                )
                continue
            state = self.paused.get(envelope.tag)
            if state is not None and now < state.probe_at:
                held_back.append(item.id)  # leased before the pause, or a group not seen yet
                continue
            self._ledger.hold(item)
            self._batcher.add(item, envelope)
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
            if batch.tag not in self._tags:  # removed from the configuration since the lease
                gone = Reject(None, f"tag {batch.tag!r} is not configured", scope="batch")
                await self._ledger.dead_letter(batch, "unknown_tag", gone, None)
                return
            now = self._clock()
            if self._held(batch.tag, now):  # leased before the hold began, or a probe is out
                await self._ledger.release(batch.ids)
                return
            self._take_probe(batch.tag, now)
            work = [batch]
            stop = False
            while work:
                part = work.pop()
                if stop:  # the answer paused the tag or backs it off: the rest waits queued
                    await self._ledger.release(part.ids)
                    continue
                outcome, latency = await self._post(part)
                work.extend(reversed(await self._act(part, outcome, latency)))
                stop = isinstance(outcome, Pause) or (
                    isinstance(outcome, Retry) and outcome.holds_tag
                )
        except Exception as error:
            log.exception(
                "delivery of a batch of tag %s failed; its events are released", batch.tag
            )
            with contextlib.suppress(Exception):
                await self._ledger.release(batch.ids)
            # A bug or a failing queue: sending the released events again at once would fail
            # again, in a loop as fast as the worker can lease. The tag waits its back-off.
            self._back_off(batch.tag, Retry(None, "delivery_error", None, type(error).__name__))

    async def _post(self, batch: Batch) -> tuple[Outcome, float]:
        settings = self._tags[batch.tag]
        token = settings.access_token.get_secret_value() if settings.access_token else None
        started = time.perf_counter()
        reply = await post_batch(
            self._client, settings.api_url, token, batch.body(), self._request_timeout
        )
        return reply.classify(self._clock()), time.perf_counter() - started

    async def _act(self, batch: Batch, outcome: Outcome, latency: float) -> list[Batch]:
        """Finish the batch's items as ``outcome`` says; returns sub-batches to send next."""
        if isinstance(outcome, Retry) and outcome.holds_tag:
            self._back_off(batch.tag, outcome)
        elif self.backing_off.pop(batch.tag, None) is not None:  # TikTok answered
            log.warning("tag %s: TikTok answers again; back-off ended", batch.tag)
        if isinstance(outcome, Delivered):
            await self._ledger.ack(batch, outcome, latency)
            if self.paused.pop(batch.tag, None) is not None:
                log.warning("tag %s delivers again; pause lifted", batch.tag)
        elif isinstance(outcome, Retry):
            await self._retry(batch, outcome, latency)
        elif isinstance(outcome, Pause):
            now = self._clock()
            state = self.paused.get(batch.tag)
            since = state.since if state is not None else now
            probe_at = now + self._policy.probe_interval
            self.paused[batch.tag] = PauseState(
                outcome.reason, outcome.code, outcome.message, since, probe_at
            )
            if state is None:
                log.warning("tag %s paused: %s (%s)", batch.tag, outcome.reason, outcome.message)
            await self._ledger.release(batch.ids)
            self._ledger.report(batch, "paused", outcome, latency)
        elif len(batch) == 1 or (isinstance(outcome, Reject) and outcome.scope == "batch"):
            await self._ledger.dead_letter(batch, "rejected", outcome, latency)
        elif isinstance(outcome, Split):
            self._ledger.report(batch, "split", outcome, latency)
            return list(batch.halves())
        elif outcome.index is not None and 0 <= outcome.index < len(batch):
            index = outcome.index
            await self._ledger.dead_letter(batch.subset([index]), "rejected", outcome, latency)
            return [batch.subset([i for i in range(len(batch)) if i != index])]
        else:
            # TikTok did not say which event: send each half on its own until it is found.
            self._ledger.report(batch, "bisect", outcome, latency)
            return list(batch.halves())
        return []

    def _back_off(self, tag: str, outcome: Retry) -> None:
        """Hold ``tag`` back after a failed request. When it already backs off (its probe
        failed: the next wait was set when the probe went out; or a request sent before the
        back-off began), the wait stands, lengthened to Retry-After if TikTok asks for more."""
        now = self._clock()
        state = self.backing_off.get(tag)
        if state is None:
            delay = self._policy.probe_delay(1, self._rng.random, outcome.after)
            self.backing_off[tag] = BackoffState(outcome.reason, 1, now, now + delay)
            log.warning(
                "tag %s backs off: %s (%s); one probe in %.1f s",
                tag,
                outcome.reason,
                outcome.message,
                delay,
            )
            return
        retry_at = state.retry_at if outcome.after is None else now + outcome.after
        self.backing_off[tag] = replace(
            state, reason=outcome.reason, retry_at=max(state.retry_at, retry_at)
        )

    async def _retry(self, batch: Batch, outcome: Retry, latency: float) -> None:
        now = self._clock()
        expired: list[int] = []
        exhausted: list[int] = []
        by_attempts: dict[int, list[int]] = {}
        for i, item in enumerate(batch.items):
            if now - item.enqueued_at >= self._policy.expiry:
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
        for kind, indexes in (("expired", expired), ("retries_exhausted", exhausted)):
            if indexes:
                await self._ledger.dead_letter(batch.subset(indexes), kind, outcome, sent)
                sent = None
