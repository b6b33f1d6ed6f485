"""Builds the gateway's Starlette app; its lifespan starts and stops the pipeline.

The order of start and stop is written in ``runtime.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from tiktok_gateway.admin.api import admin_routes
from tiktok_gateway.admin.auth import AdminOnlyApp
from tiktok_gateway.admin.debug import debug_routes
from tiktok_gateway.admin.health import healthz, readyz
from tiktok_gateway.config import Config
from tiktok_gateway.endpoints.body import error_response
from tiktok_gateway.endpoints.collect import events_collect, ga4_collect, mp_collect
from tiktok_gateway.queue.base import Clock, Queue, wall_clock
from tiktok_gateway.runtime import needs_sandbox, start_runtime, stop_runtime
from tiktok_gateway.sandbox.app import create_sandbox_app
from tiktok_gateway.telemetry import metrics_endpoint

SANDBOX_MOUNT = "/sandbox"

_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) as JSON reasons, like every other 4xx."""
    assert isinstance(exc, HTTPException)
    response = error_response(exc.status_code, _HTTP_ERRORS.get(exc.status_code, "http_error"))
    response.headers.update(exc.headers or {})
    return response


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
        Route("/g/collect", ga4_collect, methods=["GET", "POST", "OPTIONS"]),
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

    return Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )
