"""A destination's hold (delivery/holds.py): pause, back-off, and the failures it takes to back
off as a whole."""

from __future__ import annotations

from tiktok_gateway.delivery.backoff import BackoffPolicy
from tiktok_gateway.delivery.holds import Hold
from tiktok_gateway.delivery.outcome import Pause, Retry

POLICY = BackoffPolicy(base=1.0, cap=300.0, probe_interval=60.0)
FAILED = Retry(None, "server_error", None, "HTTP 503")


def half() -> float:
    return 0.5


def test_one_failure_holds_a_destination_whose_requests_carry_batches() -> None:
    hold = Hold(POLICY, half)
    assert hold.back_off(FAILED, now=100.0) == 0.5  # probe_delay(1): 0.5 * min(cap, 1 s)
    assert hold.held(100.1)
    assert not hold.held(100.5)
    assert hold.answered()
    assert hold.backoff is None


def test_a_threshold_lets_stray_failures_through_and_holds_on_a_streak() -> None:
    hold = Hold(POLICY, half, threshold=3)
    assert hold.back_off(FAILED, now=1.0) is None
    assert hold.back_off(FAILED, now=1.0) is None
    assert not hold.held(1.0)
    assert not hold.answered()  # an answer ends the streak (there was no back-off to end)
    assert hold.back_off(FAILED, now=2.0) is None
    assert hold.back_off(FAILED, now=2.0) is None
    assert hold.back_off(FAILED, now=2.0) == 0.5  # the third in a row
    assert hold.held(2.1)
    assert hold.backoff is not None
    assert hold.backoff.failures == 1


def test_retry_after_wins_over_the_computed_delay() -> None:
    hold = Hold(POLICY, half)
    throttled = Retry(30.0, "throttled", None, "HTTP 429")
    assert hold.back_off(throttled, now=0.0) == 30.0
    assert hold.held(29.9)
    assert not hold.held(30.0)


def test_the_probe_sets_the_next_wait_when_it_goes_out() -> None:
    hold = Hold(POLICY, half)
    hold.back_off(FAILED, now=0.0)
    hold.take_probe(1.0)
    assert hold.backoff is not None
    assert (hold.backoff.failures, hold.backoff.retry_at) == (2, 1.0 + 1.0)  # 0.5 * 2 s


def test_a_pause_lasts_until_a_delivery() -> None:
    hold = Hold(POLICY, half)
    assert hold.pause_for(Pause(40105, "bad token", "token_invalid"), now=10.0)
    assert not hold.pause_for(Pause(40105, "bad token", "token_invalid"), now=70.0)
    assert hold.pause is not None
    assert (hold.pause.since, hold.pause.probe_at) == (10.0, 130.0)
    assert hold.paused_until(129.0)
    assert hold.delivered()
    assert not hold.held(129.0)
