"""Value decoding shared by the GA4 parsers: numbers against a reference written independently."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

from hypothesis import given
from hypothesis import strategies as st

from tiktok_gateway.sources.ga4_values import MAX_NUMBER_LENGTH, to_number

_DIGITS = set("0123456789")


def _digits(text: str) -> bool:
    return bool(text) and set(text) <= _DIGITS


def _decimal_text(text: str) -> bool:
    """Plain decimal notation: sign, digits with at most one point (a digit on one side at
    least), then an optional exponent: e, sign, digits."""
    mantissa, e, exponent = text.lower().partition("e")
    if e and not _digits(exponent[1:] if exponent[:1] in "+-" else exponent):
        return False
    body = mantissa[1:] if mantissa[:1] in "+-" else mantissa
    whole, _, fraction = body.partition(".")
    return bool(whole or fraction) and all(_digits(part) for part in (whole, fraction) if part)


def _reference(text: str) -> int | float | str:
    """to_number's contract, written the slow and obvious way."""
    if len(text) > MAX_NUMBER_LENGTH or not _decimal_text(text):
        return text
    try:
        exact = Decimal(text)
    except InvalidOperation:
        return text
    if "." not in text and "e" not in text.lower() and -(2**63) <= exact <= 2**63 - 1:
        return int(exact)
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
    assert to_number("-12") == -12
    assert to_number("12.") == 12.0
    assert to_number(".5") == 0.5
    assert to_number("1e3") == 1000.0
    assert to_number("9223372036854775808") == 9223372036854775808.0  # past int64: a float
    assert to_number("\u0661.\u0662") == "\u0661.\u0662"  # Arabic-Indic digits stay text
    assert to_number("1e999") == "1e999"
    assert to_number(" 1") == " 1"
    assert to_number("1.2.3") == "1.2.3"
    assert to_number("e5") == "e5"
