"""Lease ids: ``"<number>:<leases>"`` in ASCII digits (at most 18 each), anything else unknown."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from tiktok_gateway.queue.memory import lease_id, parse_lease_id

# The definition: what every backend takes for a lease id of its own.
DEFINITION = re.compile(r"([0-9]{1,18}):([0-9]{1,18})")

digits = st.text(st.sampled_from("0123456789"), min_size=1, max_size=20)
near_misses = st.builds(
    lambda a, sep, b: a + sep + b,
    digits | st.text(max_size=3),
    st.sampled_from([":", "::", " :", ":\n", ""]),
    digits
    | st.sampled_from(["\u00b2", "\u0661", "\u0663", "7\n", " 7", "+7", "-7", "7_0", "\uff10"]),
)


@given(st.text(max_size=40) | near_misses)
@example("1:2")
@example("123456789012345678:1")
@example("1234567890123456789:1")  # 19 digits: past SQLite's integers
@example("1:\u00b2")  # a digit to str.isdigit, not to the definition
@example("\u0661:1")  # Arabic-Indic digit one
@example("1:2\n")
def test_parse_lease_id_is_the_definition(text: str) -> None:
    match = DEFINITION.fullmatch(text)
    assert parse_lease_id(text) == ((int(match[1]), int(match[2])) if match else None)


@given(st.integers(0, 10**18 - 1), st.integers(1, 10**18 - 1))
def test_lease_ids_round_trip(number: int, leases: int) -> None:
    assert parse_lease_id(lease_id(number, leases)) == (number, leases)
