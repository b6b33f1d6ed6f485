"""Metrics (prometheus-client) and structured logs (structlog): one place for both."""

from tiktok_gateway.telemetry.metrics import Telemetry, metrics_endpoint

__all__ = ["Telemetry", "metrics_endpoint"]
