"""JSON-ready views of hits and deliveries for ``/debug`` (every value redacted, see ``redact``).

A hit view::

    {"request_id", "time", "source", "status", "outcome", "error", "duration_ms",
     "queued", "dropped", "params": [[name, value]...], "body": {...} | None,
     "errors": [{"line", "reason", "detail"}], "events_total",
     "events": [{"index", "name", "data", "tags": [placement view...]}],
     "forwards": [placement view...]}

A placement view is what the destination's kind shows of it (``Kind.placement_view``: for
TikTok, ``tags/tiktok/views.py``), plus ``"kind"``, ``"destination"``, ``"key"`` (the
delivery key, ``null`` when nothing was queued) and ``"delivery"``: the latest delivery state
of its item (``queued`` until the worker reports on it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from starlette.responses import Response

from tiktok_gateway import wire_json
from tiktok_gateway.admin.redact import body_view, mask_text, query_pairs, redact
from tiktok_gateway.delivery.ledger import DeliveryResult
from tiktok_gateway.ingest import Placement
from tiktok_gateway.observe import HitRecord
from tiktok_gateway.tags.registry import BY_NAME

MAX_EVENTS: Final = 25

DeliveryKey = tuple[str, str]
View = dict[str, Any]


def queued_state() -> View:
    """The delivery state of an item that is queued and not reported on yet."""
    return {"outcome": "queued", "code": None, "message": "", "request_id": ""}


def delivery_state(result: DeliveryResult, at: float) -> View:
    """The delivery state a ``DeliveryResult`` gives each of its items."""
    return {
        "outcome": result.outcome_kind,
        "code": result.code,
        "message": mask_text(result.message),
        "request_id": result.request_id,
        "at": at,
    }


def _placements(hit: HitRecord) -> list[Placement]:
    shown = [placement for placements in hit.outcomes[:MAX_EVENTS] for placement in placements]
    return shown + list(hit.forwards)


def event_keys(hit: HitRecord) -> list[DeliveryKey]:
    """``(destination, key)`` of every item a hit queued (what deliveries are joined on)."""
    return [
        (placement.destination, placement.key)
        for placement in _placements(hit)
        if placement.key is not None
    ]


def placement_view(placement: Placement, deliveries: Mapping[DeliveryKey, View]) -> View:
    """One placement as the page shows it (module docstring)."""
    view = BY_NAME[placement.kind].placement_view(placement)
    key = placement.key
    view.update(kind=placement.kind, destination=placement.destination, key=key)
    if key is not None:
        view["delivery"] = dict(deliveries.get((placement.destination, key)) or queued_state())
    return view


def _event_view(
    index: int,
    data: Mapping[str, Any],
    placements: Sequence[Placement],
    deliveries: Mapping[DeliveryKey, View],
) -> View:
    name = data.get("event_name")
    return {
        "index": index,
        "name": mask_text(name) if isinstance(name, str) else None,
        "data": redact(dict(data)),
        "tags": [placement_view(placement, deliveries) for placement in placements],
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
        # Reasons are the app's own codes, but masked like every other text on the page: a
        # reason that ever quotes the input must not show personal data.
        "error": mask_text(hit.error),
        "duration_ms": round(hit.duration_seconds * 1000, 2),
        "queued": hit.queued,
        "dropped": {mask_text(reason): count for reason, count in hit.dropped.items()},
        "params": query_pairs(hit.query),
        "body": body_view(hit.body),
        "errors": [
            {"line": e.line, "reason": mask_text(e.reason), "detail": redact(e.detail)}
            for e in hit.errors
        ],
        "events_total": len(hit.events) if events_total is None else events_total,
        "events": events,
        "forwards": [placement_view(placement, deliveries) for placement in hit.forwards],
    }


def apply_delivery(view: View, key: DeliveryKey, state: View) -> bool:
    """Write ``state`` into the placement views of ``view`` that ``key`` names; True when one
    was."""
    found = False
    placements = [tag for event in view["events"] for tag in event["tags"]]
    for placement in placements + view["forwards"]:
        if (placement["destination"], placement["key"]) == key:
            placement["delivery"] = dict(state)
            found = True
    return found


def json_answer(
    content: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``content`` as compact JSON (``wire_json``: never fails on odd floats or strings)."""
    return Response(
        wire_json.dumps(content), status, headers=headers, media_type="application/json"
    )
