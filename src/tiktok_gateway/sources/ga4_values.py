"""Value decoding shared by the GA4 web-hit parsers: percent-decoding, numbers, flags, brands.

Every function here is total: it returns something sensible for any ``str`` and never raises.
"""

from __future__ import annotations

import codecs
import math
import re
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

# Longer "numbers" are not prices or counters but garbage; keeping them as text also bounds the
# work ``int()``/``float()`` do on hostile input.
MAX_NUMBER_LENGTH = 100
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
# Decimal text only: ``float()`` alone would also take "nan", "inf", "1_000" and surrounding
# whitespace. Written so that a failing match backtracks linearly, never quadratically.
_UNESCAPE = codecs.getdecoder("unicode_escape")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def to_number(text: str) -> int | float | str:
    """``text`` as a JSON number when it is decimal text, else ``text`` unchanged.

    Integral text (``3``, ``-12``) becomes an ``int`` when it fits in a signed 64-bit integer
    (what every JSON consumer can hold), other decimal text (``10.01``, ``1e3``, a huge integer)
    a finite ``float``. Anything else, including ``nan``, ``inf``, text longer than
    ``MAX_NUMBER_LENGTH`` and surrounding whitespace, is returned as the string it was.
    """
    if len(text) > MAX_NUMBER_LENGTH:
        return text
    body = text[1:] if text[:1] in ("-", "+") else text
    if body.isascii() and body.isdigit():
        number = int(text)
        if _INT64_MIN <= number <= _INT64_MAX:
            return number
    # Most prices and amounts are "<digits>.<digits>": no regular expression needed for those.
    whole, dot, fraction = body.partition(".")
    plain = bool(dot) and whole.isascii() and whole.isdigit() and fraction.isascii()
    plain = plain and fraction.isdigit()
    if not plain and _DECIMAL.fullmatch(text) is None:
        return text
    value = float(text)
    return value if math.isfinite(value) else text


def to_flag(text: str) -> bool:
    """A GA4 boolean parameter (``uamb``, ``uaw``): ``1`` or ``true`` is True, else False."""
    return text == "1" or text.lower() == "true"


def decode_component(text: str) -> str:
    """Percent-decode one query component with ``+`` as space; bad escapes are kept literally.

    Same result as ``urllib.parse.unquote(text.replace("+", " "), errors="replace")``: invalid
    UTF-8 produced by escapes becomes U+FFFD (never an exception, never a lone surrogate).
    """
    if "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    # Let the C ``unicode_escape`` codec turn escapes into bytes (``%41`` -> ``\\x41``): several
    # times faster than unquote's Python loop on long URLs. Non-ASCII text survives as latin-1
    # and is restored by the re-encode. A % that starts no valid escape makes the codec fail;
    # unquote then keeps it literally.
    escaped = text.encode("utf-8", "surrogatepass").replace(b"\\", b"\\\\").replace(b"%", b"\\x")
    try:
        latin = _UNESCAPE(escaped)[0]
    except UnicodeDecodeError:
        return unquote(text, errors="replace")
    return latin.encode("latin-1").decode("utf-8", "replace")


def decode_brands(text: str) -> list[dict[str, Any]]:
    """The client hint ``uafvl`` (already query-decoded once) as ``[{brand, version}, ...]``.

    gtag writes ``brand;version`` entries joined by ``|`` with each brand URL-encoded a second
    time (``Not%2FA)Brand;99.0.0.0``), so brands are percent-decoded again. Empty entries are
    skipped; an entry without ``;`` has an empty version.
    """
    return [{"brand": brand, "version": version} for brand, version in _brand_pairs(text)]


@lru_cache(maxsize=256)
def _brand_pairs(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for entry in text.split("|"):
        if not entry:
            continue
        brand, _, version = entry.partition(";")
        pairs.append((unquote(brand, errors="replace"), version))
    return tuple(pairs)
