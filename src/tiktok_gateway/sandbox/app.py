"""The sandbox as an ASGI app: TikTok's ``POST /open_api/v1.3/event/track/`` and a small admin API.

Routes:

- ``POST /open_api/v1.3/event/track/``: validated like TikTok (``validation``), answered in
  TikTok's shape (HTTP 200 with ``code``, ``message``, ``request_id``, ``data``), except the
  injected HTTP 500 and outage 503 (``faults``). Only the path with the trailing slash exists,
  as at TikTok, so a client that drops it gets a 404 instead of a silent redirect.
- ``GET /sandbox/events?pixel=&limit=``: the accepted events, oldest first, and the totals;
  ``DELETE /sandbox/events`` forgets them and resets the totals.
- ``POST /sandbox/outage?seconds=N`` (no ``seconds``: until ended), ``DELETE /sandbox/outage``.
- ``GET /sandbox/``: a short summary.

``/sandbox`` is the default ``admin_prefix``; mounted inside the gateway at ``/sandbox`` the app
is made with ``admin_prefix=""`` so its routes stay ``/sandbox/events`` and so on.

The access token is only compared, never logged, stored with the events or echoed back. The
``Sandbox`` (store, fault injector) is ``app.state.sandbox``; ``sandbox_of(app)`` returns it typed.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tiktok_gateway.sandbox import codes
from tiktok_gateway.sandbox.faults import Fault, FaultInjector, FaultSettings
from tiktok_gateway.sandbox.store import DEFAULT_CAPACITY, EventStore
from tiktok_gateway.sandbox.validation import validate
from tiktok_gateway.tags.tiktok.payload import TRACK_PATH

SERVICE_NAME = "tiktok-gateway sandbox"
ADMIN_PREFIX = "/sandbox"


@dataclass(slots=True)
class Sandbox:
    """The state behind one sandbox app: what it accepted and how it misbehaves."""

    store: EventStore
    faults: FaultInjector
    access_token: str | None = field(default=None, repr=False)
    wall_clock: Callable[[], float] = time.time

    @property
    def token_required(self) -> bool:
        return bool(self.access_token)


def create_sandbox_app(
    *,
    access_token: str | None = None,
    faults: FaultSettings | None = None,
    seed: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    wall_clock: Callable[[], float] = time.time,
    capacity: int = DEFAULT_CAPACITY,
    admin_prefix: str = ADMIN_PREFIX,
) -> Starlette:
    """A sandbox app; ``access_token`` ``None`` or empty accepts any token (or none).

    ``clock`` (monotonic seconds) times outages, ``sleep`` waits the latency, ``wall_clock`` stamps
    the kept events. ``admin_prefix`` is where the ``/events``, ``/outage`` and summary routes
    live: ``""`` suits an app mounted at ``/sandbox`` inside the gateway.
    """
    injector = FaultInjector(faults or FaultSettings(), random.Random(seed), clock, sleep)
    sandbox = Sandbox(EventStore(capacity), injector, access_token or None, wall_clock)
    endpoints = _Endpoints(sandbox)
    if admin_prefix and (not admin_prefix.startswith("/") or admin_prefix.endswith("/")):
        raise ValueError(f"admin_prefix must be empty or like /name, not {admin_prefix!r}")
    summary_paths = [f"{admin_prefix}/", admin_prefix] if admin_prefix else ["/"]
    app = Starlette(
        routes=[
            Route(TRACK_PATH, endpoints.track, methods=["POST"]),
            *(Route(path, endpoints.summary, methods=["GET"]) for path in summary_paths),
            Route(f"{admin_prefix}/events", endpoints.list_events, methods=["GET"]),
            Route(f"{admin_prefix}/events", endpoints.clear_events, methods=["DELETE"]),
            Route(f"{admin_prefix}/outage", endpoints.start_outage, methods=["POST"]),
            Route(f"{admin_prefix}/outage", endpoints.end_outage, methods=["DELETE"]),
        ]
    )
    app.router.redirect_slashes = False
    app.state.sandbox = sandbox
    return app


def sandbox_of(app: Starlette) -> Sandbox:
    """The ``Sandbox`` of an app made by ``create_sandbox_app``."""
    sandbox = getattr(app.state, "sandbox", None)
    if not isinstance(sandbox, Sandbox):
        raise TypeError("not a sandbox app")
    return sandbox


def new_request_id(now: float) -> str:
    """A unique id shaped like TikTok's: UTC timestamp then random upper-case hex."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H%M%S")
    return stamp + secrets.token_hex(12).upper()


