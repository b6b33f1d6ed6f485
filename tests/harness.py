"""Running the gateway app in tests: its lifespan, an in-process HTTP client, a memory queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from tiktok_gateway.app import Listeners, create_app
from tiktok_gateway.config import Config, load_config
from tiktok_gateway.queue.base import Clock, Queue, wall_clock
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.runtime import Runtime

T = TypeVar("T")

# A minimal GA4 page_view hit: what the endpoint and telemetry tests send.
HIT = "v=2&tid=G-1&cid=1.2&_p=7&_s=1&en=page_view&dl=https%3A%2F%2Fshop.example.com%2F"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# Where the in-process clients address the two listeners (SPEC 13): the public one as a shop's
# own host name over TLS, the admin one as an operator on the machine (its default port).
PUBLIC_URL = "https://shop.example.com"
ADMIN_URL = "http://127.0.0.1:8081"


@dataclass
class Running:
    app: Listeners
    client: httpx.AsyncClient  # the public listener
    queue: Queue
    admin: httpx.AsyncClient  # the admin listener, from the same peer

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime


# Tests of the TikTok side run without GA4 forwarding (so queue depths count TikTok events);
# GA4 tests turn it on, towards the built-in sandbox: GA4_SANDBOX.
NO_GA4 = {"GATEWAY_GA4_FORWARD": "false"}
GA4_SANDBOX = {"GATEWAY_GA4_FORWARD": "true", "GATEWAY_GA4_ENDPOINT": "sandbox"}


def config_of(environ: Mapping[str, str] | None = None) -> Config:
    """The quick-start configuration (pixel ``CTEST``, no token: the built-in sandbox), GA4
    forwarding off unless ``environ`` turns it on."""
    return load_config(None, {"TIKTOK_PIXEL_CODE": "CTEST", **NO_GA4, **(environ or {})})


@asynccontextmanager
async def running(
    config: Config | None = None,
    *,
    queue: Queue | None = None,
    clock: Clock = wall_clock,
    peer: str = "203.0.113.9",
) -> AsyncIterator[Running]:
    """The app with its lifespan entered (delivery worker not running: tests drain it); both
    clients connect from ``peer``."""
    queue = queue or MemoryQueue(clock=clock)
    config = config or config_of()
    assert config.gateway.resolved_admin_port == 8081, "ADMIN_URL is the default admin port"
    app = create_app(config, queue=queue, clock=clock, run_worker=False)
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client,
        httpx.AsyncClient(transport=transport, base_url=ADMIN_URL) as admin,
    ):
        yield Running(app, client, queue, admin)
