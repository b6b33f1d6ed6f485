"""The bare app ``bench/ingest.py`` measures the gateway against: reads the body, answers 204.

A module of its own, importing nothing but Starlette, so the bare server's memory and start-up
hold nothing of the benchmark or the gateway.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def _answer_204(request: Request) -> Response:
    await request.body()
    return Response(status_code=204)


BARE = Starlette(routes=[Route("/g/collect", _answer_204, methods=["GET", "POST"])])


def serve_bare(kind: str, port: int) -> None:
    """Serve ``BARE`` on ``port`` under uvicorn's httptools protocol: stock (``kind`` "base") or
    bounded as ``serve`` runs it (``endpoints/limits.py``), for bench/header_bomb.py and
    bench/protocol_cost.py. Imports the gateway only when asked to."""
    import uvicorn

    from tiktok_gateway.endpoints.limits import HttpLimits, limited_protocol

    http = "httptools" if kind == "base" else limited_protocol(HttpLimits(max_connections=10_000))
    uvicorn.run(BARE, port=port, http=http, loop="uvloop", log_config=None, access_log=False)
