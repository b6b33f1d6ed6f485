"""Whether the delivery worker can reach its queue, and how long it waits when it cannot.

While the queue cannot be reached (``QueueUnavailable``: Redis down, a full disk, a locked or
unreadable SQLite file), every lane (and the sweep) waits instead of asking again at once: an
exponential delay with full jitter from ``base`` up to ``cap`` seconds (a few seconds, since the
queue is local or nearby and its recovery should be noticed quickly), by failed attempts in a
row. The first failure logs one warning line, the first success after it one info line saying
how long it lasted and how many attempts failed; nothing in between, so an hour-long outage
writes two lines, not a traceback per attempt. ``failures`` counts every failed attempt (the
metric ``gateway_queue_failures_total``).

Shared by the lanes: the queue is one storage, so one lane's failure makes every lane wait, and
any lane's success ends the wait for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Final

from tiktok_gateway.delivery.backoff import compute_backoff

log = logging.getLogger(__name__)

BASE_SECONDS: Final = 0.05
CAP_SECONDS: Final = 5.0


class QueueHealth:
    """The queue's reachability as the worker sees it. ``clock``: monotonic seconds."""

    def __init__(
        self,
        *,
        base: float = BASE_SECONDS,
        cap: float = CAP_SECONDS,
        rng: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base, self._cap = base, cap
        self._rng = rng if rng is not None else random.Random().random
        self._clock = clock
        self.failures = 0  # failed attempts since the start: the metric
        self.streak = 0  # failed attempts in a row
        self.failing_since: float | None = None
        self.retry_at = 0.0

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def failed(self, error: Exception) -> float:
        """Count a failed attempt; returns the seconds to wait before the next. The first of a
        streak logs one warning (the error's type and text: no traceback, no secret)."""
        now = self._clock()
        self.failures += 1
        self.streak += 1
        if self.failing_since is None:
            self.failing_since = now
            log.warning(
                "the queue cannot be reached (%s: %s); delivery waits and tries again",
                type(error).__name__,
                error,
            )
        delay = compute_backoff(self.streak - 1, base=self._base, cap=self._cap, rng=self._rng)
        self.retry_at = max(self.retry_at, now + delay)
        return delay

    def succeeded(self) -> None:
        """A queue call went through: an outage, if there was one, ends (one info line)."""
        if self.failing_since is None:
            return
        lasted = self._clock() - self.failing_since
        log.info(
            "the queue answers again after %.1f s (%d failed attempts); delivery resumes",
            lasted,
            self.streak,
        )
        self.failing_since = None
        self.streak = 0
        self.retry_at = 0.0

    async def wait(self, stop: asyncio.Event | None = None) -> None:
        """Sleep until the next attempt is due (at once when not failing); ``stop`` cuts it
        short."""
        delay = self.retry_at - self._clock()
        if not self.failing or delay <= 0:
            return
        if stop is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()
