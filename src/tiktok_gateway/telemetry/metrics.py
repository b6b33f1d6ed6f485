"""Prometheus metrics of the gateway. STUB: to be implemented."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tiktok_gateway.delivery.ledger import DeliveryResult
from tiktok_gateway.observe import HitRecord


class Telemetry:
    """Observer that counts hits and deliveries (and logs them)."""

    def on_hit(self, hit: HitRecord) -> None:
        pass

    def on_delivery(self, result: DeliveryResult) -> None:
        pass


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics`` in the Prometheus text format."""
    return Response("", media_type="text/plain")
