"""How long a failed batch waits before its next try: exponential back-off with full jitter.

``compute_backoff`` is pure: the random source is injected, so tests get exact values (the
dramatiq / OpenTelemetry ``configretry`` habit). Full jitter (a uniform draw between 0 and the
exponential ceiling) spreads the retries of many failed batches instead of sending them back in
waves when TikTok recovers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

# 2**64 seconds is far past any cap; bounding the exponent keeps the float finite.
_MAX_EXPONENT = 64


def compute_backoff(
    attempt: int,
    *,
    base: float,
    cap: float,
    rng: Callable[[], float],
    retry_after: float | None = None,
) -> float:
    """Seconds to wait after failed delivery number ``attempt`` (0 for the first failure).

    A uniform draw in ``[0, min(cap, base * 2**attempt))``, never less than ``retry_after``
    (the server's Retry-After, honoured even above ``cap``). ``rng`` returns floats in
    ``[0, 1)`` (``random.random``, or a seeded ``random.Random(n).random``).
    """
    exponent = min(max(attempt, 0), _MAX_EXPONENT)
    ceiling = min(cap, base * 2.0**exponent)
    draw = rng()
    delay = max(ceiling, 0.0) * draw
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Retry settings of the delivery worker.

    ``base``/``cap``: seconds of ``compute_backoff``; ``probe_interval``: seconds between two
    probes of a paused destination, and the longest wait between two probes of one backing off
    (so a recovered destination is noticed within it). How old a failing item may get before it
    is dead-lettered is the destination's (``Limits.max_age``).
    """

    base: float = 1.0
    cap: float = 300.0
    probe_interval: float = 60.0

    def delay(
        self,
        attempt: int,
        rng: Callable[[], float],
        retry_after: float | None = None,
    ) -> float:
        """``compute_backoff`` with this policy's base and cap."""
        return compute_backoff(
            attempt, base=self.base, cap=self.cap, rng=rng, retry_after=retry_after
        )

    def probe_delay(
        self,
        failures: int,
        rng: Callable[[], float],
        retry_after: float | None = None,
    ) -> float:
        """Seconds a destination backs off after ``failures`` failed requests in a row (1 or more):
        ``delay`` with the cap lowered to ``probe_interval`` (Retry-After still wins)."""
        probes = replace(self, cap=min(self.cap, self.probe_interval))
        return probes.delay(failures - 1, rng, retry_after)
