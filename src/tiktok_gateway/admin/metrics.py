"""``GET /metrics``: the Prometheus text format of ``telemetry.metrics.Telemetry``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tiktok_gateway.delivery.destination import kinds_of
from tiktok_gateway.endpoints.access import runtime_of
from tiktok_gateway.telemetry.metrics import CONTENT_TYPE_LATEST


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics`` in the Prometheus text format, state gauges read now. With several
    worker processes, whichever takes the request answers for all of them (counters and
    histograms added up; ``telemetry/metrics.py``)."""
    runtime = runtime_of(request)
    kinds = kinds_of(runtime.destinations)
    body = await runtime.telemetry.scrape(runtime.queue, runtime.worker, kinds, runtime.admission)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
