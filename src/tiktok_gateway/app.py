"""Builds the gateway's Starlette app; its lifespan starts and stops the pipeline.

The order of start and stop is written in ``runtime.py``. ``GET|POST|OPTIONS /g/collect``, the
hot path, goes straight to its handler; every other request takes Starlette's routing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Message, Receive, Scope, Send

from tiktok_gateway.admin.api import admin_routes
from tiktok_gateway.admin.auth import AdminOnlyApp
from tiktok_gateway.admin.debug import debug_routes
from tiktok_gateway.admin.health import healthz, readyz
from tiktok_gateway.admin.metrics import metrics_endpoint
from tiktok_gateway.config import Config
from tiktok_gateway.endpoints.body import error_response
from tiktok_gateway.endpoints.collect import events_collect, ga4_collect, mp_collect
from tiktok_gateway.queue.base import Clock, Queue, wall_clock
from tiktok_gateway.runtime import needs_sandbox, start_runtime, stop_runtime
from tiktok_gateway.sandbox.app import create_sandbox_app

log = logging.getLogger(__name__)

SANDBOX_MOUNT = "/sandbox"
COLLECT_PATH = "/g/collect"
COLLECT_METHODS = frozenset({"GET", "POST", "OPTIONS"})

_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) as JSON reasons, like every other 4xx."""
    assert isinstance(exc, HTTPException)
    response = error_response(exc.status_code, _HTTP_ERRORS.get(exc.status_code, "http_error"))
    response.headers.update(exc.headers or {})
    return response


class GatewayApp(Starlette):
    """Starlette, with one shortcut: ``GET|POST|OPTIONS /g/collect`` calls ``ga4_collect``
    directly instead of passing Starlette's two error middlewares, the route table and the
    endpoint wrapper (measured: 30-60 us of the ~250 us CPU a hit costs, bench notes in
    docs/performance.md). Other methods on that path still get Starlette's 405.

    What the skipped layers did is done here: ``scope["app"]`` (``runtime_of`` reads it), and
    an unexpected exception becomes a JSON 500 and a logged traceback; the handler itself never
    raises for client input (SPEC 10.1).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == COLLECT_PATH
            and scope["method"] in COLLECT_METHODS
        ):
            scope["app"] = self
            await _collect(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


async def _collect(scope: Scope, receive: Receive, send: Send) -> None:
    started = False

    async def tracked(message: Message) -> None:
        nonlocal started
        started = True
        await send(message)

    try:
        response = await ga4_collect(Request(scope, receive))
        await response(scope, receive, tracked)
    except ClientDisconnect:  # gone before its body arrived: no one to answer, nothing queued
        return
    except Exception:
        log.exception("unexpected error in %s", COLLECT_PATH)
        if not started:  # else the client sees the connection end, as Starlette does it
            await error_response(500, "internal_error")(scope, receive, send)


def create_app(
    config: Config,
    *,
    queue: Queue | None = None,
    clock: Clock = wall_clock,
    run_worker: bool = True,
) -> Starlette:
    """The gateway app. Tests may pass their own ``queue``/``clock`` and drive delivery
    themselves (``run_worker=False``; the worker is ``app.state.runtime.worker``)."""
    # Mounted at /sandbox: its track endpoint and its /sandbox/events listing share one store.
    sandbox = create_sandbox_app(admin_prefix="") if needs_sandbox(config) else None
    routes: list[BaseRoute] = [
        Route(COLLECT_PATH, ga4_collect, methods=sorted(COLLECT_METHODS)),  # HEAD; 405s
        Route("/mp/collect", mp_collect, methods=["POST"]),
        Route("/events", events_collect, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        *admin_routes(),
        *debug_routes(),
    ]
    if sandbox is not None:
        routes.append(Mount(SANDBOX_MOUNT, app=AdminOnlyApp(sandbox)))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await start_runtime(
            config, sandbox=sandbox, queue=queue, clock=clock, run_worker=run_worker
        )
        app.state.runtime = runtime
        try:
            yield
        finally:
            await stop_runtime(runtime)

    return GatewayApp(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )
