"""``POST /events``: event data sent by servers (shop backends, CRMs), SPEC 3.1.

The body is one event-data object or a list of at most ``MAX_EVENTS`` of them, written with the
common event data keys of SPEC 4 and/or the ``x-ttq-*`` keys of SPEC 5.2.

The request's user agent, address and cookies are deliberately **not** copied into these events:
the request comes from a server, so its ``User-Agent`` and address are the server's, not the
user's. A sender that knows the user's values passes them in each event (``user_agent``,
``ip_override``, ``x-ttq-ct-user-agent``, ``x-ttq-ct-ip-address``, ``x-ttq-ttclid``, ...).

This module also holds ``load_json_body``, the strict JSON reader shared with the Measurement
Protocol source.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

from tiktok_gateway.errors import LineError, ParseError
from tiktok_gateway.event_data import (
    LINE_KEY,
    RECEIVED_AT_KEY,
    SOURCE_KEY,
    EventData,
    ParsedInput,
    RequestContext,
)

MAX_EVENTS = 1000
SOURCE = "events"
INTERNAL_PREFIX = "x-gw-"

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


def _has_name(data: EventData) -> bool:
    return any(
        isinstance(data.get(key), str) and data[key].strip()
        for key in ("x-ttq-event-name", "event_name")
    )


def parse_events(body: bytes, ctx: RequestContext) -> ParsedInput:
    """Parse a ``/events`` body into event data, one per usable object.

    Raises ``ParseError``: ``invalid_json`` (not UTF-8 JSON), ``invalid_body`` (neither an object
    nor a list), ``too_many_events`` (a list longer than ``MAX_EVENTS``). Per entry, a
    ``LineError`` (``line`` = index in the list, 0 for a single object) is collected and the other
    entries go on: ``invalid_event`` (not an object), ``missing_event_name`` (neither
    ``x-ttq-event-name`` nor ``event_name`` is a non-blank string).

    Each event is a shallow copy of its object with every ``x-gw-*`` key removed, then
    ``x-gw-source="events"``, ``x-gw-received_at`` and ``x-gw-line`` set. Only ``ctx.received_at``
    is used (see the module docstring for why UA, address and cookies are not).
    """
    document = load_json_body(body)
    if isinstance(document, dict):
        entries: list[Any] = [document]
    elif isinstance(document, list):
        if len(document) > MAX_EVENTS:
            raise ParseError("too_many_events", f"{len(document)} > {MAX_EVENTS}")
        entries = document
    else:
        raise ParseError("invalid_body", "expected an event object or a list of them")

    parsed = ParsedInput()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            parsed.errors.append(LineError("invalid_event", "not a JSON object", line=index))
            continue
        data = strip_internal_keys(entry)
        if not _has_name(data):
            parsed.errors.append(
                LineError("missing_event_name", "no event_name or x-ttq-event-name", line=index)
            )
            continue
        data[SOURCE_KEY] = SOURCE
        data[RECEIVED_AT_KEY] = ctx.received_at
        data[LINE_KEY] = index
        parsed.events.append(data)
    return parsed
