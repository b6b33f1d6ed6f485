"""The strict JSON reader of the JSON sources (``/events``, ``/mp/collect``) and the guard
that keeps clients from setting the gateway's own ``x-gw-*`` keys."""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

from tiktok_gateway.errors import ParseError
from tiktok_gateway.event_data import INTERNAL_PREFIX, EventData

# A \uXXXX escape of a surrogate. Only when one appears can the document hold a lone surrogate,
# a str that cannot be encoded as UTF-8 (hashing or serialising it later would fail).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # 1e400 parses as inf; event data must stay serialisable as standard JSON.
        # The number itself is not echoed: the answer must not repeat client data (a phone?).
        raise ValueError("a number is out of range")
    return value


def load_json_body(body: bytes) -> Any:
    """Decode a request body as strict JSON; raise ``ParseError("invalid_json", detail)`` otherwise.

    Strict means: UTF-8 (a leading BOM is tolerated), no ``NaN``/``Infinity``, no number that does
    not fit a finite float, no integer beyond Python's digit limit, no nesting deeper than the
    parser allows, and no lone surrogate in any string. What it returns is plain ``dict``/``list``/
    ``str``/``int``/``float``/``bool``/``None``, safe to serialise again.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ParseError("invalid_json", "body is not UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ParseError("invalid_json", "nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, our number checks, int digit limit
        raise ParseError("invalid_json", str(exc)[:200]) from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ParseError("invalid_json", "string holds a lone surrogate") from None
    return value


def strip_internal_keys(data: dict[str, Any]) -> EventData:
    """A shallow copy of ``data`` without ``x-gw-*`` keys (any case): clients cannot set them."""
    return {
        key: value for key, value in data.items() if not key.lower().startswith(INTERNAL_PREFIX)
    }
