"""Metrics (prometheus-client) and structured logs (structlog): one place for both."""

from tiktok_gateway.telemetry.logs import configure_logging, scrub
from tiktok_gateway.telemetry.metrics import Telemetry

__all__ = ["Telemetry", "configure_logging", "scrub"]
