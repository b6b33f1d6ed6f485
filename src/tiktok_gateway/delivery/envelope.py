"""What the queue holds for one mapped event, and the delivery group it belongs to.

The payload holds no secret: the access token is looked up by tag name when a batch is sent, so a
rotated token applies to events already queued. Personal data in ``event`` is hashed by mapping
before an envelope is built (SPEC 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tiktok_gateway import wire_json
from tiktok_gateway.tags.tiktok.mapping import MappedEvent

_SEP = "\x1f"


def group_of(tag: str, test_event_code: str | None) -> str:
    """The queue group: one tag and one test code (TikTok requests never mix test codes)."""
    return f"{tag}{_SEP}{test_event_code or ''}"


def split_group(group: str) -> tuple[str, str | None]:
    """``(tag, test_event_code)`` of a group made by ``group_of``."""
    tag, _, code = group.partition(_SEP)
    return tag, code or None


@dataclass(frozen=True, slots=True)
class Envelope:
    """One queued TikTok event with the tag it is for."""

    tag: str
    pixel_code: str
    test_event_code: str | None
    event: dict[str, Any]

    @property
    def group(self) -> str:
        return group_of(self.tag, self.test_event_code)

    @classmethod
    def of(cls, mapped: MappedEvent) -> Envelope:
        return cls(mapped.tag, mapped.pixel_code, mapped.test_event_code, mapped.event)

    def to_bytes(self) -> bytes:
        record = {"tag": self.tag, "pixel": self.pixel_code, "event": self.event}
        if self.test_event_code:
            record["test_event_code"] = self.test_event_code
        return wire_json.dumps(record)

    @classmethod
    def from_bytes(cls, payload: bytes) -> Envelope:
        """The envelope in ``payload``.

        Raises ``ValueError``, ``KeyError`` or ``TypeError`` for a payload not made by ``to_bytes``.
        """
        record = wire_json.loads(payload)
        return cls(record["tag"], record["pixel"], record.get("test_event_code"), record["event"])
