"""Metrics (prometheus-client) and structured logs (structlog): one place for both."""

from tiktok_gateway.telemetry.logs import config_secrets, configure_logging, scrub
from tiktok_gateway.telemetry.metrics import Telemetry, metrics_endpoint

__all__ = ["Telemetry", "config_secrets", "configure_logging", "metrics_endpoint", "scrub"]
