"""The admin API (SPEC 10.1), behind ``admin.auth``: queue state, dead letters, replay.

- ``GET /admin/queue``: ``{"depth", "leased", "oldest_age_seconds", "dead_letters",
  "paused": [{"tag", "kind", "reason", "code", "message", "since", "probe_at"}],
  "backing_off": [{"tag", "kind", "reason", "failures", "since", "retry_at"}]}`` (times: unix
  s; ``tag`` is the destination's name: a TikTok tag, or ``ga4``).
- ``GET /admin/dead-letters?limit=N`` (1..1000, default 100): ``{"dead_letters": [...]}``,
  most recent first; each ``{"id", "tag", "kind", "event_name", "summary", "reason", "code",
  "message", "request_id", "attempts", "enqueued_at", "dead_at"}`` plus what the destination's
  kind reads from the payload (``Kind.item_view``; TikTok: ``pixel``, ``test_event_code``,
  ``event_id``, ``event``, the event redacted like the debug page; GA4: ``measurement_id``,
  ``path``, ``params``, ...). A payload no kind can read gives ``payload_error``.
- ``POST /admin/dead-letters/replay`` with ``{"ids": ["...", ...]}`` (1..1000 ids) or
  ``{"all": true}``: moves them back into the queue (attempts reset) and answers
  ``{"replayed": n}``; ids that are no dead letter are skipped. Like every state change on the
  admin listener it must come as ``Content-Type: application/json`` (``admin.auth``).

Errors: 400 ``bad_request`` (bad limit or body), 503 ``queue_unavailable`` (storage failure),
plus the refusals of ``admin.auth``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tiktok_gateway import wire_json
from tiktok_gateway.admin.auth import Grant, admin_only
from tiktok_gateway.admin.redact import mask_text
from tiktok_gateway.admin.views import json_answer
from tiktok_gateway.delivery.destination import kinds_of
from tiktok_gateway.endpoints.access import runtime_of
from tiktok_gateway.endpoints.body import BodyTooLarge, error_response, read_body
from tiktok_gateway.queue.base import DeadRecord, stats_within_timeout
from tiktok_gateway.tags.kind import ItemView
from tiktok_gateway.tags.registry import BY_NAME, KINDS

MAX_LIMIT: Final = 1000
MAX_IDS: Final = 1000
MAX_BODY: Final = 64 * 1024
QUEUE_TIMEOUT: Final = 5.0


def item_view(kind: str | None, payload: bytes) -> ItemView | None:
    """What ``kind`` reads from a queued payload (with no kind, as when its destination is no
    longer configured: the first kind that can read it); ``None`` when none can."""
    found = BY_NAME.get(kind) if kind is not None else None
    candidates = [found] if found is not None else list(KINDS)
    for candidate in candidates:
        try:
            return candidate.item_view(payload)
        except (ValueError, KeyError, TypeError):
            continue
    return None


def dead_letter_view(record: DeadRecord, kind: str | None) -> dict[str, Any]:
    """One stored dead letter as the API lists it (module docstring); ``kind``: that of the
    destination named by the record's group, ``None`` when it is not configured."""
    view: dict[str, Any] = {
        "id": record.id,
        "tag": record.group,
        "kind": kind,
        "event_name": None,
        "summary": None,
        "reason": record.reason,
        "code": record.code,
        "message": mask_text(record.message),
        "request_id": record.request_id,
        "attempts": record.attempts,
        "enqueued_at": record.enqueued_at,
        "dead_at": record.dead_at,
    }
    shown = item_view(kind, record.payload)
    if shown is None:
        view["payload_error"] = "unreadable payload"
        return view
    view.update(shown.fields)
    view.update(event_name=shown.name, summary=shown.summary)
    return view


def _unavailable(exc: Exception) -> Response:
    return error_response(503, "queue_unavailable", type(exc).__name__)


async def queue_state(request: Request, grant: Grant) -> Response:
    """``GET /admin/queue``."""
    runtime = runtime_of(request)
    try:
        stats = await stats_within_timeout(runtime.queue)
    except Exception as exc:  # storage trouble is a 503, never a 500
        return _unavailable(exc)
    paused = runtime.worker.paused if runtime.worker is not None else {}
    backing_off = runtime.worker.backing_off if runtime.worker is not None else {}
    kinds = kinds_of(runtime.destinations)
    return json_answer(
        {
            **stats.to_json(),
            "paused": [
                {
                    "tag": tag,
                    "kind": kinds.get(tag),
                    "reason": state.reason,
                    "code": state.code,
                    "message": mask_text(state.message),
                    "since": state.since,
                    "probe_at": state.probe_at,
                }
                for tag, state in sorted(paused.items())
            ],
            "backing_off": [
                {
                    "tag": tag,
                    "kind": kinds.get(tag),
                    "reason": state.reason,
                    "failures": state.failures,
                    "since": state.since,
                    "retry_at": state.retry_at,
                }
                for tag, state in sorted(backing_off.items())
            ],
        }
    )


async def dead_letters(request: Request, grant: Grant) -> Response:
    """``GET /admin/dead-letters?limit=N``."""
    raw = request.query_params.get("limit", "100")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        return error_response(400, "bad_request", f"limit must be 1..{MAX_LIMIT}")
    runtime = runtime_of(request)
    try:
        async with asyncio.timeout(QUEUE_TIMEOUT):
            records = await runtime.queue.dead_letters(int(raw))
    except Exception as exc:  # storage trouble is a 503, never a 500
        return _unavailable(exc)
    kinds = kinds_of(runtime.destinations)
    views = [dead_letter_view(record, kinds.get(record.group)) for record in records]
    return json_answer({"dead_letters": views})


def replay_ids(body: object) -> list[str] | str | None:
    """The ids a replay body names, ``None`` for all, or the reason it is refused (a ``str``)."""
    if not isinstance(body, dict):
        return 'send {"ids": [...]} or {"all": true}'
    if set(body) == {"all"}:
        return None if body["all"] is True else '"all" must be true'
    ids = body.get("ids")
    if set(body) != {"ids"} or not isinstance(ids, list):
        return 'send {"ids": [...]} or {"all": true}'
    if not 1 <= len(ids) <= MAX_IDS or not all(isinstance(i, str) and i for i in ids):
        return f'"ids" must hold 1..{MAX_IDS} non-empty strings'
    return list(dict.fromkeys(ids))


async def replay(request: Request, grant: Grant) -> Response:
    """``POST /admin/dead-letters/replay``."""
    try:
        body = wire_json.loads(await read_body(request, MAX_BODY))
    except BodyTooLarge:
        return error_response(413, "body_too_large", f"limit is {MAX_BODY} bytes")
    except ValueError:
        return error_response(400, "bad_request", "the body is not JSON")
    ids = replay_ids(body)
    if isinstance(ids, str):
        return error_response(400, "bad_request", ids)
    try:
        count = await runtime_of(request).queue.replay(ids)  # no timeout: never cut a write
    except Exception as exc:  # storage trouble is a 503, never a 500
        return _unavailable(exc)
    return json_answer({"replayed": count})


def admin_routes() -> list[BaseRoute]:
    """``/admin/...`` routes."""
    return [
        Route("/admin/queue", admin_only(queue_state), methods=["GET"]),
        Route("/admin/dead-letters", admin_only(dead_letters), methods=["GET"]),
        Route("/admin/dead-letters/replay", admin_only(replay), methods=["POST"]),
    ]
