"""Event data: the one model every source produces and every tag reads (SPEC section 4).

Event data is a plain JSON-compatible ``dict`` whose keys follow what server-side GTM's GA4 client
produces (``event_name``, ``page_location``, ``items``, ``user_data``, ``x-ga-*`` ...). Keys the
gateway itself adds start with ``x-gw-``:

- ``x-gw-source``: ``ga4``, ``mp`` or ``events`` (which input produced the event);
- ``x-gw-received_at``: unix seconds (float) when the gateway received the request;
- ``x-gw-line``: 0-based index of the event in its hit (part of the deterministic event id);
- ``x-gw-cookies``: the request cookies the tags read (``ttclid``, ``_ttp``);
- ``x-gw-event_time``: the event's own time in unix seconds (float), when its source carries one
  (Measurement Protocol ``timestamp_micros``);
- ``x-gw-consent``: consent given explicitly by a source that has no ``gcs``/``gcd`` (Measurement
  Protocol): ``{"ad_user_data": "granted"|"denied", "ad_personalization": ...}``.

The request's ``user_agent`` and ``ip_override`` use GA4's own key names. Nested objects are
plain ``dict``s too: the compiled mapping reads them with ``isinstance(x, dict)`` and typed
``dict`` lookups, which is much cheaper than going through the ``Mapping`` ABC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tiktok_gateway.errors import LineError

EventData = dict[str, Any]

# Every key the gateway itself writes starts with it; clients may not set such keys.
INTERNAL_PREFIX = "x-gw-"
SOURCE_KEY = "x-gw-source"
RECEIVED_AT_KEY = "x-gw-received_at"
LINE_KEY = "x-gw-line"
COOKIES_KEY = "x-gw-cookies"
EVENT_TIME_KEY = "x-gw-event_time"
CONSENT_KEY = "x-gw-consent"

# The cookies a TikTok tag reads; every other cookie of the request is ignored so that event data
# (and the queue) never hold unrelated, possibly personal, cookie values.
TAG_COOKIES = ("ttclid", "_ttp")


@dataclass(slots=True, init=False)
class RequestContext:
    """What a source knows about the HTTP request besides its parameters.

    ``ip`` is the already-resolved client address (see ``sources.request_context``), never a value
    taken from the hit's parameters. Not changed once built.
    """

    received_at: float
    user_agent: str | None
    ip: str | None
    cookies: dict[str, str]

    # Written out (here and in ParsedInput): mypyc compiles a written __init__, while the one
    # dataclasses generates runs as interpreted Python on every request.
    def __init__(
        self,
        received_at: float,
        user_agent: str | None = None,
        ip: str | None = None,
        cookies: dict[str, str] | None = None,
    ) -> None:
        self.received_at = received_at
        self.user_agent = user_agent
        self.ip = ip
        # Only the cookies tags read are kept: the rest never reaches event data or the queue.
        given = cookies or {}
        self.cookies = {name: given[name] for name in TAG_COOKIES if given.get(name)}

    def apply(self, data: EventData, source: str) -> None:
        """Write the request's facts into one event's data (keys of section 4 and ``x-gw-*``)."""
        data[SOURCE_KEY] = source
        data[RECEIVED_AT_KEY] = self.received_at
        if self.user_agent:
            data["user_agent"] = self.user_agent
        if self.ip:
            data["ip_override"] = self.ip
        if self.cookies:
            data[COOKIES_KEY] = dict(self.cookies)


def is_empty(value: object) -> bool:
    """True for what SPEC 5 calls empty: missing, ``None``, ``""`` or an empty list/dict.

    ``0``, ``0.0`` and ``False`` are values, not empty.
    """
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, list | tuple | dict):
        return len(value) == 0
    return False


def set_path(data: EventData, dotted: str, value: object) -> None:
    """Set ``a.b.c`` as nested dicts (``ep.user_data.email=x`` -> ``{"user_data": {"email": x}}``).

    A non-dict value already standing in the way is replaced by a dict; empty path segments
    (``a..b``, a leading or trailing dot) are kept as literal keys of the flat name instead.
    """
    parts = dotted.split(".")
    if any(part == "" for part in parts):
        data[dotted] = value
        return
    node: EventData = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


@dataclass(slots=True, init=False)
class ParsedInput:
    """What a source made of one request: the events it could use and one error per unusable part.

    A source returns the good events of a request even when some of its parts failed; the HTTP layer
    accepts the events and answers 400 listing the errors (SPEC 10.1).
    """

    events: list[EventData]
    errors: list[LineError]

    def __init__(
        self, events: list[EventData] | None = None, errors: list[LineError] | None = None
    ) -> None:
        self.events = [] if events is None else events
        self.errors = [] if errors is None else errors
