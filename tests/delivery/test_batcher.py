"""The batcher (with a TikTok tag's units): flush by count, by bytes and by age; routes never
mixed; order kept."""

from __future__ import annotations

import json
from typing import cast

import pytest

from tests.fakes import FakeClock
from tiktok_gateway import wire_json
from tiktok_gateway.delivery.batcher import Batcher
from tiktok_gateway.delivery.destination import Batch, Limits
from tiktok_gateway.queue.base import Clock, LeasedItem
from tiktok_gateway.tags.tiktok.destination import MAX_BYTES, TikTokDestination, batch_body
from tiktok_gateway.tags.tiktok.envelope import Envelope, RawEnvelope
from tiktok_gateway.tags.tiktok.payload import request_body
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings


def make_batcher(
    *,
    max_events: int = 1000,
    max_bytes: int = MAX_BYTES,
    max_wait: float = 1.0,
    clock: Clock | None = None,
) -> Batcher:
    """A batcher of the tag ``shop``'s events with these limits."""
    tag = TikTokTagSettings(name="shop", pixel_code="PIXEL1")
    limits = Limits(max_events, max_bytes, max_in_flight=1, max_age=60.0, timeout=1.0)
    return Batcher(
        TikTokDestination(tag, "http://tiktok.test", limits), max_wait, clock or FakeClock()
    )


def body(batch: Batch) -> bytes:
    return batch_body(cast(tuple[RawEnvelope, ...], batch.units))


def event(n: int, pad: int = 0) -> dict[str, object]:
    return {"event": "Purchase", "event_id": f"e{n}", "event_time": 1_700_000_000, "x": "y" * pad}


def entry(
    n: int, pixel: str = "PIXEL1", test_code: str | None = None, pad: int = 0
) -> tuple[LeasedItem, RawEnvelope]:
    """A leased event as the lane hands it to the batcher: its queue item and raw envelope."""
    envelope = Envelope("shop", pixel, test_code, event(n, pad))
    item = LeasedItem(f"{n}:1", envelope.group, envelope.to_bytes(), 0, 0.0)
    return item, RawEnvelope.from_bytes(item.payload)


def ids(batch: Batch) -> list[str]:
    return batch.keys


def test_full_by_count_is_ready_at_once() -> None:
    clock = FakeClock()
    batcher = make_batcher(max_events=3, max_wait=1.0, clock=clock)
    for n in range(7):
        batcher.add(*entry(n))
    batches = batcher.ready()
    assert [ids(b) for b in batches] == [["e0", "e1", "e2"], ["e3", "e4", "e5"]]
    assert batcher.pending == 1
    assert batcher.next_deadline() == clock.now + 1.0


def test_full_by_bytes_keeps_the_body_under_the_budget() -> None:
    batcher = make_batcher(max_bytes=2_000, max_wait=1.0, clock=FakeClock())
    for n in range(10):
        batcher.add(*entry(n, pad=400))
    batches = batcher.ready(force=True)
    assert sum(len(b) for b in batches) == 10
    assert len(batches) > 1
    for batch in batches:
        assert len(body(batch)) <= 2_000
        numbers = [int(i.id.partition(":")[0]) for i in batch.items]
        assert json.loads(body(batch))["data"] == [event(n, pad=400) for n in numbers]
    assert [i for b in batches for i in ids(b)] == [f"e{n}" for n in range(10)]


def test_an_event_larger_than_the_budget_goes_alone() -> None:
    batcher = make_batcher(max_bytes=500, max_wait=1.0, clock=FakeClock())
    batcher.add(*entry(0))
    batcher.add(*entry(1, pad=1000))
    batcher.add(*entry(2))
    batches = batcher.ready(force=True)
    assert [ids(b) for b in batches] == [["e0"], ["e1"], ["e2"]]


def test_age_flush_counts_from_when_the_first_event_was_added() -> None:
    clock = FakeClock()
    batcher = make_batcher(max_wait=1.0, clock=clock)
    batcher.add(*entry(0))
    clock.advance(0.6)
    batcher.add(*entry(1))
    assert batcher.ready() == []
    assert batcher.next_deadline() == clock.now + 0.4
    clock.advance(0.4)
    [batch] = batcher.ready()
    assert ids(batch) == ["e0", "e1"]
    assert batcher.pending == 0
    assert batcher.next_deadline() is None


def test_force_flushes_partial_batches() -> None:
    batcher = make_batcher(max_wait=60.0, clock=FakeClock())
    batcher.add(*entry(0))
    assert batcher.ready() == []
    assert [ids(b) for b in batcher.ready(force=True)] == [["e0"]]


def test_routes_are_never_mixed() -> None:
    batcher = make_batcher(max_events=2, max_wait=1.0, clock=FakeClock())
    batcher.add(*entry(0, test_code="TEST1"))
    batcher.add(*entry(1))
    batcher.add(*entry(2, pixel="PIXEL2"))
    batcher.add(*entry(3, test_code="TEST1"))
    batcher.add(*entry(4))
    batches = batcher.ready(force=True)
    shapes = {(b.route, tuple(ids(b))) for b in batches}
    assert shapes == {
        (("PIXEL1", "TEST1"), ("e0", "e3")),
        (("PIXEL1", None), ("e1", "e4")),
        (("PIXEL2", None), ("e2",)),
    }
    for batch in batches:
        sent = json.loads(body(batch))
        assert (sent["event_source_id"], sent.get("test_event_code")) == batch.route
        assert batch.destination == "shop"


def test_next_deadline_is_now_when_a_batch_is_full() -> None:
    clock = FakeClock()
    batcher = make_batcher(max_events=1, max_wait=5.0, clock=clock)
    assert batcher.next_deadline() is None
    batcher.add(*entry(0))
    assert batcher.next_deadline() == clock.now


def test_halves_and_subset_keep_order_and_shape() -> None:
    batcher = make_batcher(max_wait=1.0, clock=FakeClock())
    for n in range(5):
        batcher.add(*entry(n, test_code="T"))
    [batch] = batcher.ready(force=True)
    first, second = batch.halves()
    assert (ids(first), ids(second)) == (["e0", "e1"], ["e2", "e3", "e4"])
    assert second.route == ("PIXEL1", "T")
    assert ids(batch.subset([4, 0])) == ["e4", "e0"]


@pytest.mark.parametrize("test_code", [None, "TEST1"])
def test_the_spliced_body_is_the_encoded_request_byte_for_byte(test_code: str | None) -> None:
    batcher = make_batcher(max_wait=1.0, clock=FakeClock())
    for n in range(4):
        batcher.add(*entry(n, test_code=test_code, pad=n))
    [batch] = batcher.ready(force=True)
    events = [event(n, pad=n) for n in range(4)]
    assert body(batch) == wire_json.dumps(request_body("PIXEL1", events, test_code))
    expected = wire_json.dumps(request_body("PIXEL1", [events[3], events[1]], test_code))
    assert body(batch.subset([3, 1])) == expected
