"""Faults the sandbox injects so the gateway's retries can be exercised (SPEC 9).

Per request, in this order: during an outage every request gets HTTP 503; otherwise one random
draw decides between a failure (share ``fail_rate``; HTTP 500 and ``code`` 50000 in an HTTP 200
alternate), throttling (share ``throttle_rate``; ``code`` 40100 in an HTTP 200) and no fault.
``latency_ms`` is added to every request. The random generator and the clock are injected, so
a seed makes the faults reproducible and tests need not wait.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from tiktok_gateway.sandbox import codes


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """Shares of failed and throttled requests (0..1), added latency, an outage at start."""

    fail_rate: float = 0
    throttle_rate: float = 0
    latency_ms: float = 0
    outage_seconds: float = 0

    def __post_init__(self) -> None:
        for name in ("fail_rate", "throttle_rate"):
            rate = getattr(self, name)
            if not 0 <= rate <= 1:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        if self.fail_rate + self.throttle_rate > 1:
            raise ValueError("fail_rate + throttle_rate must not exceed 1")
        for name in ("latency_ms", "outage_seconds"):
            amount = getattr(self, name)
            if not 0 <= amount < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, not {amount}")


class FaultKind(Enum):
    OUTAGE = "outage"
    HTTP_ERROR = "http_error"
    INTERNAL_ERROR = "internal_error"
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected answer: HTTP ``status``; ``code`` and ``message`` when TikTok-shaped JSON."""

    kind: FaultKind
    status: int
    code: int | None = None
    message: str = ""
    retry_after: int | None = None


class FaultInjector:
    """Decides, request by request, whether and how the sandbox misbehaves."""

    def __init__(
        self,
        settings: FaultSettings,
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._rng = rng
        self._clock = clock
        self._sleep = sleep
        self._failures = 0
        self._outage_until: float | None = None
        if settings.outage_seconds > 0:
            self.start_outage(settings.outage_seconds)

    def start_outage(self, seconds: float = math.inf) -> None:
        """Answer 503 to everything for ``seconds`` from now (``inf``: until ``end_outage``)."""
        if not seconds > 0:
            raise ValueError(f"an outage lasts more than 0 seconds, not {seconds}")
        self._outage_until = self._clock() + seconds

    def end_outage(self) -> None:
        self._outage_until = None

    def outage_remaining(self) -> float:
        """Seconds left of the current outage; 0 when there is none, ``inf`` when open-ended."""
        if self._outage_until is None:
            return 0.0
        remaining = self._outage_until - self._clock()
        if remaining <= 0:
            self._outage_until = None
            return 0.0
        return remaining

    def decide(self) -> Fault | None:
        """The fault for the next request, or ``None`` to answer it normally."""
        remaining = self.outage_remaining()
        if remaining > 0:
            retry_after = math.ceil(remaining) if math.isfinite(remaining) else None
            return Fault(FaultKind.OUTAGE, 503, retry_after=retry_after)
        settings = self.settings
        if settings.fail_rate == 0 and settings.throttle_rate == 0:
            return None
        roll = self._rng.random()
        if roll < settings.fail_rate:
            self._failures += 1
            if self._failures % 2:
                return Fault(FaultKind.HTTP_ERROR, 500)
            return Fault(
                FaultKind.INTERNAL_ERROR,
                200,
                codes.INTERNAL_ERROR,
                codes.INTERNAL_ERROR_MESSAGE,
            )
        if roll < settings.fail_rate + settings.throttle_rate:
            return Fault(
                FaultKind.THROTTLED, 200, codes.TOO_MANY_REQUESTS, codes.TOO_MANY_REQUESTS_MESSAGE
            )
        return None

    async def delay(self) -> None:
        """Wait the configured latency (nothing when it is 0)."""
        if self.settings.latency_ms > 0:
            await self._sleep(self.settings.latency_ms / 1000)