def json_response(content: Any, status_code: int = 200) -> Response:
    """JSON in ASCII, so stored strings that are not valid UTF-8 (lone surrogates) still render."""
    text = json.dumps(content, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return Response(text, status_code, media_type="application/json")


def tiktok_answer(code: int, message: str, request_id: str) -> Response:
    return json_response({"code": code, "message": message, "request_id": request_id, "data": {}})


def _bad_request(error: str, detail: str) -> Response:
    return json_response({"error": error, "detail": detail}, 400)


class _Endpoints:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def track(self, request: Request) -> Response:
        sandbox = self.sandbox
        sandbox.store.count_request()
        fault = sandbox.faults.decide()
        await sandbox.faults.delay()
        now = sandbox.wall_clock()
        if fault is not None:
            sandbox.store.count_faulted()
            return _fault_response(fault, new_request_id(now))
        body = await request.body()
        verdict = validate(body, request.headers.get("access-token"), sandbox.access_token)
        request_id = new_request_id(now)
        if not verdict.accepted:
            sandbox.store.count_rejected()
            return tiktok_answer(verdict.code, verdict.message, request_id)
        sandbox.store.add(
            verdict.events,
            pixel_code=verdict.pixel_code,
            test_event_code=verdict.test_event_code,
            request_id=request_id,
            received_at=now,
        )
        return tiktok_answer(codes.OK, codes.OK_MESSAGE, request_id)

    async def list_events(self, request: Request) -> Response:
        limit_text = request.query_params.get("limit")
        limit: int | None = None
        if limit_text:
            try:
                limit = int(limit_text)
            except ValueError:
                return _bad_request("invalid_limit", "limit must be an integer >= 0")
            if limit < 0:
                return _bad_request("invalid_limit", "limit must be an integer >= 0")
        pixel = request.query_params.get("pixel") or None
        store = self.sandbox.store
        events = store.events(pixel, limit)
        return json_response(
            {
                "events": [event.to_json() for event in events],
                "count": len(events),
                "kept": len(store),
                "capacity": store.capacity,
                **store.totals().to_json(),
            }
        )

    async def clear_events(self, request: Request) -> Response:
        store = self.sandbox.store
        cleared = len(store)
        store.clear()
        return json_response({"cleared": cleared})

    async def start_outage(self, request: Request) -> Response:
        seconds_text = request.query_params.get("seconds")
        seconds = math.inf
        if seconds_text:
            try:
                seconds = float(seconds_text)
            except ValueError:
                seconds = math.nan
            if not 0 < seconds < math.inf:
                return _bad_request("invalid_seconds", "seconds must be a number > 0")
        self.sandbox.faults.start_outage(seconds)
        return json_response({"outage": True, "seconds": _finite_or_none(seconds)})

    async def end_outage(self, request: Request) -> Response:
        self.sandbox.faults.end_outage()
        return json_response({"outage": False})

    async def summary(self, request: Request) -> Response:
        sandbox = self.sandbox
        remaining = sandbox.faults.outage_remaining()
        return json_response(
            {
                "service": SERVICE_NAME,
                "track_path": TRACK_PATH,
                "token_required": sandbox.token_required,
                "faults": asdict(sandbox.faults.settings),
                "outage_active": remaining > 0,
                "outage_remaining_seconds": _finite_or_none(remaining),
                "kept": len(sandbox.store),
                "capacity": sandbox.store.capacity,
                **sandbox.store.totals().to_json(),
            }
        )


def _fault_response(fault: Fault, request_id: str) -> Response:
    if fault.code is not None:
        return tiktok_answer(fault.code, fault.message, request_id)
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    if fault.status == 503:
        return PlainTextResponse("Service Unavailable", 503, headers=headers)
    return PlainTextResponse("Internal Server Error", fault.status, headers=headers)


def _finite_or_none(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) else None
