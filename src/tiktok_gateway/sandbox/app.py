"""The sandbox as an ASGI app: TikTok's ``POST /open_api/v1.3/event/track/``, Google's
``/g/collect`` and ``/mp/collect`` (``google.py``), and a small admin API.

Routes:

- ``POST /open_api/v1.3/event/track/``: validated like TikTok (``validation``), answered in
  TikTok's shape (HTTP 200 with ``code``, ``message``, ``request_id``, ``data``), except the
  injected HTTP 500 and outage 503 (``faults``). Only the path with the trailing slash exists,
  as at TikTok, so a client that drops it gets a 404 instead of a silent redirect.
- ``GET /sandbox/events?pixel=&limit=``: the accepted events, oldest first, and the totals;
  ``DELETE /sandbox/events`` forgets them and resets the totals.
- ``POST /sandbox/outage?seconds=N`` (no ``seconds``: until ended), ``DELETE /sandbox/outage``.
- Google's side, with faults of its own: ``GET|POST /g/collect``, ``POST /mp/collect``,
  ``GET|DELETE /sandbox/ga4/hits``, ``POST|DELETE /sandbox/ga4/outage`` (``google.py``).
- ``GET /sandbox/``: a short summary of both sides.

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
from tiktok_gateway.sandbox.google import (
    MP_PATH,
    WEB_PATH,
    GoogleSide,
    HitStore,
    fault_response,
    received,
)
from tiktok_gateway.sandbox.store import DEFAULT_CAPACITY, EventStore
from tiktok_gateway.sandbox.validation import validate
from tiktok_gateway.tags.tiktok.payload import TRACK_PATH

SERVICE_NAME = "tiktok-gateway sandbox"
ADMIN_PREFIX = "/sandbox"


@dataclass(slots=True)
class Sandbox:
    """The state behind one sandbox app: what each side accepted and how it misbehaves."""

    store: EventStore
    faults: FaultInjector
    access_token: str | None = field(default=None, repr=False)
    wall_clock: Callable[[], float] = time.time
    google: GoogleSide = field(
        default_factory=lambda: GoogleSide(
            HitStore(), FaultInjector(FaultSettings(), random.Random())
        )
    )

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
    ga4_faults: FaultSettings | None = None,
) -> Starlette:
    """A sandbox app; ``access_token`` ``None`` or empty accepts any token (or none).

    ``faults`` are the TikTok side's, ``ga4_faults`` Google's. ``clock`` (monotonic seconds)
    times outages, ``sleep`` waits the latency, ``wall_clock`` stamps what is kept.
    ``admin_prefix`` is where the ``/events``, ``/outage``, ``/ga4/...`` and summary routes live:
    ``""`` suits an app mounted at ``/sandbox`` inside the gateway.
    """
    injector = FaultInjector(faults or FaultSettings(), random.Random(seed), clock, sleep)
    rng = random.Random(None if seed is None else seed + 1)
    google = GoogleSide(
        HitStore(capacity), FaultInjector(ga4_faults or FaultSettings(), rng, clock, sleep)
    )
    sandbox = Sandbox(EventStore(capacity), injector, access_token or None, wall_clock, google)
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
            Route(WEB_PATH, endpoints.google_web, methods=["GET", "POST"]),
            Route(MP_PATH, endpoints.google_mp, methods=["POST"]),
            Route(f"{admin_prefix}/ga4/hits", endpoints.list_ga4_hits, methods=["GET"]),
            Route(f"{admin_prefix}/ga4/hits", endpoints.clear_ga4_hits, methods=["DELETE"]),
            Route(f"{admin_prefix}/ga4/outage", endpoints.start_ga4_outage, methods=["POST"]),
            Route(f"{admin_prefix}/ga4/outage", endpoints.end_ga4_outage, methods=["DELETE"]),
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
        limit = _limit(request)
        if isinstance(limit, Response):
            return limit
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
        return _start_outage(request, self.sandbox.faults)

    async def end_outage(self, request: Request) -> Response:
        self.sandbox.faults.end_outage()
        return json_response({"outage": False})

    # -- Google's side ---------------------------------------------------------------------

    async def google_web(self, request: Request) -> Response:
        return await self._google(WEB_PATH, request)

    async def google_mp(self, request: Request) -> Response:
        return await self._google(MP_PATH, request)

    async def _google(self, path: str, request: Request) -> Response:
        google = self.sandbox.google
        google.store.count_request()
        fault = google.faults.decide()
        await google.faults.delay()
        if fault is not None:
            google.store.count_faulted()
            return fault_response(fault)
        body = await request.body()
        google.store.add(received(path, request, body, self.sandbox.wall_clock()))
        return Response(status_code=204)

    async def list_ga4_hits(self, request: Request) -> Response:
        limit = _limit(request)
        if isinstance(limit, Response):
            return limit
        store = self.sandbox.google.store
        hits = store.hits(request.query_params.get("measurement_id") or None, limit)
        return json_response(
            {
                "hits": [hit.to_json() for hit in hits],
                "count": len(hits),
                "kept": len(store),
                "capacity": store.capacity,
                **store.totals().to_json(),
            }
        )

    async def clear_ga4_hits(self, request: Request) -> Response:
        store = self.sandbox.google.store
        cleared = len(store)
        store.clear()
        return json_response({"cleared": cleared})

    async def start_ga4_outage(self, request: Request) -> Response:
        return _start_outage(request, self.sandbox.google.faults)

    async def end_ga4_outage(self, request: Request) -> Response:
        self.sandbox.google.faults.end_outage()
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
                "ga4": _google_summary(sandbox.google),
            }
        )


def _limit(request: Request) -> int | Response | None:
    """The ``limit`` query parameter (``None``: all), or the 400 answer for a bad one."""
    text = request.query_params.get("limit")
    if not text:
        return None
    try:
        limit = int(text)
    except ValueError:
        limit = -1
    if limit < 0:
        return _bad_request("invalid_limit", "limit must be an integer >= 0")
    return limit


def _start_outage(request: Request, faults: FaultInjector) -> Response:
    """``POST .../outage?seconds=N`` for one side: answer 503 for N seconds (no N: until ended)."""
    seconds_text = request.query_params.get("seconds")
    seconds = math.inf
    if seconds_text:
        try:
            seconds = float(seconds_text)
        except ValueError:
            seconds = math.nan
        if not 0 < seconds < math.inf:
            return _bad_request("invalid_seconds", "seconds must be a number > 0")
    faults.start_outage(seconds)
    return json_response({"outage": True, "seconds": _finite_or_none(seconds)})


def _fault_response(fault: Fault, request_id: str) -> Response:
    if fault.code is not None:
        return tiktok_answer(fault.code, fault.message, request_id)
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    if fault.status == 503:
        return PlainTextResponse("Service Unavailable", 503, headers=headers)
    return PlainTextResponse("Internal Server Error", fault.status, headers=headers)


def _google_summary(google: GoogleSide) -> dict[str, Any]:
    remaining = google.faults.outage_remaining()
    return {
        "paths": [WEB_PATH, MP_PATH],
        "faults": asdict(google.faults.settings),
        "outage_active": remaining > 0,
        "outage_remaining_seconds": _finite_or_none(remaining),
        "kept": len(google.store),
        **google.store.totals().to_json(),
    }


def _finite_or_none(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) else None
