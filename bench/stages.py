"""Bench-only apps that stop after one stage of the gateway's ``/g/collect`` path.

``bench/ingest.py --stages`` runs them beside the gateway and the bare app, on the same uvicorn
settings, so one run shows what each stage costs against a bare 204 (docs/performance.md):

- ``PARSE``: read the body, resolve the request context, parse the hit (the gateway's own
  functions); 204, or 400 for an unusable hit or line.
- ``MAP``: and route every event through the configured tags, serialising what they map to
  (``Ingest.accept`` with a queue that keeps nothing).
- ``COMMIT``: and commit those to the configured durable queue (group commit), as the gateway
  does before it answers. Nothing is delivered.

What the gateway adds to ``COMMIT``: the observers (metrics, the ``hit`` log line, /debug), the
answer's request id, ``ttclid`` cookie and CORS headers, and delivery to TikTok. The apps read the
gateway's configuration from the environment, as ``serve`` does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tiktok_gateway.config import load_config
from tiktok_gateway.endpoints.collect import query_of, raw_query, request_context
from tiktok_gateway.errors import InputError
from tiktok_gateway.ingest import Arrival, Ingest
from tiktok_gateway.queue.base import NewItem, Queue
from tiktok_gateway.queue.factory import open_queue
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.runtime import build_collectors
from tiktok_gateway.sources.ga4_web import parse_hit
from tiktok_gateway.sources.request_context import header_map, parse_trusted_proxies

STAGES = ("parse", "map", "commit")


class _Discard(MemoryQueue):
    """A queue that keeps nothing: ``MAP`` measures ``Ingest.accept`` without its commit."""

    async def put(self, items: Sequence[NewItem]) -> None:
        return None


def _app(stage: str) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        config = load_config()
        app.state.trusted = parse_trusted_proxies(config.gateway.trusted_proxies)
        queue: Queue = _Discard()
        if stage == "commit":
            queue = await open_queue(config.gateway.resolved_queue_url)
        app.state.ingest = Ingest(build_collectors(config), queue) if stage != "parse" else None
        try:
            yield
        finally:
            await queue.close()

    async def collect(request: Request) -> Response:
        state = request.app.state
        body = await request.body() if request.method == "POST" else b""
        headers = header_map(request.headers.items())
        context = request_context(request, state.trusted, time.time(), headers)
        try:
            parsed = parse_hit(query_of(request), body, context)
        except InputError:
            return Response(status_code=400)
        if state.ingest is not None:
            arrival = Arrival("ga4", "bench", raw_query(request), body, headers, context)
            await state.ingest.accept(arrival, parsed.events)
        return Response(status_code=400 if parsed.errors else 204)

    route = Route("/g/collect", collect, methods=["GET", "POST"])
    return Starlette(routes=[route], lifespan=lifespan)


PARSE, MAP, COMMIT = (_app(stage) for stage in STAGES)
