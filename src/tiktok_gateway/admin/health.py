"""``/healthz`` (the process answers) and ``/readyz`` (it can take and deliver hits)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from tiktok_gateway.endpoints.access import runtime_of
from tiktok_gateway.queue.base import QueueUnavailable, stats_within_timeout


async def healthz(request: Request) -> JSONResponse:
    """200 while the process serves requests."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """200 when the queue answers and no tag is paused; else 503 with the reasons.

    A paused tag (TikTok refused its token or pixel permission) is a configuration problem the
    operator must fix; its events stay queued meanwhile. A tag backing off (TikTok or the
    network failing its requests) is not this process's problem: it stays ready, so a load
    balancer keeps sending hits, and the body lists the tag under ``backing_off``.
    """
    runtime = runtime_of(request)
    problems: list[str] = []
    body: dict[str, Any] = {}
    if not runtime.accepting:
        problems.append("shutting down")
    try:
        body["queue"] = (await stats_within_timeout(runtime.queue)).to_json()
    except QueueUnavailable as exc:  # its message names the cause, never a secret
        problems.append(f"queue unavailable: {exc}")
    except Exception as exc:  # any storage failure means "not ready", never a 500
        problems.append(f"queue unavailable: {type(exc).__name__}")
    if runtime.worker is not None:
        for tag, state in runtime.worker.paused.items():
            problems.append(f"tag {tag} paused: TikTok code {state.code}: {state.message}")
        backing_off = runtime.worker.backing_off.items()
        if backing_off:
            body["backing_off"] = {
                tag: f"{state.reason}: {state.failures} failed requests in a row"
                for tag, state in sorted(backing_off)
            }
    body["status"] = "unready" if problems else "ready"
    body["problems"] = problems
    return JSONResponse(body, status_code=503 if problems else 200)
