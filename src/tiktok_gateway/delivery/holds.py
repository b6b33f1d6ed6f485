"""Whether a destination may send now: paused (its configuration) or backing off (it, or the
network, failing), and when its next probe may go out.

* **Pause** (an outcome ``Pause``: wrong token, no permission, wrong URL): the destination's
  items stay queued, untouched; one batch probes every ``policy.probe_interval`` seconds until
  one is delivered.
* **Back-off** (``threshold`` requests in a row ending in a ``Retry`` that ``holds``: throttled,
  5xx, timeout, no connection): none of its items is leased until a delay has passed
  (exponential with full jitter by consecutive failures, at most ``policy.probe_interval``,
  never under Retry-After), then one batch probes; the first answer that is not such a failure
  ends the back-off. An outage costs one request per interval, not one per batch and retry.
  Below the threshold a failed item is only retried on its own (``Limits.hold_after``: a GA4
  forward is one hit, and one stray 503 among many requests says little about Google).

``Hold`` is pure state with an injected clock time and random source; the lane logs and acts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from tiktok_gateway.delivery.backoff import BackoffPolicy
from tiktok_gateway.delivery.outcome import Pause, Retry


@dataclass(frozen=True, slots=True)
class PauseState:
    """Why a destination is paused, since when, and when the next probe may go out."""

    reason: str
    code: int | None
    message: str
    since: float
    probe_at: float


@dataclass(frozen=True, slots=True)
class BackoffState:
    """A destination backing off: why, how many requests failed in a row (a probe counts from
    when it goes out), since when, and when the next probe may go out (clock times)."""

    reason: str
    failures: int
    since: float
    retry_at: float


class Hold:
    """The pause and back-off of one destination."""

    def __init__(self, policy: BackoffPolicy, rng: Callable[[], float], threshold: int = 1) -> None:
        self._policy = policy
        self._rng = rng
        self._threshold = max(threshold, 1)
        self.streak = 0  # holding failures in a row, by when their answers came
        self.pause: PauseState | None = None
        self.backoff: BackoffState | None = None

    def held(self, now: float) -> bool:
        """Whether its items must not be sent now: paused or backing off, next probe not due."""
        pause, backoff = self.pause, self.backoff
        return (pause is not None and now < pause.probe_at) or (
            backoff is not None and now < backoff.retry_at
        )

    def paused_until(self, now: float) -> bool:
        """Whether it is paused and its next probe is not due (items leased before the pause
        are given back untried)."""
        return self.pause is not None and now < self.pause.probe_at

    def take_probe(self, now: float) -> None:
        """The batch about to go out while paused or backing off is the probe: the next one
        waits another interval, set now, so that a probe that fails, or ends without an answer,
        leaves the destination waiting (as a batch leased before the hold found it)."""
        if self.pause is not None:
            self.pause = replace(self.pause, probe_at=now + self._policy.probe_interval)
        if self.backoff is not None:
            failures = self.backoff.failures + 1
            delay = self._policy.probe_delay(failures, self._rng)
            self.backoff = replace(self.backoff, failures=failures, retry_at=now + delay)

    def back_off(self, outcome: Retry, now: float) -> float | None:
        """Count a failed request; hold back once ``threshold`` failed in a row. Returns the
        delay when the back-off begins now.

        Already backing off (its probe failed: the next wait was set when the probe went out; or
        a request sent before the back-off began), the wait stands, lengthened to Retry-After if
        the destination asks for more."""
        self.streak += 1
        state = self.backoff
        if state is None:
            if self.streak < self._threshold:
                return None
            delay = self._policy.probe_delay(1, self._rng, outcome.after)
            self.backoff = BackoffState(outcome.reason, 1, now, now + delay)
            return delay
        retry_at = state.retry_at if outcome.after is None else now + outcome.after
        self.backoff = replace(state, reason=outcome.reason, retry_at=max(state.retry_at, retry_at))
        return None

    def answered(self) -> bool:
        """An answer that is not a holding failure ends the streak and the back-off; True when
        a back-off ended."""
        ended = self.backoff is not None
        self.backoff = None
        self.streak = 0
        return ended

    def pause_for(self, outcome: Pause, now: float) -> bool:
        """Pause (again) until the next probe; True when the pause begins now."""
        state = self.pause
        since = state.since if state is not None else now
        probe_at = now + self._policy.probe_interval
        self.pause = PauseState(outcome.reason, outcome.code, outcome.message, since, probe_at)
        return state is None

    def delivered(self) -> bool:
        """A delivery lifts the pause; True when it did."""
        lifted = self.pause is not None
        self.pause = None
        return lifted
