"""The live debug page: ``/debug``, its script, its event stream and a JSON listing.

Routes (all behind ``admin.auth``; ``?token=`` accepted by ``GET /debug`` alone):

- ``GET /debug``: the page (HTML; ``?token=<admin token>`` answers 303 + session cookie).
- ``GET /debug/debug.js``: its script.
- ``GET /debug/stream``: ``text/event-stream``; on connect the kept hits (oldest first) as
  ``hit`` events, then live ``hit`` and ``delivery`` events (``recorder`` docstring), a comment
  line every ``KEEPALIVE_SECONDS``. The stream ends when the client goes or the recorder closes.
- ``GET /debug/api/hits``: ``{"hits": [hit view, ...]}``, newest first (``views`` docstring).

When the configuration has ``gateway.debug = false`` (``GATEWAY_DEBUG=false``), every route
answers 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from tiktok_gateway import wire_json
from tiktok_gateway.admin.auth import Grant, authorize, token_login
from tiktok_gateway.admin.page import CSP, render_page
from tiktok_gateway.admin.page_js import SCRIPT
from tiktok_gateway.admin.recorder import DebugRecorder, Subscription
from tiktok_gateway.admin.views import json_answer
from tiktok_gateway.endpoints.access import runtime_of
from tiktok_gateway.endpoints.body import error_response

__all__ = ["DebugRecorder", "debug_routes", "sse_stream"]

KEEPALIVE_SECONDS: Final = 15.0
POLL_SECONDS: Final = 1.0
_SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def debug_enabled(request: Request) -> bool:
    """False when the configuration turned the debug page off (``gateway.debug``)."""
    return runtime_of(request).config.gateway.debug


def _admit(request: Request) -> Response | Grant:
    if not debug_enabled(request):
        return error_response(404, "not_found", "the debug page is turned off")
    return authorize(request)


def _event(name: str, data: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + wire_json.dumps(data) + b"\n\n"


async def sse_stream(
    recorder: DebugRecorder,
    disconnected: Callable[[], Awaitable[bool]],
    *,
    poll: float = POLL_SECONDS,
    keepalive: float = KEEPALIVE_SECONDS,
) -> AsyncIterator[bytes]:
    """The event stream of ``/debug/stream`` for one client (module docstring).

    Subscribes before taking the snapshot (in the same step), so no hit is missed or doubled.
    Every ``poll`` seconds without a message it asks ``disconnected`` and checks the recorder.
    """
    subscription: Subscription = recorder.subscribe()
    try:
        yield b"retry: 2000\n\n"
        for view in recorder.hits():
            yield _event("hit", view)
        quiet = 0.0
        while not recorder.closed:
            try:
                async with asyncio.timeout(poll):
                    name, data = await subscription.queue.get()
            except TimeoutError:
                if await disconnected():
                    return
                quiet += poll
                if quiet >= keepalive:
                    quiet = 0.0
                    yield b": keepalive\n\n"
                continue
            if name == "close":
                return
            quiet = 0.0
            yield _event(name, data)
    finally:
        recorder.unsubscribe(subscription)


async def debug_page(request: Request) -> Response:
    """``GET /debug``: the page, or the ``?token=`` login redirect."""
    if not debug_enabled(request):
        return error_response(404, "not_found", "the debug page is turned off")
    login = token_login(request)
    if login is not None:
        return login
    grant = authorize(request)
    if isinstance(grant, Response):
        return grant
    destinations = [(d.name, d.kind) for d in runtime_of(request).destinations.values()]
    headers = {**_SECURITY_HEADERS, "Content-Security-Policy": CSP}
    return HTMLResponse(render_page(destinations), headers=headers)


async def debug_script(request: Request) -> Response:
    """``GET /debug/debug.js``."""
    grant = _admit(request)
    if isinstance(grant, Response):
        return grant
    return Response(SCRIPT, media_type="text/javascript", headers=_SECURITY_HEADERS)


async def debug_stream(request: Request) -> Response:
    """``GET /debug/stream``: server-sent events of hits and deliveries."""
    grant = _admit(request)
    if isinstance(grant, Response):
        return grant
    stream = sse_stream(runtime_of(request).debug, request.is_disconnected)
    headers = {**_SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


async def debug_hits(request: Request) -> Response:
    """``GET /debug/api/hits``: the kept hits, newest first."""
    grant = _admit(request)
    if isinstance(grant, Response):
        return grant
    hits = runtime_of(request).debug.hits()
    hits.reverse()
    return json_answer({"hits": hits}, headers=_SECURITY_HEADERS)


def debug_routes() -> list[BaseRoute]:
    """``/debug`` routes."""
    return [
        Route("/debug", debug_page, methods=["GET"]),
        Route("/debug/debug.js", debug_script, methods=["GET"]),
        Route("/debug/stream", debug_stream, methods=["GET"]),
        Route("/debug/api/hits", debug_hits, methods=["GET"]),
    ]
