"""Builds the gateway's apps, one per listener, and the ASGI app that serves both (SPEC 13).

- **Public** (``GATEWAY_HOST``:``GATEWAY_PORT``, facing every browser): ``/g/collect``,
  ``/mp/collect``, ``/events``, ``/healthz`` and ``/readyz`` (the status alone); 404 for
  anything else. ``GET|POST|OPTIONS /g/collect``, the hot path, goes straight to its handler;
  every other request takes Starlette's routing.
- **Admin** (``GATEWAY_ADMIN_HOST``:``GATEWAY_ADMIN_PORT``, the operator's): ``/debug``,
  ``/admin/*``, ``/metrics``, ``/sandbox/*``, ``/healthz`` and the detailed ``/readyz``, each
  behind ``admin.auth`` (Host check, credentials, CSRF).

One server listens on both sockets; ``Listeners`` hands each request to the app of the socket it
came in on (the ASGI scope's ``server``: the local address). The public app's lifespan starts and
stops the pipeline (order in ``runtime.py``) and shares the runtime with the admin app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Message, Receive, Scope, Send

from tiktok_gateway.admin.api import admin_routes
from tiktok_gateway.admin.auth import AdminOnlyApp, Grant, admin_only
from tiktok_gateway.admin.debug import debug_routes
from tiktok_gateway.admin.health import healthz, ready_status, readyz
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


class Listeners:
    """The ASGI app of both listeners: a request on the admin socket (its ``scope["server"]``
    port is the admin port) goes to ``admin``, every other one (lifespan included) to
    ``public``. ``state`` is the public app's (``app.state.runtime``)."""

    def __init__(self, public: Starlette, admin: Starlette, admin_port: int) -> None:
        self.public, self.admin, self.admin_port = public, admin, admin_port
        self.state = public.state
        self.router = public.router  # tests enter the lifespan through it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] != "lifespan" and server is not None and server[1] == self.admin_port:
            await self.admin(scope, receive, send)
        else:
            await self.public(scope, receive, send)


def _admin(handler: Callable[[Request], Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """An open endpoint as an admin one (``admin_only``)."""

    async def granted(request: Request, grant: Grant) -> Response:
        return await handler(request)

    granted.__name__ = handler.__name__
    return admin_only(granted)


def create_admin_app(sandbox: Starlette | None) -> Starlette:
    """The admin listener's app (module docstring); ``sandbox`` is mounted at ``/sandbox``."""
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", _admin(readyz), methods=["GET"]),
        Route("/metrics", _admin(metrics_endpoint), methods=["GET"]),
        *admin_routes(),
        *debug_routes(),
    ]
    if sandbox is not None:
        routes.append(Mount(SANDBOX_MOUNT, app=AdminOnlyApp(sandbox)))
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


def create_app(
    config: Config,
    *,
    queue: Queue | None = None,
    clock: Clock = wall_clock,
    run_worker: bool = True,
    metrics_dir: Path | None = None,
) -> Listeners:
    """The gateway's two listeners' app. Tests may pass their own ``queue``/``clock`` and drive
    delivery themselves (``run_worker=False``; the worker is ``app.state.runtime.worker``).
    ``serve`` passes the queue it opened, and with several workers the folder their metrics
    are counted in (``metrics_dir``, see ``runtime.start_runtime``)."""
    # Mounted at /sandbox: its track endpoint and its /sandbox/events listing share one store.
    sandbox = create_sandbox_app(admin_prefix="") if needs_sandbox(config) else None
    admin = create_admin_app(sandbox)
    routes: list[BaseRoute] = [
        Route(COLLECT_PATH, ga4_collect, methods=sorted(COLLECT_METHODS)),  # HEAD; 405s
        Route("/mp/collect", mp_collect, methods=["POST"]),
        Route("/events", events_collect, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", ready_status, methods=["GET"]),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await start_runtime(
            config,
            sandbox=sandbox,
            queue=queue,
            clock=clock,
            run_worker=run_worker,
            metrics_dir=metrics_dir,
        )
        app.state.runtime = admin.state.runtime = runtime
        try:
            yield
        finally:
            await stop_runtime(runtime)

    public = GatewayApp(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )
    return Listeners(public, admin, config.gateway.resolved_admin_port)
