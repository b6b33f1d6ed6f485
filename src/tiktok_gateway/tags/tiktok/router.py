"""Runs every configured tag whose trigger fires on an event (SPEC 5.8).

The trigger conditions are evaluated here rather than next to their settings model (a pydantic
model, which mypyc cannot compile) because this runs for every tag and every event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from tiktok_gateway.event_data import EventData
from tiktok_gateway.sources.ga4_params import MEASUREMENT_ID_KEY
from tiktok_gateway.tags.tiktok import fields
from tiktok_gateway.tags.tiktok.mapping import DroppedEvent, MappedEvent, event_name_of, map_event
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings
from tiktok_gateway.tags.triggers import TriggerSettings

# What a tag made of an event (both are placements, ingest.Placement).
TagResult = MappedEvent | DroppedEvent


def hostname_of(data: EventData) -> str | None:
    """The lower-cased host of the event's page URL (``fields.PAGE_URL``), or ``None``."""
    found = fields.lookup(data, fields.PAGE_URL)
    if found is None or not isinstance(found[1], str):
        return None
    try:
        return urlsplit(found[1]).hostname
    except ValueError:
        return None


def fires(trigger: TriggerSettings, data: EventData) -> bool:
    """True when every condition of ``trigger`` holds for the event ``data``."""
    found = event_name_of(data)
    name = found[1] if found else None
    if name is not None and name in trigger.exclude_events:
        return False
    if trigger.include_events and name not in trigger.include_events:
        return False
    if trigger.measurement_ids and data.get(MEASUREMENT_ID_KEY) not in trigger.measurement_ids:
        return False
    if trigger.hostnames:
        host = hostname_of(data)
        if host is None or host not in trigger.hostnames:
            return False
    return True


def route(
    data: EventData, tags: Sequence[TikTokTagSettings], *, explain: bool = False
) -> list[TagResult]:
    """One outcome per tag that fires on ``data``; an empty list when no trigger matches."""
    return [map_event(data, tag, explain=explain) for tag in tags if fires(tag.trigger, data)]


def group_requests(
    mapped: Iterable[MappedEvent],
) -> dict[tuple[str, str, str | None], list[MappedEvent]]:
    """Events grouped by (tag, pixel, test event code), order kept: one Events API request each,
    as delivery batches them (two tags never share a request, even with the same pixel: each
    sends with its own access token)."""
    groups: dict[tuple[str, str, str | None], list[MappedEvent]] = {}
    for event in mapped:
        key = (event.tag, event.pixel_code, event.test_event_code)
        groups.setdefault(key, []).append(event)
    return groups
