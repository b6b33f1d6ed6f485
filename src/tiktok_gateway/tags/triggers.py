"""The conditions under which a tag fires (SPEC 5.8); ``tags.tiktok.router.fires`` evaluates them.

A trigger holds up to four conditions; every condition that is present must hold, and an empty
list matches everything. Event names are compared before mapping, in whichever vocabulary the
event carries (``x-ttq-event-name`` first, else the GA4 ``event_name``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


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

    @field_validator("hostnames")
    @classmethod
    def _lower_case(cls, hostnames: tuple[str, ...]) -> tuple[str, ...]:
        # Once here, not for every event: hostnames compare case-insensitively.
        return tuple(host.lower() for host in hostnames)
