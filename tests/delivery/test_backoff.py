"""Back-off: exact values with an injected random source."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tiktok_gateway.delivery.backoff import BackoffPolicy, compute_backoff


def fixed(value: float) -> Callable[[], float]:
    return lambda: value


@pytest.mark.parametrize(
    ("attempt", "draw", "expected"),
    [
        (0, 0.5, 0.5),  # ceiling 1
        (1, 0.5, 1.0),  # ceiling 2
        (3, 0.25, 2.0),  # ceiling 8
        (10, 0.5, 150.0),  # 1024 capped at 300
        (500, 0.999, 299.7),  # huge attempts stay finite and capped
        (-3, 0.5, 0.5),  # negative counts as 0
        (4, 0.0, 0.0),  # full jitter reaches 0
    ],
)
def test_exact_values(attempt: int, draw: float, expected: float) -> None:
    got = compute_backoff(attempt, base=1.0, cap=300.0, rng=fixed(draw))
    assert got == pytest.approx(expected)


def test_ceiling_grows_exponentially_until_the_cap() -> None:
    ceilings = [compute_backoff(n, base=0.5, cap=10.0, rng=fixed(1.0)) for n in range(7)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_retry_after_is_a_floor() -> None:
    assert compute_backoff(0, base=1.0, cap=300.0, rng=fixed(0.5), retry_after=30.0) == 30.0
    assert compute_backoff(8, base=1.0, cap=300.0, rng=fixed(0.5), retry_after=30.0) == 128.0
    # The server's word wins even above the cap.
    assert compute_backoff(0, base=1.0, cap=300.0, rng=fixed(0.5), retry_after=900.0) == 900.0


def test_seeded_random_is_reproducible_and_within_bounds() -> None:
    first = [compute_backoff(n, base=1.0, cap=60.0, rng=random.Random(7).random) for n in range(12)]
    again = [compute_backoff(n, base=1.0, cap=60.0, rng=random.Random(7).random) for n in range(12)]
    assert first == again
    expected = random.Random(7).random() * 8.0
    assert compute_backoff(3, base=1.0, cap=60.0, rng=random.Random(7).random) == expected
    for n, delay in enumerate(first):
        assert 0.0 <= delay < min(60.0, 2.0**n)


def test_policy_defaults_and_delay() -> None:
    policy = BackoffPolicy()
    assert (policy.base, policy.cap) == (1.0, 300.0)
    assert policy.probe_interval == 60.0
    assert policy.delay(2, fixed(0.5)) == 2.0
    assert policy.delay(2, fixed(0.5), retry_after=10.0) == 10.0
