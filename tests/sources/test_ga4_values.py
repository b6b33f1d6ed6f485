"""Value decoding shared by the GA4 parsers: numbers against their definition."""

from __future__ import annotations

import math
import re

from hypothesis import given
from hypothesis import strategies as st

from tiktok_gateway.sources.ga4_values import MAX_NUMBER_LENGTH, to_number

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _reference(text: str) -> int | float | str:
    """to_number's contract, written the slow and obvious way."""
    if len(text) > MAX_NUMBER_LENGTH or _DECIMAL.fullmatch(text) is None:
        return text
    if re.fullmatch(r"[+-]?[0-9]+", text) and -(2**63) <= int(text) <= 2**63 - 1:
        return int(text)
    value = float(text)
    return value if math.isfinite(value) else text


NUMBERISH = st.text(alphabet="0123456789.+-eE \u0661\u00b2x", max_size=12)


@given(st.one_of(NUMBERISH, st.text(max_size=12)))
def test_to_number_keeps_its_contract(text: str) -> None:
    result, expected = to_number(text), _reference(text)
    assert type(result) is type(expected)
    assert result == expected


def test_to_number_examples() -> None:
    assert to_number("10.01") == 10.01
    assert to_number("3") == 3
    assert to_number("12.") == 12.0
    assert to_number(".5") == 0.5
    assert to_number("\u0661.\u0662") == "\u0661.\u0662"  # Arabic-Indic digits stay text
    assert to_number("1e999") == "1e999"
    assert to_number(" 1") == " 1"
