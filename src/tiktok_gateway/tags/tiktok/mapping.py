"""Event data -> one TikTok Events API 2.0 event for one tag (SPEC section 5).

Pure and deterministic: the same event data and tag settings always give the same event.

``map_event`` either returns a ``MappedEvent`` (the wire event plus what delivery and the HTTP
layer need: pixel, test code, the ttclid to set as a cookie) or a ``DroppedEvent`` with a stable
reason: ``missing_event_name``, ``unmapped_event``, ``invalid_event_name`` or ``consent``.
Empty fields are never emitted: no nulls, no empty strings, no empty objects. The page URL and
referrer are sent without e-mail addresses or userinfo (``email_redaction.redact_url``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tiktok_gateway.email_redaction import redact_url
from tiktok_gateway.event_data import (
    EVENT_TIME_KEY,
    LINE_KEY,
    RECEIVED_AT_KEY,
    SOURCE_KEY,
    EventData,
)
from tiktok_gateway.sha256 import sha256_hex
from tiktok_gateway.sources.ga4_consent import consent_of
from tiktok_gateway.sources.ga4_params import MEASUREMENT_ID_KEY
from tiktok_gateway.tags.tiktok import fields
from tiktok_gateway.tags.tiktok.coerce import to_bool, to_id, to_text, to_unix_seconds
from tiktok_gateway.tags.tiktok.event_map import (
    PURCHASE_EVENTS,
    TIKTOK_EVENTS,
    is_valid_event_name,
)
from tiktok_gateway.tags.tiktok.properties import build_properties
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings
from tiktok_gateway.tags.tiktok.user import build_user

KIND = "tiktok"

# What identifies an event within its hit, for the deterministic event id (SPEC 5.3).
_IDENTITY_KEYS = (
    SOURCE_KEY,
    MEASUREMENT_ID_KEY,
    "client_id",
    "x-ga-page_id",
    "x-ga-request_count",
    LINE_KEY,
)


@dataclass(slots=True, init=False)
class MappedEvent:
    """A TikTok event ready to queue for one tag.

    ``event`` is the wire object of ``data[]``. ``test_event_code`` is request-level in the Events
    API, so it travels beside the event (batches never mix codes). ``ttclid_cookie`` is the click id
    found in the page URL, which the ``/g/collect`` answer sets as a first-party cookie.
    ``explain`` maps each TikTok field path to the event-data key it came from (filled only when
    asked for). ``warnings`` names values that were present but unusable (``invalid_phone``...).
    """

    tag: str
    pixel_code: str
    test_event_code: str | None
    event: dict[str, Any]
    ttclid_cookie: str | None
    warnings: tuple[str, ...]
    explain: dict[str, str]

    # Written out rather than generated: under mypyc a written __init__ is compiled, the one
    # dataclasses generates runs as interpreted Python (measured: 2% of parse + map). Not frozen
    # for the same reason; nothing changes a MappedEvent after map_event made it.
    def __init__(
        self,
        tag: str,
        pixel_code: str,
        test_event_code: str | None,
        event: dict[str, Any],
        ttclid_cookie: str | None = None,
        warnings: tuple[str, ...] = (),
        explain: dict[str, str] | None = None,
    ) -> None:
        self.tag = tag
        self.pixel_code = pixel_code
        self.test_event_code = test_event_code
        self.event = event
        self.ttclid_cookie = ttclid_cookie
        self.warnings = warnings
        self.explain = {} if explain is None else explain

    # As a placement (ingest.Placement): queued for the tag's destination under its event_id.
    @property
    def kind(self) -> str:
        return KIND

    @property
    def destination(self) -> str:
        return self.tag

    @property
    def key(self) -> str | None:
        return str(self.event.get("event_id", ""))

    @property
    def reason(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class DroppedEvent:
    """An event this tag does not send, and why (a low-cardinality reason for metrics)."""

    tag: str
    event_name: str | None
    reason: str

    # As a placement (ingest.Placement): nothing queued, for ``reason``.
    @property
    def kind(self) -> str:
        return KIND

    @property
    def destination(self) -> str:
        return self.tag

    @property
    def key(self) -> str | None:
        return None


def deterministic_event_id(data: EventData, event_name: str) -> str:
    """An id derived from what identifies the event in its hit, so a re-sent hit keeps its id.

    Browser hits carry a page-load id and hit counter; an event that carries neither those nor
    a time of its own also mixes in its receive time, so that two distinct server events with the
    same name are never merged by TikTok's deduplication.
    """
    parts = [str(data.get(key, "")) for key in _IDENTITY_KEYS]
    parts.append(event_name)
    own_time = data.get("x-ttq-timestamp", data.get(EVENT_TIME_KEY))
    if own_time is not None:
        parts.append(str(own_time))
    elif data.get("x-ga-page_id") is None:
        parts.append(str(data.get(RECEIVED_AT_KEY, "")))
    return f"gw-{sha256_hex(chr(0x1F).join(parts))[:32]}"


def event_name_of(data: EventData) -> tuple[str, str] | None:
    """``(source key, name)`` of the event before mapping: ``x-ttq-event-name``, else
    ``event_name`` (trimmed text; a number counts as its text). Triggers compare this name."""
    found = fields.lookup(data, fields.EVENT_NAME)
    name = to_text(found[1]) if found else None
    return (found[0], name) if found and name else None


def _resolve_name(data: EventData, tag: TikTokTagSettings) -> tuple[str, str, str] | DroppedEvent:
    """(source key, name before mapping, TikTok name) or the reason the event is dropped."""
    found = event_name_of(data)
    if found is None:
        return DroppedEvent(tag.name, None, "missing_event_name")
    raw = found[1]
    mapped = tag.resolved_event_map.get(raw)
    if mapped is None:
        if tag.unmapped_events == "drop" and raw not in TIKTOK_EVENTS:
            return DroppedEvent(tag.name, raw, "unmapped_event")
        mapped = raw
    if not is_valid_event_name(mapped):
        return DroppedEvent(tag.name, raw, "invalid_event_name")
    return found[0], raw, mapped


def _event_id(
    data: EventData, raw_name: str, tiktok_name: str, explain: dict[str, str] | None
) -> str:
    found = fields.lookup(data, fields.EVENT_ID)
    key = found[0] if found else None
    value = to_id(found[1]) if found else None
    # transaction_id identifies an order, not an event: only the purchase event may use it,
    # otherwise TikTok would merge e.g. the AddPaymentInfo and the purchase of one order.
    if value is None and (raw_name == "purchase" or tiktok_name in PURCHASE_EVENTS):
        found = fields.lookup(data, fields.TRANSACTION_ID)
        key = found[0] if found else None
        value = to_id(found[1]) if found else None
    if value is None:
        value, key = deterministic_event_id(data, raw_name), "(derived from the hit)"
    if explain is not None and key:
        explain["event_id"] = key
    return value


def _event_time(data: EventData, explain: dict[str, str] | None) -> tuple[int, list[str]]:
    warnings: list[str] = []
    for key, path in fields.EVENT_TIME:
        value = data.get(path[0])
        if value is None or value == "":
            continue
        seconds = to_unix_seconds(value)
        if seconds is not None:
            if explain is not None:
                explain["event_time"] = key
            return seconds, warnings
        warnings.append("invalid_timestamp")
    # Every source stamps the receive time, so this is reached only for hand-made event data.
    return int(time.time()), warnings


def map_event(
    data: EventData, tag: TikTokTagSettings, *, explain: bool = False
) -> MappedEvent | DroppedEvent:
    """Map one event's data for ``tag``. Never raises for any JSON-compatible ``data``."""
    notes: dict[str, str] | None = {} if explain else None
    name = _resolve_name(data, tag)
    if isinstance(name, DroppedEvent):
        return name
    name_key, raw_name, tiktok_name = name
    pii_allowed = True
    if tag.consent == "respect":
        consent = consent_of(data)
        if consent.ad_storage == "denied":
            return DroppedEvent(tag.name, raw_name, "consent")
        pii_allowed = consent.ad_user_data != "denied"

    event_time, warnings = _event_time(data, notes)
    event: dict[str, Any] = {
        "event": tiktok_name,
        "event_time": event_time,
        "event_id": _event_id(data, raw_name, tiktok_name, notes),
    }
    if notes is not None:
        notes["event"] = name_key
    # The URLs as received (the ttclid is read from them), and as TikTok gets them: without
    # e-mail addresses or userinfo (SPEC 13), before the event is queued.
    urls: dict[str, str] = {}
    page: dict[str, str] = {}
    for wire, table in (("url", fields.PAGE_URL), ("referrer", fields.PAGE_REFERRER)):
        found = fields.lookup(data, table)
        text = to_text(found[1]) if found else None
        if found and text:
            urls[wire] = text
            page[wire] = redact_url(text)
            if notes is not None:
                notes[f"page.{wire}"] = found[0]
    user, url_ttclid, more = build_user(
        data,
        region=tag.phone_region,
        pii_allowed=pii_allowed,
        page_url=urls.get("url"),
        referrer=urls.get("referrer"),
        explain=notes,
    )
    warnings += more
    if user:
        event["user"] = user
    if page:
        event["page"] = page
    properties, more = build_properties(data, tag_content_type=tag.content_type, explain=notes)
    warnings += more
    if properties:
        event["properties"] = properties
    found = fields.lookup(data, fields.LIMITED_DATA_USE)
    ldu = to_bool(found[1]) if found else None
    if ldu if ldu is not None else tag.limited_data_use:
        event["limited_data_use"] = True
    found = fields.lookup(data, fields.TEST_EVENT_CODE)
    test_code = (to_text(found[1]) if found else None) or tag.test_event_code or None
    return MappedEvent(
        tag=tag.name,
        pixel_code=tag.pixel_code,
        test_event_code=test_code,
        event=event,
        ttclid_cookie=url_ttclid,
        warnings=tuple(warnings),
        explain=notes or {},
    )
