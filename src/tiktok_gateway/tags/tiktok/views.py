"""How the operator surfaces show TikTok's records: a tag's placement on the debug page (with its
match quality) and a queued event in the dead-letter listings. Everything is redacted
(``admin/redact.py``): no raw personal data, no token.

**Match quality** counts the *strong* identifiers of the TikTok event's ``user`` object: hashed
``email``, hashed ``phone``, ``external_id`` and ``ttclid`` (each identifies one person or one
ad click). Two or more: ``good``; one: ``ok``; none: ``weak`` (TikTok can only match on ``ip``,
``user_agent`` and the ``ttp`` cookie, which are shown too but do not count).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from tiktok_gateway.admin.redact import mask_text, redact
from tiktok_gateway.ingest import Placement
from tiktok_gateway.tags.kind import ItemView, View
from tiktok_gateway.tags.tiktok.envelope import Envelope
from tiktok_gateway.tags.tiktok.mapping import KIND, DroppedEvent, MappedEvent

IDENTIFIERS: Final = ("email", "phone", "external_id", "ip", "user_agent", "ttclid", "ttp")
STRONG_IDENTIFIERS: Final = ("email", "phone", "external_id", "ttclid")


def match_quality(user: Mapping[str, Any]) -> tuple[dict[str, bool], int, str]:
    """``(present identifiers, strong count, "good" | "ok" | "weak")`` of a TikTok ``user``."""
    present = {name: bool(user.get(name)) for name in IDENTIFIERS}
    strong = sum(present[name] for name in STRONG_IDENTIFIERS)
    return present, strong, "good" if strong >= 2 else "ok" if strong == 1 else "weak"


def placement_view(placement: Placement) -> View:
    """A tag's result for one event: ``{"tag", "status": "mapped", "pixel",
    "test_event_code", "event_name", "event_id", "event", "warnings", "identifiers", "strong",
    "match_quality"}`` or ``{"tag", "status": "dropped", "event_name", "reason"}``."""
    if isinstance(placement, DroppedEvent):
        name = placement.event_name
        return {
            "tag": placement.tag,
            "status": "dropped",
            "event_name": mask_text(name) if name is not None else None,
            "reason": mask_text(placement.reason),
        }
    if not isinstance(placement, MappedEvent):
        raise TypeError(f"not a TikTok placement: {type(placement).__name__}")
    event = placement.event
    user = event.get("user")
    present, strong, quality = match_quality(user if isinstance(user, Mapping) else {})
    name = event.get("event")
    return {
        "tag": placement.tag,
        "status": "mapped",
        "pixel": placement.pixel_code,
        "test_event_code": placement.test_event_code,
        "event_name": mask_text(name) if isinstance(name, str) else name,
        "event_id": placement.key,
        "event": redact(event),
        "warnings": list(placement.warnings),
        "identifiers": present,
        "strong": strong,
        "match_quality": quality,
    }


def item_view(payload: bytes) -> ItemView:
    """A queued TikTok event: ``{"pixel", "test_event_code", "event_name", "event_id",
    "event"}`` (the event redacted) and ``<tag> <event> <event_id>`` for ``queue dead``."""
    envelope = Envelope.from_bytes(payload)
    event = envelope.event
    raw: View = {"tag": envelope.tag, "pixel": envelope.pixel_code}
    if envelope.test_event_code:
        raw["test_event_code"] = envelope.test_event_code
    raw["event"] = event
    name, event_id = event.get("event"), event.get("event_id")
    shown = mask_text(str(name)) if name is not None else None
    return ItemView(
        kind=KIND,
        summary=f"{envelope.tag} {shown} {event_id}",
        name=shown,
        fields={
            "pixel": str(envelope.pixel_code),
            "test_event_code": envelope.test_event_code,
            "event_name": shown,
            "event_id": str(event_id) if event_id is not None else None,
            "event": redact(event),
        },
        raw=raw,
    )


# What each dead-letter reason means for a TikTok event, for ``queue dead``.
EXPLANATIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "rejected": "TikTok refused this event (its message names the field): fix the mapping or"
        " the data, then replay it.",
        "expired": "it kept failing past GATEWAY_EVENT_EXPIRY_SECONDS; TikTok accepts events up to"
        " 7 days old: replay soon or purge.",
        "retries_exhausted": "TikTok kept answering a code nobody documents; replay once the cause"
        " is known.",
        "invalid_payload": "the queued bytes are not a TikTok event this version can read.",
        "unknown_destination": "its tag is no longer configured; add the tag back, then replay.",
    }
)
