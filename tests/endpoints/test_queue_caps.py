"""The queue's caps (SPEC 13): past GATEWAY_QUEUE_MAX_EVENTS or GATEWAY_QUEUE_MAX_BYTES every
ingest endpoint answers 503 queue_full with Retry-After and queues nothing; /readyz says why;
under the caps hits are accepted again, by themselves, once delivery drains the queue."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from tests.harness import HIT, Running, config_of, run, running
from tiktok_gateway.queue.base import DeadLetter
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.queue.sqlite import SQLiteQueue

SETTINGS = {"GATEWAY_INGEST_TOKEN": "ingest-token-1", "GATEWAY_MP_API_SECRETS": "G-1=s3cret"}
EVENT = {"x-ttq-event-name": "CompletePayment", "x-ttq-event-id": "o-1"}
MP_BODY = {"client_id": "1.2", "events": [{"name": "purchase", "params": {"transaction_id": "T"}}]}


async def send(gw: Running, endpoint: str) -> httpx.Response:
    """One hit to ``endpoint`` that queues one TikTok event (GA4 forwarding is off)."""
    if endpoint == "/g/collect":
        return await gw.client.get(f"/g/collect?{HIT}")
    if endpoint == "/mp/collect":
        url = "/mp/collect?measurement_id=G-1&api_secret=s3cret"
        return await gw.client.post(url, json=MP_BODY)
    bearer = {"authorization": "Bearer ingest-token-1"}
    return await gw.client.post("/events", json=EVENT, headers=bearer)


ENDPOINTS = ("/g/collect", "/mp/collect", "/events")


def assert_full(answer: httpx.Response, reason: str) -> None:
    assert answer.status_code == 503, answer.text
    body: dict[str, Any] = answer.json()
    assert body["error"] == "queue_full"
    assert reason in body["detail"]
    assert answer.headers["retry-after"] == "30"


async def ready_within(gw: Running, seconds: float = 3.0) -> httpx.Response:
    """/readyz (admin) polled until 200 or ``seconds`` passed; the last answer."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        answer = await gw.admin.get("/readyz")
        if answer.status_code == 200 or asyncio.get_running_loop().time() > deadline:
            return answer
        await asyncio.sleep(0.05)


async def drain(gw: Running) -> None:
    """Deliver everything queued (the worker does not run in these tests)."""
    leased = await gw.queue.lease(1000, 60)
    await gw.queue.ack([item.id for item in leased])


def test_past_the_events_cap_every_endpoint_answers_503_queue_full_until_delivery() -> None:
    async def scenario() -> None:
        config = config_of({**SETTINGS, "GATEWAY_QUEUE_MAX_EVENTS": "3"})
        async with running(config, peer="127.0.0.1") as gw:
            for endpoint in ENDPOINTS:  # under the cap: accepted, one item each
                assert (await send(gw, endpoint)).status_code in (200, 204), endpoint
            for endpoint in ENDPOINTS:
                assert_full(await send(gw, endpoint), "GATEWAY_QUEUE_MAX_EVENTS")
            assert (await gw.queue.stats()).depth == 3  # nothing of the refused hits was queued
            ready = await gw.admin.get("/readyz")
            assert ready.status_code == 503
            assert any(p.startswith("queue full: 3 items") for p in ready.json()["problems"])
            public = await gw.client.get("/readyz")
            assert (public.status_code, public.json()) == (503, {"status": "unready"})
            await drain(gw)
            assert (await ready_within(gw)).status_code == 200  # the numbers are read again
            for endpoint in ENDPOINTS:
                assert (await send(gw, endpoint)).status_code in (200, 204), endpoint
            metrics = (await gw.admin.get("/metrics")).text
            assert 'gateway_queue_refusals_total{reason="max_events"} 3.0' in metrics
            assert 'gateway_hit_errors_total{reason="queue_full",source="events"} 1.0' in metrics

    run(scenario())


def test_dead_letters_count_toward_the_events_cap_until_purged() -> None:
    async def scenario() -> None:
        async with running(config_of({"GATEWAY_QUEUE_MAX_EVENTS": "2"}), peer="127.0.0.1") as gw:
            for _ in range(2):
                assert (await gw.client.get(f"/g/collect?{HIT}")).status_code == 204
            leased = await gw.queue.lease(10, 60)
            await gw.queue.dead_letter([DeadLetter(item.id, "rejected") for item in leased])
            await gw.runtime.admission.refresh()
            assert_full(await gw.client.get(f"/g/collect?{HIT}"), "GATEWAY_QUEUE_MAX_EVENTS")
            problems = (await gw.admin.get("/readyz")).json()["problems"]
            assert "queue full: 2 items (2 of them dead letters)" in problems[0]
            await gw.queue.purge()
            assert (await ready_within(gw)).status_code == 200
            assert (await gw.client.get(f"/g/collect?{HIT}")).status_code == 204

    run(scenario())


def test_past_the_bytes_cap_of_a_sqlite_queue_every_endpoint_answers_503(tmp_path: Path) -> None:
    async def scenario() -> None:
        queue = await SQLiteQueue.open(tmp_path / "queue.db")
        empty = await queue.stored_bytes()
        assert empty is not None
        # Room for a few events' pages beyond the empty file's, not for hundreds.
        config = config_of({**SETTINGS, "GATEWAY_QUEUE_MAX_BYTES": str(empty + 16 * 1024)})
        async with running(config, queue=queue, peer="127.0.0.1") as gw:
            accepted = 0
            while (answer := await send(gw, "/g/collect")).status_code == 204:
                accepted += 1
                assert accepted < 500, "the bytes cap never applied"
            assert accepted > 0
            assert_full(answer, "GATEWAY_QUEUE_MAX_BYTES")
            for endpoint in ENDPOINTS:
                assert_full(await send(gw, endpoint), "GATEWAY_QUEUE_MAX_BYTES")
            assert (await queue.stats()).depth == accepted
            ready = await gw.admin.get("/readyz")
            assert any("GATEWAY_QUEUE_MAX_BYTES" in p for p in ready.json()["problems"])
            metrics = (await gw.admin.get("/metrics")).text
            assert 'gateway_queue_refusals_total{reason="max_bytes"} 4.0' in metrics
            (line,) = [x for x in metrics.splitlines() if x.startswith("gateway_queue_bytes ")]
            assert float(line.split()[1]) >= empty + 16 * 1024

    run(scenario())


class _Unmeasured(MemoryQueue):
    """A queue that measures no bytes (``stored_bytes`` None), as the Redis backend."""

    async def stored_bytes(self) -> int | None:
        return None


def test_a_queue_that_measures_no_bytes_is_capped_by_items_alone() -> None:
    # The bytes cap needs the backend's own number; the hits' payload sizes summed since the
    # last read are no stand-in for it (they once refused a Redis queue after a few hits).
    async def scenario() -> None:
        config = config_of({**SETTINGS, "GATEWAY_QUEUE_MAX_BYTES": "100"})
        async with running(config, queue=_Unmeasured(), peer="127.0.0.1") as gw:
            for _ in range(5):
                for endpoint in ENDPOINTS:
                    assert (await send(gw, endpoint)).status_code in (200, 204), endpoint
            assert (await gw.admin.get("/readyz")).status_code == 200

    run(scenario())
