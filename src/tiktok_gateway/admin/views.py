"""JSON-ready views of hits and deliveries for ``/debug`` (every value redacted, see ``redact``).

A hit view::

    {"request_id", "time", "source", "status", "outcome", "error", "duration_ms",
     "queued", "dropped", "params": [[name, value]...], "body": {...} | None,
     "errors": [{"line", "reason", "detail"}], "events_total",
     "events": [{"index", "name", "data", "tags": [tag view...]}]}

A tag view is ``{"tag", "status": "mapped", "pixel", "test_event_code", "event_name",
"event_id", "event", "warnings", "identifiers", "strong", "match_quality", "delivery"}`` or
``{"tag", "status": "dropped", "event_name", "reason"}``.

**Match quality** counts the *strong* identifiers of the TikTok event's ``user`` object: hashed
``email``, hashed ``phone``, ``external_id`` and ``ttclid`` (each identifies one person or one
ad click). Two or more: ``good``; one: ``ok``; none: ``weak`` (TikTok can only match on ``ip``,
``user_agent`` and the ``ttp`` cookie, which are shown too but do not count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from starlette.responses import Response

from tiktok_gateway import wire_json
from tiktok_gateway.admin.redact import body_view, mask_text, query_pairs, redact
from tiktok_gateway.delivery.ledger import DeliveryResult
from tiktok_gateway.observe import HitRecord
from tiktok_gateway.tags.tiktok.mapping import DroppedEvent, MappedEvent

IDENTIFIERS: Final = ("email", "phone", "external_id", "ip", "user_agent", "ttclid", "ttp")
STRONG_IDENTIFIERS: Final = ("email", "phone", "external_id", "ttclid")
MAX_EVENTS: Final = 25

DeliveryKey = tuple[str, str]
View = dict[str, Any]


def match_quality(user: Mapping[str, Any]) -> tuple[dict[str, bool], int, str]:
    """``(present identifiers, strong count, "good" | "ok" | "weak")`` of a TikTok ``user``."""
    present = {name: bool(user.get(name)) for name in IDENTIFIERS}
    strong = sum(present[name] for name in STRONG_IDENTIFIERS)
    return present, strong, "good" if strong >= 2 else "ok" if strong == 1 else "weak"


def queued_state() -> View:
    """The delivery state of an event that is queued and not reported on yet."""
    return {"outcome": "queued", "code": None, "message": "", "request_id": ""}


def delivery_state(result: DeliveryResult, at: float) -> View:
    """The delivery state a ``DeliveryResult`` gives each of its events."""
    return {
        "outcome": result.outcome_kind,
        "code": result.code,
        "message": mask_text(result.message),
        "request_id": result.request_id,
        "at": at,
    }


def event_keys(hit: HitRecord) -> list[DeliveryKey]:
    """``(tag, event_id)`` of every TikTok event a hit queued (what deliveries are joined on)."""
    return [
        (outcome.tag, str(outcome.event.get("event_id", "")))
        for outcomes in hit.outcomes[:MAX_EVENTS]
        for outcome in outcomes
        if isinstance(outcome, MappedEvent)
    ]


def _tag_view(outcome: MappedEvent | DroppedEvent, deliveries: Mapping[DeliveryKey, View]) -> View:
    if isinstance(outcome, DroppedEvent):
        return {
            "tag": outcome.tag,
            "status": "dropped",
            "event_name": outcome.event_name,
            "reason": outcome.reason,
        }
    event = outcome.event
    user = event.get("user")
    present, strong, quality = match_quality(user if isinstance(user, Mapping) else {})
    event_id = str(event.get("event_id", ""))
    return {
        "tag": outcome.tag,
        "status": "mapped",
        "pixel": outcome.pixel_code,
        "test_event_code": outcome.test_event_code,
        "event_name": event.get("event"),
        "event_id": event_id,
        "event": redact(event),
        "warnings": list(outcome.warnings),
        "identifiers": present,
        "strong": strong,
        "match_quality": quality,
        "delivery": dict(deliveries.get((outcome.tag, event_id)) or queued_state()),
    }


def _event_view(
    index: int,
    data: Mapping[str, Any],
    outcomes: Sequence[MappedEvent | DroppedEvent],
    deliveries: Mapping[DeliveryKey, View],
) -> View:
    name = data.get("event_name")
    return {
        "index": index,
        "name": mask_text(name) if isinstance(name, str) else None,
        "data": redact(dict(data)),
        "tags": [_tag_view(outcome, deliveries) for outcome in outcomes],
    }


def hit_view(
    hit: HitRecord, deliveries: Mapping[DeliveryKey, View], events_total: int | None = None
) -> View:
    """The redacted view of ``hit`` with the delivery states known so far (at most
    ``MAX_EVENTS`` events; ``events_total`` counts them all, default ``len(hit.events)``)."""
    events = [
        _event_view(
            index, data, hit.outcomes[index] if index < len(hit.outcomes) else (), deliveries
        )
        for index, data in enumerate(hit.events[:MAX_EVENTS])
    ]
    return {
        "request_id": hit.request_id,
        "time": hit.received_at,
        "source": hit.source,
        "status": hit.status,
        "outcome": hit.outcome,
        "error": hit.error,
        "duration_ms": round(hit.duration_seconds * 1000, 2),
        "queued": hit.queued,
        "dropped": dict(hit.dropped),
        "params": query_pairs(hit.query),
        "body": body_view(hit.body),
        "errors": [
            {"line": e.line, "reason": e.reason, "detail": redact(e.detail)} for e in hit.errors
        ],
        "events_total": len(hit.events) if events_total is None else events_total,
        "events": events,
    }


def apply_delivery(view: View, key: DeliveryKey, state: View) -> bool:
    """Write ``state`` into the tag views of ``view`` that ``key`` names; True when one was."""
    found = False
    for event in view["events"]:
        for tag in event["tags"]:
            if tag["status"] == "mapped" and (tag["tag"], tag["event_id"]) == key:
                tag["delivery"] = dict(state)
                found = True
    return found


def json_answer(
    content: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``content`` as compact JSON (``wire_json``: never fails on odd floats or strings)."""
    return Response(
        wire_json.dumps(content), status, headers=headers, media_type="application/json"
    )
