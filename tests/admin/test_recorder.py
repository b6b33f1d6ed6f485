"""DebugRecorder: redaction of what it shows, delivery joins, its bounds, its subscribers."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.harness import config_of, running
from tiktok_gateway import wire_json
from tiktok_gateway.admin.debug import sse_stream
from tiktok_gateway.admin.recorder import DebugRecorder
from tiktok_gateway.config import load_config
from tiktok_gateway.delivery.ledger import DeliveryResult
from tiktok_gateway.observe import HitRecord
from tiktok_gateway.tags.tiktok.router import route
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings

EMAIL = "alice.smith@example.com"
PHONE = "+1 415 555 0123"
SECRETS = (EMAIL, "alice.smith%40example.com", "4155550123", "415 555 0123", "Alice", "Smith")
SHOP = TikTokTagSettings(name="shop", pixel_code="CSHOP")
BRAND = TikTokTagSettings(name="brand", pixel_code="CBRAND")


def hit_of(
    request_id: str, event_id: str = "e1", tags: tuple[TikTokTagSettings, ...] = (SHOP,)
) -> HitRecord:
    data: dict[str, Any] = {
        "event_name": "purchase",
        "event_id": event_id,
        "user_data": {"email_address": EMAIL},
        "x-gw-received_at": 1_700_000_000.0,
    }
    return HitRecord(
        request_id=request_id,
        source="events",
        received_at=1_700_000_000.0,
        status=200,
        outcome="accepted",
        body=wire_json.dumps(data),
        events=[data],
        outcomes=[route(data, tags)],
        queued=len(tags),
    )


def delivered(tag: str, *event_ids: str, kind: str = "delivered") -> DeliveryResult:
    return DeliveryResult(
        tag,
        "tiktok",
        kind,
        len(event_ids),
        40002 if kind == "rejected" else None,
        "ok",
        "rq-9",
        keys=list(event_ids),
    )


def assert_clean(value: object) -> None:
    text = json.dumps(value)
    for secret in SECRETS:
        assert secret not in text, secret
    assert "[redacted]" in text


def test_raw_email_and_phone_never_reach_the_views() -> None:
    query = urlencode(
        {
            "v": "2",
            "tid": "G-1",
            "cid": "1.2",
            "en": "purchase",
            "ep.transaction_id": "T-1",
            "ep.user_data.email_address": EMAIL,
            "ep.user_data.phone_number": PHONE,
            "ep.user_data.address.first_name": "Alice",
            "ep.user_data.address.last_name": "Smith",
            "up.email": EMAIL,
            "ep.note": f"call {PHONE} or write to {EMAIL}",
            "dl": "https://shop.example.com/thanks?email=alice.smith%40example.com&ttclid=CLK",
        }
    )
    events_body = {
        "event_name": "generate_lead",
        "user_data": {"email": EMAIL, "phone": "4155550123", "name": "Alice Smith"},
    }

    async def scenario() -> list[dict[str, Any]]:
        environ = {
            "GATEWAY_INGEST_TOKEN": "ingest-token-value",
            "GATEWAY_MP_API_SECRETS": "G-1=mp-secret-value",
        }
        async with running(config_of(environ)) as gateway:
            assert (await gateway.client.get(f"/g/collect?{query}")).status_code == 204
            bearer = {"Authorization": "Bearer ingest-token-value"}
            answer = await gateway.client.post("/events", json=events_body, headers=bearer)
            assert answer.status_code == 200
            mp = {"client_id": "1.2", "events": [{"name": "login", "params": {"email": EMAIL}}]}
            mp_url = "/mp/collect?measurement_id=G-1&api_secret=mp-secret-value"
            assert (await gateway.client.post(mp_url, json=mp)).status_code == 200
            listed = await gateway.admin.get("/debug/api/hits", headers={"x": "y"})
            assert listed.status_code == 403  # the harness peer is not loopback
            return gateway.runtime.debug.hits()

    mp_hit, lead, ga4 = reversed(asyncio.run(scenario()))
    assert_clean(ga4)
    assert_clean(lead)
    assert_clean(mp_hit)
    assert "mp-secret-value" not in json.dumps(mp_hit)
    assert dict(mp_hit["params"])["api_secret"] == "[redacted]"
    params = dict(ga4["params"])
    assert params["ep.user_data.email_address"] == "[redacted]"
    assert params["ep.transaction_id"] == "T-1"
    assert params["ep.note"] == "call [redacted] or write to [redacted]"
    (event,) = ga4["events"]
    assert event["name"] == "purchase"
    assert event["data"]["user_data"]["email_address"] == "[redacted]"
    (tag,) = event["tags"]
    assert tag["event_name"] == "PlaceAnOrder"
    assert tag["pixel"] == "CTEST"
    assert len(tag["event"]["user"]["email"]) == 64  # the hash stays
    assert tag["identifiers"]["email"]
    assert tag["identifiers"]["phone"]
    assert tag["identifiers"]["ttclid"]
    assert (tag["strong"], tag["match_quality"]) == (3, "good")
    assert tag["delivery"]["outcome"] == "queued"
    assert lead["body"]["json"]["user_data"] == dict.fromkeys(
        events_body["user_data"], "[redacted]"
    )


def test_deliveries_join_hits_by_tag_and_event_id() -> None:
    recorder = DebugRecorder()
    recorder.on_hit(hit_of("r1", "e1", (SHOP, BRAND)))
    recorder.on_hit(hit_of("r2", "e2", (SHOP, BRAND)))
    recorder.hits()  # render now: later deliveries must update rendered views too
    recorder.on_delivery(delivered("shop", "e1"))
    recorder.on_delivery(delivered("brand", "e2", kind="rejected"))
    recorder.on_delivery(delivered("other", "e1"))
    first, second = recorder.hits()
    outcomes = {
        (hit["request_id"], tag["tag"]): tag["delivery"]
        for hit in (first, second)
        for tag in hit["events"][0]["tags"]
    }
    assert outcomes[("r1", "shop")]["outcome"] == "delivered"
    assert outcomes[("r1", "shop")]["request_id"] == "rq-9"
    assert outcomes[("r1", "brand")]["outcome"] == "queued"
    assert outcomes[("r2", "shop")]["outcome"] == "queued"
    assert outcomes[("r2", "brand")]["outcome"] == "rejected"
    assert outcomes[("r2", "brand")]["code"] == 40002


def test_a_delivery_reported_before_its_hit_is_kept() -> None:
    recorder = DebugRecorder()
    recorder.on_delivery(delivered("shop", "e7"))
    recorder.on_hit(hit_of("r7", "e7"))
    assert recorder.hits()[0]["events"][0]["tags"][0]["delivery"]["outcome"] == "delivered"


def test_worker_outcomes_reach_the_hits_of_two_pixels(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[[tags]]\nname = "shop"\npixel_code = "CSHOP"\n'
        '[[tags]]\nname = "brand"\npixel_code = "CBRAND"\n'
        '[tags.trigger]\ninclude_events = ["purchase"]\n'
    )
    config = load_config(path, {"GATEWAY_BATCH_MAX_WAIT_MS": "0"})

    async def scenario() -> list[dict[str, Any]]:
        async with running(config) as gateway:
            for name in ("page_view", "purchase"):
                hit = f"/g/collect?v=2&tid=G-1&cid=1.2&en={name}&ep.transaction_id=T9"
                assert (await gateway.client.get(hit)).status_code == 204
            assert gateway.runtime.worker is not None
            await gateway.runtime.worker.drain()
            return gateway.runtime.debug.hits()

    page_view, purchase = asyncio.run(scenario())
    assert [t["tag"] for t in page_view["events"][0]["tags"]] == ["shop"]
    tags = purchase["events"][0]["tags"]
    assert [(t["tag"], t["pixel"]) for t in tags] == [("shop", "CSHOP"), ("brand", "CBRAND")]
    for view in (page_view, purchase):
        for tag in view["events"][0]["tags"]:
            assert tag["delivery"]["outcome"] == "delivered"
            assert tag["delivery"]["request_id"]


def test_the_ring_buffer_keeps_the_latest_hits() -> None:
    recorder = DebugRecorder(capacity=3)
    for number in range(10):
        recorder.on_hit(hit_of(f"r{number}", f"e{number}"))
    assert len(recorder) == 3
    assert [hit["request_id"] for hit in recorder.hits()] == ["r7", "r8", "r9"]
    assert sorted(recorder._index) == [("shop", "e7"), ("shop", "e8"), ("shop", "e9")]
    recorder.on_delivery(delivered("shop", "e1"))  # its hit is gone: nothing breaks
    assert len(recorder) == 3


def test_a_slow_subscriber_never_blocks_and_loses_only_its_own_messages() -> None:
    async def scenario() -> None:
        recorder = DebugRecorder(subscriber_bound=4)
        slow = recorder.subscribe()
        fast = recorder.subscribe()
        received: list[str] = []

        async def read() -> None:
            while len(received) < 50:
                name, _ = await fast.queue.get()
                received.append(name)

        reader = asyncio.create_task(read())
        started = time.perf_counter()
        for number in range(50):
            recorder.on_hit(hit_of(f"r{number}", f"e{number}"))
            await asyncio.sleep(0)  # the fast reader keeps up
        assert time.perf_counter() - started < 2.0
        async with asyncio.timeout(5):
            await reader
        assert received == ["hit"] * 50
        assert (slow.queue.qsize(), slow.dropped) == (4, 46)
        assert fast.dropped == 0
        recorder.unsubscribe(slow)
        recorder.unsubscribe(fast)
        assert recorder.subscribers == 0

    asyncio.run(scenario())


def test_the_event_stream_sends_the_backlog_then_live_events() -> None:
    async def scenario() -> None:
        recorder = DebugRecorder()
        recorder.on_hit(hit_of("r1", "e1"))
        gone = False

        async def disconnected() -> bool:
            return gone

        stream = sse_stream(recorder, disconnected, poll=0.01, keepalive=0.03)
        assert await anext(stream) == b"retry: 2000\n\n"
        backlog = await anext(stream)
        assert backlog.startswith(b"event: hit\ndata: {")
        assert b'"r1"' in backlog
        recorder.on_hit(hit_of("r2", "e2"))
        recorder.on_delivery(delivered("shop", "e2"))
        live = await anext(stream)
        assert live.startswith(b"event: hit\n")
        assert b'"r2"' in live
        update = await anext(stream)
        assert update.startswith(b"event: delivery\n")
        data = json.loads(update.split(b"data: ", 1)[1])
        assert data["request_id"] == "r2"
        assert (data["destination"], data["keys"]) == ("shop", ["e2"])
        assert data["delivery"]["outcome"] == "delivered"
        assert await anext(stream) == b": keepalive\n\n"
        gone = True
        assert [chunk async for chunk in stream] == []
        assert recorder.subscribers == 0

    asyncio.run(scenario())


def test_big_hits_are_trimmed() -> None:
    hit = hit_of("big")
    events = [dict(hit.events[0], event_id=f"e{n}") for n in range(40)]
    big = HitRecord(
        request_id="big",
        source="ga4",
        received_at=1.0,
        status=204,
        outcome="accepted",
        body=b"en=scroll\n" * 10_000,
        events=events,
        outcomes=[route(data, (SHOP,)) for data in events],
    )
    recorder = DebugRecorder()
    recorder.on_hit(big)
    (view,) = recorder.hits()
    assert view["events_total"] == 40
    assert len(view["events"]) == 25
    assert view["body"]["truncated"]
    assert len(view["body"]["lines"]) == 100
