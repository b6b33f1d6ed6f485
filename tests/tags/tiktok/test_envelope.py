"""Queue payloads: the layout ``Envelope.to_bytes`` writes, and reading it without the parse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tiktok_gateway import wire_json
from tiktok_gateway.tags.tiktok.envelope import Envelope, RawEnvelope, queue_item
from tiktok_gateway.tags.tiktok.mapping import MappedEvent

EVENT = {"event": "Purchase", "event_time": 1_700_000_000, "event_id": "order-1"}

texts = st.text(max_size=12)  # quotes, backslashes, control characters, any non-ASCII
# What mapping emits: 64-bit integers and finite floats (orjson writes inf as null).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)
events = st.dictionaries(texts, json_values, max_size=4) | st.builds(
    lambda extra, event_id: {**extra, "event_id": event_id},
    st.dictionaries(texts, json_values, max_size=3),
    texts,
)


# Strings made of the byte sequences the cut looks for, quotes and backslashes: JSON escapes them
# inside a string, so the cut must never take one of them for a member.
tricky = st.lists(
    st.sampled_from([',"event_id":"', '","event":{', '"', "\\", "}}", "event", "event_id"]) | texts,
    max_size=4,
).map("".join)


def parsed(raw: RawEnvelope) -> tuple[Any, ...]:
    event = json.loads(raw.event_json)
    return raw.tag, raw.pixel_code, raw.test_event_code, raw.event_id, event


@given(tag=texts, pixel=texts, code=st.none() | texts, event=events)
def test_the_cut_reads_what_to_bytes_wrote(
    tag: str, pixel: str, code: str | None, event: dict[str, Any]
) -> None:
    payload = Envelope(tag, pixel, code, event).to_bytes()
    raw = RawEnvelope.from_bytes(payload)
    assert parsed(raw) == (tag, pixel, code or None, str(event.get("event_id", "")), event)
    assert raw.event_json == wire_json.dumps(event)  # the very bytes a body would hold
    assert Envelope.from_bytes(payload) == Envelope(tag, pixel, code or None, event)


@given(
    tag=tricky,
    pixel=tricky,
    code=st.none() | tricky,
    event_id=tricky,
    extra=st.dictionaries(
        tricky, tricky | json_values | st.dictionaries(tricky, tricky), max_size=3
    ),
)
@example(  # the members the cut looks for, in strings and (as in the earlier layout) in the event
    tag='","event":{',
    pixel=',"event_id":"',
    code=None,
    event_id='e","event":{"',
    extra={"a": "b", "event": {"event_id": "x"}},
)
def test_the_cut_is_not_fooled_by_member_names_inside_strings(
    tag: str, pixel: str, code: str | None, event_id: str, extra: dict[str, Any]
) -> None:
    event = {**extra, "event_id": event_id}
    payload = Envelope(tag, pixel, code, event).to_bytes()
    raw = RawEnvelope.from_bytes(payload)
    assert parsed(raw) == (tag, pixel, code or None, event_id, event)
    assert raw.event_json == wire_json.dumps(event)


def test_the_event_is_cut_out_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = Envelope("shop", "PIXEL1", "TEST1", EVENT).to_bytes()
    event_json = wire_json.dumps(EVENT)
    assert payload.endswith(b',"event":' + event_json + b"}")
    loads = wire_json.loads

    def loads_all_but_the_event(data: bytes | str) -> Any:
        assert isinstance(data, bytes)
        assert event_json[1:-1] not in data, "the event was parsed"
        return loads(data)

    monkeypatch.setattr(wire_json, "loads", loads_all_but_the_event)
    raw = RawEnvelope.from_bytes(payload)
    assert (raw.tag, raw.pixel_code, raw.test_event_code, raw.event_id) == (
        "shop",
        "PIXEL1",
        "TEST1",
        "order-1",
    )
    assert raw.event_json == event_json


@pytest.mark.parametrize("code", [None, "TEST1"])
def test_payloads_of_the_earlier_layout_are_still_read(code: str | None) -> None:
    # As the gateway wrote them before event_id was copied out: test_event_code after event.
    record: dict[str, Any] = {"tag": "shop", "pixel": "PIXEL1", "event": EVENT}
    if code:
        record["test_event_code"] = code
    raw = RawEnvelope.from_bytes(wire_json.dumps(record))
    assert parsed(raw) == ("shop", "PIXEL1", code, "order-1", EVENT)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1]",
        b'{"tag":"shop","pixel":"PIXEL1"}',
        b'{"tag":"shop","pixel":"PIXEL1","event":[1]}',
        b'{"tag":"shop","pixel":"PIXEL1","event_id":"e","event":[1]}',
        b'{"tag":"shop","pixel":"PIXEL1","event_id":"e\\u12","event":{}}',
        b'{"tag":"sh"op","pixel":"PIXEL1","event_id":"e","event":{}}',
    ],
)
def test_payloads_not_made_by_to_bytes_are_refused(payload: bytes) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        RawEnvelope.from_bytes(payload)


# Tag names as the settings allow them (no control characters), from UTF-8 text (no surrogates).
tag_names = st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=12)


@given(tag=tag_names, pixel=texts, code=st.none() | texts, event=events)
def test_what_ingest_queues_reads_back_for_delivery(
    tag: str, pixel: str, code: str | None, event: dict[str, Any]
) -> None:
    group, payload = queue_item(MappedEvent(tag, pixel, code, event))
    assert group == tag  # the queue group is the tag: its destination
    raw = RawEnvelope.from_bytes(payload)
    assert parsed(raw) == (tag, pixel, code or None, str(event.get("event_id", "")), event)
