"""Storage that refuses writes (SPEC 13): a full SQLite database, a Redis out of memory or turned
read-only. Every ingest endpoint answers 503 queue_unavailable (never a 500, never a 2xx for what
was not committed), both /readyz answer 503 with the reason, the log has one warning and one
info line, and once the storage takes writes again hits are accepted by themselves; every hit
that got a 2xx is in the queue."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import redis

from tests import redis_server
from tests.harness import Running, config_of, run, running
from tests.system.processes import free_port
from tiktok_gateway.queue.base import Queue
from tiktok_gateway.queue.redis_streams import RedisStreamsQueue
from tiktok_gateway.queue.sqlite import SQLiteQueue

SETTINGS = {"GATEWAY_INGEST_TOKEN": "ingest-token-1", "GATEWAY_MP_API_SECRETS": "G-1=s3cret"}
PAYLOAD = "x" * 600  # so a few hundred hits fill what the tests allow


async def send(gw: Running, index: int) -> httpx.Response:
    """Hit ``index`` (its TikTok event id is ``order-<index>``), to the endpoints in turn."""
    order = f"order-{index}"
    match index % 3:
        case 0:
            query = f"v=2&tid=G-1&cid=1.2&en=purchase&ep.transaction_id={order}&ep.pad={PAYLOAD}"
            return await gw.client.get(f"/g/collect?{query}")
        case 1:
            event = {"name": "purchase", "params": {"transaction_id": order, "pad": PAYLOAD}}
            url = "/mp/collect?measurement_id=G-1&api_secret=s3cret"
            return await gw.client.post(url, json={"client_id": "1.2", "events": [event]})
        case _:
            event = {"x-ttq-event-name": "CompletePayment", "x-ttq-event-id": order, "p": PAYLOAD}
            bearer = {"authorization": "Bearer ingest-token-1"}
            return await gw.client.post("/events", json=event, headers=bearer)


async def queued_orders(queue: Queue) -> set[str]:
    leased = await queue.lease(100_000, 60)
    await queue.release([item.id for item in leased])
    return {
        f"order-{n}"
        for item in leased
        for n in range(2000)
        if f'"order-{n}"'.encode() in item.payload
    }


async def outage(
    gw: Running,
    break_storage: Callable[[], Awaitable[None]],
    fix_storage: Callable[[], Awaitable[None]],
    reason: str,
) -> None:
    """Hits flow, the storage breaks, is fixed: the answers and /readyz as the module says."""
    accepted: set[str] = set()
    index = 0

    async def hit() -> httpx.Response:
        nonlocal index
        answer = await send(gw, index)
        assert answer.status_code in (200, 204, 503), answer.text  # never a 500
        if answer.status_code != 503:
            accepted.add(f"order-{index}")
        index += 1
        return answer

    for _ in range(6):
        assert (await hit()).status_code in (200, 204)
    await break_storage()
    refused = 0
    while refused < 6:  # every endpoint refused twice
        answer = await hit()
        if answer.status_code == 503:
            assert answer.json()["error"] == "queue_unavailable"
            assert answer.headers["retry-after"] == "5"
            refused += 1
        assert index < 1500, "the storage never refused"
    ready = await gw.admin.get("/readyz")
    assert ready.status_code == 503
    assert any(
        p.startswith("queue cannot be written: ") and reason in p for p in ready.json()["problems"]
    ), ready.json()
    public = await gw.client.get("/readyz")
    assert (public.status_code, public.json()) == (503, {"status": "unready"})
    await fix_storage()
    for _ in range(60):  # /readyz probes a write: recovery needs no hit
        if (await gw.admin.get("/readyz")).status_code == 200:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("no recovery")
    for _ in range(6):
        assert (await hit()).status_code in (200, 204)
    assert await queued_orders(gw.queue) == accepted  # every 2xx hit, and nothing else


def assert_two_lines(caplog: pytest.LogCaptureFixture, reason: str) -> None:
    lines = [r for r in caplog.records if r.name == "tiktok_gateway.queue.admission"]
    assert [r.levelno for r in lines] == [logging.WARNING, logging.INFO], lines
    assert reason in lines[0].getMessage()
    assert "takes writes again after" in lines[1].getMessage()
    assert not any(r.exc_info for r in caplog.records)


def test_a_full_sqlite_database_answers_503_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Full as SQLite says it (SQLITE_FULL), through a page limit set on the queue's own
    connection: the real SQLite refuses the real writes."""

    async def scenario() -> None:
        queue = await SQLiteQueue.open(tmp_path / "queue.db")

        async def pragma(sql: str) -> None:
            await queue._call(lambda conn: conn.execute(sql).fetchall())

        async def fill() -> None:
            pages = await queue._call(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
            await pragma(f"PRAGMA max_page_count = {pages + 4}")

        async with running(config_of(SETTINGS), queue=queue, peer="127.0.0.1") as gw:
            await outage(gw, fill, lambda: pragma("PRAGMA max_page_count = 1000000"), "full")

    with caplog.at_level(logging.INFO):
        run(scenario())
    assert_two_lines(caplog, "SQLite: database or disk is full")


def snapshot(admin: redis.Redis, status: str) -> None:
    """BGSAVE, waiting until it ended with ``status`` (``ok``, ``err``)."""
    admin.bgsave()
    for _ in range(200):
        persistence = admin.info("persistence")
        if not persistence["rdb_bgsave_in_progress"]:
            assert persistence["rdb_last_bgsave_status"] == status
            return
        time.sleep(0.02)
    raise AssertionError("BGSAVE never ended")


@pytest.mark.parametrize("refusal", ["OOM", "READONLY", "MISCONF"])
def test_a_redis_refusing_writes_answers_503_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, refusal: str
) -> None:
    """OOM: ``maxmemory`` just above what it holds, under ``noeviction``; READONLY: made a
    replica of a server that is not there (it keeps its data and refuses writes); MISCONF: its
    snapshot fails (a folder where the file goes) while snapshots are configured."""
    blocker = tmp_path / "dump.rdb"
    with redis_server.private_server(tmp_path) as server:
        admin = redis.Redis.from_url(server.url)

        async def break_storage() -> None:
            if refusal == "OOM":
                used = int(admin.info("memory")["used_memory"])
                admin.config_set("maxmemory-policy", "noeviction")
                admin.config_set("maxmemory", str(used + 200_000))
            elif refusal == "READONLY":
                admin.replicaof("127.0.0.1", free_port())
            else:
                blocker.mkdir()
                admin.config_set("save", "3600 1")
                snapshot(admin, "err")

        async def fix_storage() -> None:
            if refusal == "OOM":
                admin.config_set("maxmemory", "0")
            elif refusal == "READONLY":
                admin.replicaof("NO", "ONE")
            else:
                blocker.rmdir()
                snapshot(admin, "ok")

        async def scenario() -> None:
            queue = await RedisStreamsQueue.open(server.url)
            async with running(config_of(SETTINGS), queue=queue, peer="127.0.0.1") as gw:
                await outage(gw, break_storage, fix_storage, f"redis: {refusal}")

        try:
            with caplog.at_level(logging.INFO):
                run(scenario())
        finally:
            if blocker.is_dir():  # Redis would not stop on a failing final snapshot
                blocker.rmdir()
            admin.config_set("save", "")
            admin.close()
    assert_two_lines(caplog, f"redis: {refusal}")
