"""What the queue holds for one mapped TikTok event (its queue group is its tag's name).

The payload holds no secret: the access token is looked up by tag name when a batch is sent, so a
rotated token applies to events already queued. Personal data in ``event`` is hashed by mapping
before an envelope is built (SPEC 6).

Payload layout: one compact JSON object (``wire_json``) whose ``event`` member comes last and
whose other members say everything delivery needs to know without reading the event::

    {"tag":"<tag>","pixel":"<pixel code>",["test_event_code":"<code>",]
     "event_id":"<the event's event_id>","event":{...}}

So delivery takes the event's JSON as it is, ``payload[start:-1]``, and splices it into the
request body (``RawEnvelope``); parsing and re-encoding every event took 13% of the delivery
process's samples (docs/performance.md).
Payloads of the earlier layout (no ``event_id`` member, ``test_event_code`` after ``event``)
may still be queued after an upgrade: ``RawEnvelope.from_bytes`` parses those in full.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from tiktok_gateway import wire_json
from tiktok_gateway.tags.tiktok.mapping import MappedEvent


def payload_of(
    tag: str, pixel_code: str, test_event_code: str | None, event: dict[str, Any]
) -> bytes:
    """The queue payload of one event (layout above).

    Ingest calls it with a ``MappedEvent``'s fields directly (``queue_item``), without building an
    ``Envelope``: a frozen dataclass costs about a microsecond per event to make.
    """
    record: dict[str, Any] = {"tag": tag, "pixel": pixel_code}
    if test_event_code:
        record["test_event_code"] = test_event_code
    record["event_id"] = str(event.get("event_id", ""))
    record["event"] = event  # last: RawEnvelope cuts it out of the payload
    return wire_json.dumps(record)


def queue_item(mapped: MappedEvent) -> tuple[str, bytes]:
    """``(group, payload)`` of a mapped event: what ingest puts on the queue for it (the group
    is the tag's name: its destination)."""
    return (
        mapped.tag,
        payload_of(mapped.tag, mapped.pixel_code, mapped.test_event_code, mapped.event),
    )


@dataclass(frozen=True, slots=True)
class Envelope:
    """One queued TikTok event with the tag it is for."""

    tag: str
    pixel_code: str
    test_event_code: str | None
    event: dict[str, Any]

    @property
    def group(self) -> str:
        """The queue group: the tag's name."""
        return self.tag

    def to_bytes(self) -> bytes:
        """The payload (layout above)."""
        return payload_of(self.tag, self.pixel_code, self.test_event_code, self.event)

    @classmethod
    def from_bytes(cls, payload: bytes) -> Envelope:
        """The envelope in ``payload`` (either layout), the event parsed.

        Raises ``ValueError``, ``KeyError`` or ``TypeError`` for a payload not made by ``to_bytes``
        (``TypeError`` when it is JSON but not an object, or its event is not an object).
        """
        record = wire_json.loads(payload)
        if not isinstance(record, dict) or not isinstance(record["event"], dict):
            raise TypeError("not an envelope: the payload and its event must be objects")
        return cls(record["tag"], record["pixel"], record.get("test_event_code"), record["event"])


# A JSON string as wire_json writes it: no raw '"', '\' or control character; escapes are two
# bytes ("\"", "\\", "\n", ...) or six ("\u001f"), so "\\." steps over every one of them.
_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
# The members before event_id (the same for every event of a route).
_HEAD = re.compile(
    rb'\{"tag":' + _STRING + rb',"pixel":' + _STRING
    + rb'(?:,"test_event_code":' + _STRING + rb")?",
    re.DOTALL,
)  # fmt: skip
# Where the event_id member starts and where its string ends and the event begins. Inside a JSON
# string every '"' is escaped, so neither can occur in a string: the first occurrence of each is
# the member itself (in a payload of the current layout).
_EVENT_ID_KEY = b',"event_id":"'
_EVENT_KEY = b'","event":{'
_ID_START = len(_EVENT_ID_KEY)
_EVENT_START = len(_EVENT_KEY) - 1  # the event's "{"
_new = tuple.__new__


@lru_cache(maxsize=256)
def _route(head: bytes) -> tuple[str, str, str | None]:
    """``(tag, pixel code, test event code)`` from the members before ``event_id``.

    Raises ``ValueError`` when ``head`` is not those members in that order. Cached: a queue
    holds few routes (tags times test codes), and every event repeats its own.
    """
    if _HEAD.fullmatch(head) is None:
        raise ValueError("not the current layout")
    record = wire_json.loads(head + b"}")
    tag, pixel, code = record["tag"], record["pixel"], record.get("test_event_code")
    if not (isinstance(tag, str) and isinstance(pixel, str) and isinstance(code, str | None)):
        raise TypeError("tag, pixel and test_event_code must be strings")  # _HEAD ensures it
    return tag, pixel, code


def _text(content: bytes) -> str:
    """The value of a JSON string whose bytes between the quotes are ``content``."""
    value = wire_json.loads(b'"' + content + b'"')
    if not isinstance(value, str):  # cannot happen for a JSON string
        raise TypeError("not a JSON string")
    return value


class RawEnvelope(NamedTuple):
    """A queued event as delivery needs it: where it goes, its id, and its JSON unparsed.

    ``event_json`` is the event object's compact JSON, exactly the bytes ``wire_json.dumps``
    writes for it, so a request body can be put together from it without parsing. (A named
    tuple, not a frozen dataclass: the worker makes one per event, and a named tuple is built
    in 0.17-0.2 us against 0.44 us here.)
    """

    tag: str
    pixel_code: str
    test_event_code: str | None
    event_id: str
    event_json: bytes

    # The delivery unit (delivery/destination.Unit):
    @property
    def route(self) -> tuple[str, str | None]:
        """Events of one pixel and test code share a request."""
        return self.pixel_code, self.test_event_code

    @property
    def key(self) -> str:
        return self.event_id

    @property
    def size(self) -> int:
        return len(self.event_json) + 1  # and the comma between two events

    @classmethod
    def from_bytes(cls, payload: bytes) -> RawEnvelope:
        """The envelope in ``payload``; cuts the event out of the current layout, else parses.

        The cut checks the layout (the members in order, the event an object that closes the
        payload), not the event's JSON: that was written by ``to_bytes`` and is trusted. Were it
        damaged (the queue file edited), the request body would not parse: the sandbox answers
        that with 40002 and no event index, so the worker bisects until the event is alone and
        dead-letters it ("rejected", payload kept); an answer without a TikTok code would instead
        retry the whole batch until its retries run out.
        Raises ``ValueError``, ``KeyError`` or ``TypeError`` for a payload not made by ``to_bytes``.
        """
        key = payload.find(_EVENT_ID_KEY)
        end = payload.find(_EVENT_KEY, key)
        if key > 0 and end > 0 and payload[-2:] == b"}}":
            try:
                tag, pixel, code = _route(payload[:key])
            except ValueError:
                pass  # the earlier layout (its event holds an event_id member), or not ours
            else:
                content = payload[key + _ID_START : end]
                event_id = content.decode() if b"\\" not in content else _text(content)
                event = payload[end + _EVENT_START : -1]
                return _new(cls, (tag, pixel, code, event_id, event))  # no Python-level __new__
        envelope = Envelope.from_bytes(payload)  # the earlier layout, or not ours at all
        event_id = str(envelope.event.get("event_id", ""))
        return cls(
            envelope.tag,
            envelope.pixel_code,
            envelope.test_event_code,
            event_id,
            wire_json.dumps(envelope.event),
        )
