"""Whether the queue takes a hit now: its caps and the health of its storage (SPEC 13).

Every ingest request asks ``Admission.refusal()`` once its input is known to be valid, and puts
through ``Admission.put``. The question costs no I/O: a flag and two comparisons with numbers
kept here (bench/admission.py measures it); the answers are

* ``queue_unavailable`` while the storage refuses writes: a put raised ``QueueUnavailable`` (a
  full disk, a locked, read-only or unreadable SQLite file, Redis unreachable or refusing writes:
  out of memory, ``MISCONF``, a read-only replica). Hits are then refused without touching the
  storage, but for one every ``RECHECK_SECONDS`` whose put serves as a probe; ``run`` probes a
  write (``Queue.probe_write``) every ``interval`` seconds, as does ``/readyz`` (``recheck``),
  so it recovers with no traffic too; the first write that goes through ends it. One warning line
  when it starts, one info line with its duration when it ends, none per hit.
* ``queue_full`` while the queue holds ``max_items`` items or more (undelivered and dead letters:
  both take room until delivered or purged), or ``max_bytes`` bytes or more (``Queue.stored_bytes``:
  SQLite's pages in use; not measured for Redis, whose memory its own ``maxmemory`` bounds).
  The numbers are read from the queue every ``interval`` seconds, and every put this process
  commits adds its items and payload bytes meanwhile, so a burst cannot run past a cap by more
  than one hit; processes sharing a queue see each other's puts at the next read. It ends by
  itself once delivery (or a purge of dead letters) brings the numbers under the caps again.

Nothing is refused after it was committed: a refusal comes before the put, and a put that fails
committed nothing (the ``Queue`` contract).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from tiktok_gateway.queue.base import NewItem, Queue, QueueUnavailable, stats_within_timeout
from tiktok_gateway.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Seconds between reads of the queue's numbers, and between write probes while failing.
INTERVAL_SECONDS: Final = 1.0
# /readyz probes at once while failing, unless a probe ran this recently.
RECHECK_SECONDS: Final = 0.2
# What a refused hit's answer asks the sender to wait (Retry-After).
FULL_RETRY_AFTER: Final = 30
UNAVAILABLE_RETRY_AFTER: Final = 5

# gateway_queue_refusals_total's reasons.
REASONS: Final = ("max_events", "max_bytes", "queue_unavailable")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a hit is refused: ``error`` (``queue_full`` or ``queue_unavailable``, the answer's
    JSON), the metric ``reason`` (``REASONS``), a ``detail`` fit for the public answer, and the
    seconds of ``Retry-After``."""

    error: str
    reason: str
    detail: str
    retry_after: int


UNAVAILABLE = Refusal(
    "queue_unavailable",
    "queue_unavailable",
    "the queue cannot be written now; retry later",
    UNAVAILABLE_RETRY_AFTER,
)
FULL_EVENTS = Refusal(
    "queue_full",
    "max_events",
    "the queue holds as many events as it may (GATEWAY_QUEUE_MAX_EVENTS); retry later",
    FULL_RETRY_AFTER,
)
FULL_BYTES = Refusal(
    "queue_full",
    "max_bytes",
    "the queue holds as many bytes as it may (GATEWAY_QUEUE_MAX_BYTES); retry later",
    FULL_RETRY_AFTER,
)


