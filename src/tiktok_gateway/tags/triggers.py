"""Which tags fire for an event (SPEC 5.8).

A trigger holds up to four conditions; every condition that is present must hold, and an empty
list matches everything. Event names are compared before mapping, in whichever vocabulary the
event carries (``x-ttq-event-name`` first, else the GA4 ``event_name``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field


class TriggerSettings(BaseModel):
    """The conditions under which one tag fires."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    measurement_ids: tuple[str, ...] = Field(
        default=(), description="GA4 measurement ids (G-...) to fire on; empty: any."
    )
    hostnames: tuple[str, ...] = Field(
        default=(), description="Page hostnames to fire on (exact, case-insensitive); empty: any."
    )
    include_events: tuple[str, ...] = Field(
        default=(), description="Event names to fire on; empty: any."
    )
    exclude_events: tuple[str, ...] = Field(
        default=("user_engagement",),
        description="Event names never to fire on (gtag sends user_engagement on page leave).",
    )


def event_name_of(data: Mapping[str, Any]) -> str | None:
    """The event's name before mapping: ``x-ttq-event-name``, else ``event_name``."""
    for key in ("x-ttq-event-name", "event_name"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def hostname_of(data: Mapping[str, Any]) -> str | None:
    """The lower-cased host of the event's page URL, or ``None`` when it has none."""
    for key in ("x-ttq-ct-page-url", "page_location"):
        url = data.get(key)
        if isinstance(url, str) and url:
            try:
                return urlsplit(url).hostname
            except ValueError:
                return None
    return None


def fires(trigger: TriggerSettings, data: Mapping[str, Any]) -> bool:
    """True when every condition of ``trigger`` holds for the event ``data``."""
    name = event_name_of(data)
    if name is not None and name in trigger.exclude_events:
        return False
    if trigger.include_events and name not in trigger.include_events:
        return False
    if trigger.measurement_ids and data.get("x-ga-measurement_id") not in trigger.measurement_ids:
        return False
    if trigger.hostnames:
        host = hostname_of(data)
        if host is None or host not in {h.lower() for h in trigger.hostnames}:
            return False
    return True
