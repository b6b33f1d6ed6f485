"""The GA4 kind (``tags/kind.py``): forwarding every accepted GA4 hit to Google Analytics, as
one destination named ``ga4`` (SPEC 12)."""

from __future__ import annotations

from tiktok_gateway.config import GA4_DESTINATION, Config
from tiktok_gateway.delivery.destination import Destination
from tiktok_gateway.ingest import Collector
from tiktok_gateway.tags.ga4.collector import GA4Collector
from tiktok_gateway.tags.ga4.destination import KIND as NAME
from tiktok_gateway.tags.ga4.destination import GA4Destination, ga4_limits
from tiktok_gateway.tags.ga4.http1 import Http1Sender
from tiktok_gateway.tags.ga4.settings import AUTO, SANDBOX
from tiktok_gateway.tags.ga4.views import EXPLANATIONS, item_view, placement_view
from tiktok_gateway.tags.kind import Kind

SANDBOX_LISTING = "/sandbox/ga4/hits"


def destinations(config: Config, sandbox_url: str) -> list[Destination]:
    if not config.ga4.forward:
        return []
    ga4 = config.ga4
    limits = ga4_limits(ga4, config.gateway.request_timeout_seconds)
    # The built-in sandbox answers in process through the runtime's httpx client; anything else
    # is on the network: HTTP/1.1 of our own over httptools (http1.py says why).
    network = None if ga4.endpoint == SANDBOX else Http1Sender(ga4.max_in_flight)
    return [GA4Destination(GA4_DESTINATION, ga4, sandbox_url, limits, network)]


def collector(config: Config) -> Collector | None:
    return GA4Collector(GA4_DESTINATION, config.ga4) if config.ga4.forward else None


def uses_sandbox(config: Config) -> bool:
    return config.ga4.forward and config.ga4.endpoint == SANDBOX


def _where(config: Config) -> str:
    ga4 = config.ga4
    if ga4.endpoint == AUTO:
        return "Google Analytics (region1.google-analytics.com when the hit asks for it, else www)"
    if ga4.endpoint == SANDBOX:
        return "the built-in sandbox"
    return ga4.endpoint


def describe(config: Config) -> list[str]:
    """``check``'s lines: on or off, endpoint, allow-list, IP mode."""
    ga4 = config.ga4
    if not ga4.forward:
        return ["", "GA4 forwarding: off (GA4 hits reach TikTok only; Google gets nothing)"]
    ids = ", ".join(ga4.measurement_ids) if ga4.measurement_ids else "all"
    rows = [
        ("forwards to", _where(config)),
        ("measurement ids", ids),
        ("IP mode", f"{ga4.ip_mode} (none when analytics_storage is denied)"),
        ("max age", f"{ga4.max_age_hours:g} h"),
        ("at once", f"{ga4.max_in_flight} requests"),
    ]
    lines = ["", "GA4 forwarding: on"]
    lines.extend(f"  {label + ':':<18}{value}" for label, value in rows)
    return lines


def startup(config: Config, admin_url: str) -> list[str]:
    """``serve``'s lines: where GA4 hits go, and where to look when that is the sandbox."""
    ga4 = config.ga4
    if not ga4.forward:
        return ["GA4 hits: not forwarded to Google (GATEWAY_GA4_FORWARD=false)"]
    ids = f" (measurement ids {', '.join(ga4.measurement_ids)})" if ga4.measurement_ids else ""
    lines = [f"GA4 hits: forwarded to {_where(config)}{ids}, IP mode {ga4.ip_mode}"]
    if ga4.endpoint == SANDBOX:
        lines.append("See what the GA4 sandbox received:")
        lines.append(f"  curl -s {admin_url}{SANDBOX_LISTING}")
    return lines


def secrets(config: Config) -> list[str]:
    return []  # a Measurement Protocol api_secret is the gateway's (GATEWAY_MP_API_SECRETS)


KIND = Kind(
    name=NAME,
    destinations=destinations,
    collector=collector,
    uses_sandbox=uses_sandbox,
    describe=describe,
    startup=startup,
    secrets=secrets,
    placement_view=placement_view,
    item_view=item_view,
    explanations=EXPLANATIONS,
)