class Admission:
    """The caps and the storage's health of one queue, for the ingest endpoints and /readyz.

    ``clock``: monotonic seconds (how long an outage lasted, when a probe is due)."""

    def __init__(
        self,
        queue: Queue,
        *,
        max_items: int,
        max_bytes: int,
        interval: float = INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue = queue
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._interval = interval
        self._clock = clock
        self.items = 0  # undelivered items and dead letters, as last read plus our puts since
        self.bytes = 0  # stored bytes, likewise (0 when the backend does not measure them)
        self._measures_bytes = False  # the backend reported its bytes at the last read
        self.dead = 0
        self.failure: str | None = None  # why writes fail, while they do
        self.failing_since = 0.0
        self._probed_at = 0.0
        self._probe_lock = asyncio.Lock()
        self.refusals = dict.fromkeys(REASONS, 0)  # the metric catches up at each scrape
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- the hot path ---------------------------------------------------------------------------

    def refusal(self) -> Refusal | None:
        """Why a hit must be refused now, or ``None``; counts the refusal. While writes fail,
        one hit every ``RECHECK_SECONDS`` is let through: its put is a probe too."""
        if self.failure is not None:
            now = self._clock()
            if now - self._probed_at >= RECHECK_SECONDS and not self._probe_lock.locked():
                self._probed_at = now
                return None
            refusal = UNAVAILABLE
        elif self.items >= self.max_items:
            refusal = FULL_EVENTS
        elif self.bytes >= self.max_bytes:
            refusal = FULL_BYTES
        else:
            return None
        self.refusals[refusal.reason] += 1
        return refusal

    async def put(self, items: Sequence[NewItem]) -> None:
        """``queue.put``: a ``QueueUnavailable`` it raises starts an outage (and is raised on);
        a commit adds its items and payload bytes to the numbers."""
        try:
            await self._queue.put(items)
        except QueueUnavailable as error:
            self._failed(error)
            raise
        if self.failure is not None:
            self._recovered()
        self.items += len(items)
        if self._measures_bytes:  # Redis reports none: capped by items only, no sum per hit
            self.bytes += sum(len(item.payload) for item in items)

    # -- state ----------------------------------------------------------------------------------

    def _failed(self, error: QueueUnavailable) -> None:
        if self.failure is None:
            self.failing_since = self._clock()
            log.warning(
                "the queue cannot be written (%s): hits are refused with 503 until it can", error
            )
        self.failure = str(error)
        self._probed_at = self._clock()

    def _recovered(self) -> None:
        if self.failure is None:
            return
        lasted = self._clock() - self.failing_since
        log.info("the queue takes writes again after %.1f s; hits are accepted", lasted)
        self.failure = None

    def problems(self) -> list[str]:
        """What /readyz lists: why writes fail, or which cap is reached (with the numbers)."""
        problems: list[str] = []
        if self.failure is not None:
            lasted = self._clock() - self.failing_since
            problems.append(f"queue cannot be written: {self.failure} (for {lasted:.0f} s)")
        if self.items >= self.max_items:
            problems.append(
                f"queue full: {self.items} items ({self.dead} of them dead letters), the cap"
                f" GATEWAY_QUEUE_MAX_EVENTS is {self.max_items}"
            )
        if self.bytes >= self.max_bytes:
            problems.append(
                f"queue full: {self.bytes} bytes stored, the cap GATEWAY_QUEUE_MAX_BYTES is"
                f" {self.max_bytes}"
            )
        return problems

    # -- reading the queue ----------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the queue's numbers; while writes fail, probe one first. A storage that cannot
        be read is failing too. A read that times out leaves the numbers as they were."""
        if self.failure is not None:
            await self._probe()
            if self.failure is not None:
                return
        try:
            stats = await stats_within_timeout(self._queue)
            async with asyncio.timeout(self._interval * 2):
                stored = await self._queue.stored_bytes()
        except QueueUnavailable as error:
            self._failed(error)
            return
        except TimeoutError:
            return
        self.items, self.dead = stats.depth + stats.dead, stats.dead
        self.bytes = stored or 0
        self._measures_bytes = stored is not None

    async def _probe(self) -> None:
        async with self._probe_lock:
            if self.failure is None:  # another probe ended it meanwhile
                return
            self._probed_at = self._clock()
            try:
                await self._queue.probe_write()
            except QueueUnavailable as error:
                self.failure = str(error)
                return
            self._recovered()

    async def recheck(self) -> None:
        """For /readyz: while writes fail, probe now unless a probe ran just before."""
        if self.failure is not None and self._clock() - self._probed_at >= RECHECK_SECONDS:
            await self._probe()

    async def run(self) -> None:
        """``refresh`` every ``interval`` seconds until cancelled or stopped; never raises
        otherwise (a bug is logged once per occurrence, and the loop goes on)."""
        # The flag ends it when redis-py dropped the cancel (tiktok_gateway.tasks says how).
        while not self._stopping:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except Exception:  # keep admitting with the last numbers
                log.exception("reading the queue's numbers failed")

    def start(self) -> None:
        """Run ``run`` in a task of its own."""
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name="admission")

    async def stop(self) -> None:
        """End the task ``start`` made; returns once it has ended."""
        if self._task is not None:
            self._stopping = True
            await cancel_and_wait(self._task)
            self._task = None
