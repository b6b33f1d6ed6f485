"""Coercion of loosely typed event-data values into the types TikTok's fields require.

Every function returns ``None`` for a value it cannot use; none of them raises. Booleans are never
taken for numbers (``True`` is not a price).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation

_CENT = Decimal("0.01")
# Larger magnitudes are no prices, quantities or times; refusing them also keeps every later
# quantize() within the decimal context's precision.
_LIMIT_DIGITS = 18  # magnitudes of 1e18 and more are refused as nonsense
# Sums of price x quantity (each below 1e18) reach 1e36 and more; rounding them to cents needs
# more digits than the default context's 28.
_WIDE = Context(prec=80)
# Unix times above this many seconds (year 5138) can only be milliseconds.
_MAX_SECONDS = 100_000_000_000
# Below 2**53 every integer is an exact float, so int()/float() give what the Decimal route gives.
_EXACT = 2**53
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def to_decimal(value: object) -> Decimal | None:
    """A finite number below 1e18 in magnitude from an int, float or numeric string; else ``None``.

    ``"59.90"`` -> ``Decimal("59.90")``; floats go through ``repr`` so ``0.1`` stays ``0.1``.
    """
    number: Decimal
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float) and math.isfinite(value):
        number = Decimal(repr(value))
    elif isinstance(value, str) and len(value) <= 64:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    # adjusted() is the exponent of the leading digit: < 18 means below 1e18 in magnitude. (abs()
    # would apply the decimal context, and 1e1000000 overflows it: a 500 for client input.)
    return number if number.is_finite() and number.adjusted() < _LIMIT_DIGITS else None


def json_number(number: Decimal) -> int | float:
    """An ``int`` when the decimal is integral (``0`` stays ``0``), else a ``float``."""
    if number == number.to_integral_value():
        return int(number)
    return float(number)


def to_number(value: object) -> int | float | None:
    """A JSON number from a number or numeric string."""
    if type(value) is int and -_EXACT < value < _EXACT:
        return value
    if type(value) is float and -_EXACT < value < _EXACT:
        return int(value) if value.is_integer() else value
    number = to_decimal(value)
    return None if number is None else json_number(number)


def to_money(value: object) -> int | float | None:
    """A number rounded half-up to 2 decimals with decimal arithmetic (``0`` is kept)."""
    number = to_decimal(value)
    return None if number is None else json_number(number.quantize(_CENT, ROUND_HALF_UP))


def round_money(number: Decimal) -> int | float:
    """``number`` rounded half-up to 2 decimals, as a JSON number."""
    return json_number(number.quantize(_CENT, ROUND_HALF_UP, context=_WIDE))


def to_int(value: object) -> int | None:
    """An integer from an integral number or numeric string; other numbers round half-up."""
    if type(value) is int and -_EXACT < value < _EXACT:
        return value
    number = to_decimal(value)
    return None if number is None else int(number.quantize(Decimal(1), ROUND_HALF_UP))


def to_id(value: object) -> str | None:
    """An id as TikTok wants it: a non-empty string (``12345`` and ``12345.0`` -> ``"12345"``)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def to_text(value: object) -> str | None:
    """A trimmed, non-empty string from a string or number."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return to_id(value)
    return None


def to_bool(value: object) -> bool | None:
    """A boolean from a bool, 0/1 or a word such as ``"true"``/``"false"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return None


def to_unix_seconds(value: object) -> int | None:
    """Integer unix seconds from seconds, milliseconds (by magnitude) or an ISO-8601 string.

    An ISO time without a zone is read as UTC.
    """
    if type(value) is float and 0 <= value <= _MAX_SECONDS:
        return int(value)
    number = to_decimal(value)
    if number is not None:
        if number < 0:
            return None
        if number > _MAX_SECONDS:
            number = number / 1000
        return int(number)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(moment.timestamp())
    return seconds if seconds >= 0 else None
