"""``/healthz`` (the process answers) and ``/readyz`` (it can take and deliver hits).

The public listener's ``/readyz`` (``ready_status``) says only ``{"status": "ready"}`` or 503
``{"status": "unready"}``: a load balancer needs no more, and the internet gets no look at the
queue or the destinations. The admin listener's (``readyz``, behind ``admin.auth``) gives the
reasons, the queue's numbers and the destinations backing off.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from tiktok_gateway.endpoints.access import runtime_of
from tiktok_gateway.queue.base import QueueUnavailable, stats_within_timeout


async def healthz(request: Request) -> JSONResponse:
    """200 while the process serves requests."""
    return JSONResponse({"status": "ok"})


async def ready_status(request: Request) -> JSONResponse:
    """The public ``/readyz``: the status alone, 200 or 503 as ``readyz`` decides."""
    answer = await _readiness(request)
    return JSONResponse({"status": answer["status"]}, status_code=answer["code"])


async def readyz(request: Request) -> JSONResponse:
    """The admin ``/readyz``: 200 when ready, 503 with the reasons (see ``_readiness``)."""
    answer = await _readiness(request)
    code = answer.pop("code")
    return JSONResponse(answer, status_code=code)


async def _readiness(request: Request) -> dict[str, Any]:
    """Ready means "this process can take hits": the queue answers, can be written (no put
    failed since the last write that went through: ``queue/admission.py`` probes one while they
    fail) and is under its caps, and the delivery worker reaches it; else the reasons. Each
    recovers by itself (a write probe that goes through, delivery draining the queue under its
    caps, the worker's next successful call).

    What a destination does is not readiness: a destination backing off (it or the network
    failing) or paused (TikTok refused a tag's token or pixel permission: a configuration problem
    the operator must fix) keeps its items queued, and the other destinations go on. Taking the
    process out of a load balancer for it would refuse every hit, for every destination, on
    every replica with the same settings. The admin body lists them under ``paused`` and
    ``backing_off``; ``gateway_destination_paused`` in ``/metrics`` is what to alert on.
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
    await runtime.admission.recheck()  # while writes fail: do they work again?
    problems += runtime.admission.problems()
    if runtime.worker is not None:
        if runtime.worker.health.failing:
            problems.append("the delivery worker cannot reach the queue")
        paused = runtime.worker.paused.items()
        if paused:
            body["paused"] = {
                name: (f"code {state.code}: " if state.code is not None else "") + state.message
                for name, state in sorted(paused)
            }
        backing_off = runtime.worker.backing_off.items()
        if backing_off:
            body["backing_off"] = {
                tag: f"{state.reason}: {state.failures} failed requests in a row"
                for tag, state in sorted(backing_off)
            }
    body["status"] = "unready" if problems else "ready"
    body["problems"] = problems
    body["code"] = 503 if problems else 200
    return body
