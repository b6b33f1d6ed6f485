"""``POST /events``: event data sent by servers (shop backends, CRMs), SPEC 3.1.

The body is one event-data object or a list of at most ``MAX_EVENTS`` of them, written with the
common event data keys of SPEC 4 and/or the ``x-ttq-*`` keys of SPEC 5.2.

The request's user agent, address and cookies are deliberately **not** copied into these events:
the request comes from a server, so its ``User-Agent`` and address are the server's, not the
user's. A sender that knows the user's values passes them in each event (``user_agent``,
``ip_override``, ``x-ttq-ct-user-agent``, ``x-ttq-ct-ip-address``, ``x-ttq-ttclid``, ...).
"""

from __future__ import annotations

from typing import Any

from tiktok_gateway.errors import LineError, ParseError
from tiktok_gateway.event_data import (
    LINE_KEY,
    RECEIVED_AT_KEY,
    SOURCE_KEY,
    EventData,
    ParsedInput,
    RequestContext,
)
from tiktok_gateway.sources.json_body import load_json_body, strip_internal_keys

MAX_EVENTS = 1000
SOURCE = "events"


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
