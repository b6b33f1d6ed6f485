"""The live debug page. STUB: to be implemented."""

from __future__ import annotations

from starlette.routing import BaseRoute

from tiktok_gateway.delivery.ledger import DeliveryResult
from tiktok_gateway.observe import HitRecord


class DebugRecorder:
    """Observer that keeps the latest hits for /debug."""

    def on_hit(self, hit: HitRecord) -> None:
        pass

    def on_delivery(self, result: DeliveryResult) -> None:
        pass


def debug_routes() -> list[BaseRoute]:
    """``/debug`` routes."""
    return []
