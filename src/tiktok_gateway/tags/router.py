"""Runs every configured tag whose trigger fires on an event (SPEC 5.8)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tiktok_gateway.tags.tiktok.mapping import DroppedEvent, MappedEvent, map_event
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings
from tiktok_gateway.tags.triggers import fires

Outcome = MappedEvent | DroppedEvent


def route(
    data: Mapping[str, Any], tags: Sequence[TikTokTagSettings], *, explain: bool = False
) -> list[Outcome]:
    """One outcome per tag that fires on ``data``; an empty list when no trigger matches."""
    return [map_event(data, tag, explain=explain) for tag in tags if fires(tag.trigger, data)]


def group_requests(
    mapped: Iterable[MappedEvent],
) -> dict[tuple[str, str | None], list[MappedEvent]]:
    """Events grouped by (pixel, test event code): one Events API request each, order kept."""
    groups: dict[tuple[str, str | None], list[MappedEvent]] = {}
    for event in mapped:
        groups.setdefault((event.pixel_code, event.test_event_code), []).append(event)
    return groups
