"""The TikTok kind (``tags/kind.py``): each ``[[tags]]`` entry (or the ``TIKTOK_*`` tag) is one
destination, delivering mapped events to the Events API, or to the built-in sandbox when it has
no access token."""

from __future__ import annotations

from tiktok_gateway.config import Config
from tiktok_gateway.delivery.destination import Destination
from tiktok_gateway.ingest import Collector
from tiktok_gateway.tags.kind import Kind
from tiktok_gateway.tags.tiktok.check import describe_tag, target_name
from tiktok_gateway.tags.tiktok.collector import TikTokCollector
from tiktok_gateway.tags.tiktok.destination import TikTokDestination, tiktok_limits
from tiktok_gateway.tags.tiktok.mapping import KIND as NAME
from tiktok_gateway.tags.tiktok.views import EXPLANATIONS, item_view, placement_view

SANDBOX_LISTING = "/sandbox/events"


def destinations(config: Config, sandbox_url: str) -> list[Destination]:
    """One destination per tag; a tag without a token posts to ``sandbox_url``."""
    gateway = config.gateway
    limits = tiktok_limits(
        gateway.max_in_flight, gateway.event_expiry_seconds, gateway.request_timeout_seconds
    )
    return [
        TikTokDestination(tag, tag.api_url if tag.access_token else sandbox_url, limits)
        for tag in config.tags
    ]


def collector(config: Config) -> Collector | None:
    return TikTokCollector(config.tags) if config.tags else None


def uses_sandbox(config: Config) -> bool:
    """True when some tag has no access token, so its events go to the built-in sandbox."""
    return any(tag.access_token is None for tag in config.tags)


def describe(config: Config) -> list[str]:
    lines: list[str] = []
    if config.placeholder_pixel:
        lines.append("note: TIKTOK_PIXEL_CODE is not set; a placeholder pixel code is used")
    for tag in config.tags:
        lines.append("")
        lines.extend(describe_tag(tag))
    return lines


def startup(config: Config, admin_url: str) -> list[str]:
    lines = [
        f"  tag {tag.name}: pixel {tag.pixel_code} -> {target_name(tag)}" for tag in config.tags
    ]
    if uses_sandbox(config):
        lines.append("See what the TikTok sandbox accepted:")
        lines.append(f"  curl -s {admin_url}{SANDBOX_LISTING}")
    return lines


def secrets(config: Config) -> list[str]:
    return [tag.access_token.get_secret_value() for tag in config.tags if tag.access_token]


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
