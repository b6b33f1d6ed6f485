"""A held or paused destination's old items expire without a probe carrying them.

As ``test_worker.py``, with the real SQLite queue: the lane calls ``Queue.expire`` itself while
its destination sends nothing (``Lane._expire_held``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

import httpx

from tests.delivery.test_worker import LIMITS, TAGS, Answer, TikTok, answer, destinations
from tests.fakes import FakeClock
from tiktok_gateway.delivery.backoff import BackoffPolicy
from tiktok_gateway.delivery.lane import EXPIRE_INTERVAL, EXPIRE_LIMIT
from tiktok_gateway.delivery.worker import DeliveryResult, DeliveryWorker
from tiktok_gateway.queue.base import LeasedItem, NewItem
from tiktok_gateway.queue.sqlite import SQLiteQueue
from tiktok_gateway.tags.tiktok.envelope import Envelope

MAX_AGE = 600.0
# Probes far apart: whatever expires below does so while no request may go out.
POLICY = BackoffPolicy(base=1.0, cap=300.0, probe_interval=3600.0)


class Rig:
    def __init__(self, queue: SQLiteQueue, clock: FakeClock, client: httpx.AsyncClient) -> None:
        self.queue, self.clock = queue, clock
        self.results: list[DeliveryResult] = []
        self.worker = DeliveryWorker(
            queue,
            destinations(dataclasses.replace(LIMITS, max_age=MAX_AGE)),
            client,
            clock=clock,
            rng=random.Random(1),
            policy=POLICY,
            on_result=self.results.append,
        )

    async def put(self, count: int, *, first: int, tag: str = "shop") -> None:
        pixel = TAGS[tag].pixel_code
        envelopes = [
            Envelope(tag, pixel, None, {"event": "ViewContent", "event_id": f"e{n}"})
            for n in range(first, first + count)
        ]
        await self.queue.put([NewItem(e.group, e.to_bytes()) for e in envelopes])

    async def dead(self) -> dict[str, tuple[str, str]]:
        records = await self.queue.dead_letters(limit=10_000)
        return {json.loads(r.payload)["event"]["event_id"]: (r.reason, r.message) for r in records}

    async def depth(self) -> int:
        return (await self.queue.stats()).depth


class CallOrder(SQLiteQueue):
    """The SQLite queue, noting the order of the ``lease`` and ``expire`` calls made for the
    tag ``shop`` (``calls``); ``on_expire`` runs after each expire call (a round that takes
    time: it may move the fake clock)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []
        self.on_expire: Callable[[], None] = lambda: None

    async def lease(
        self,
        limit: int,
        lease_seconds: float,
        exclude_groups: Collection[str] = (),
        only_groups: Collection[str] | None = None,
    ) -> list[LeasedItem]:
        if only_groups is not None and "shop" in only_groups:
            self.calls.append("lease")
        return await super().lease(limit, lease_seconds, exclude_groups, only_groups)

    async def expire(self, group: str, enqueued_before: float, limit: int, message: str) -> int:
        count = await super().expire(group, enqueued_before, limit, message)
        if group == "shop":
            self.calls.append("expire")
            self.on_expire()
        return count


def run(
    tmp_path: Path,
    respond: Answer,
    body: Callable[[Rig], Awaitable[None]],
    queue_class: type[SQLiteQueue] = SQLiteQueue,
) -> TikTok:
    tiktok = TikTok(respond)

    async def main() -> None:
        clock = FakeClock()
        queue = await queue_class.open(tmp_path / "queue.db", clock=clock)
        transport = httpx.MockTransport(tiktok.handle)
        try:
            async with httpx.AsyncClient(transport=transport) as client:
                await body(Rig(queue, clock, client))
        finally:
            await queue.close()

    asyncio.run(main())
    return tiktok


def test_a_backing_off_destinations_old_events_expire_without_a_probe(tmp_path: Path) -> None:
    def respond(body: dict[str, object]) -> httpx.Response:
        return answer(status=429, headers={"Retry-After": "3600"})

    async def body(rig: Rig) -> None:
        await rig.put(2, first=0)  # sent once, refused: nacked, the tag backs off for an hour
        await rig.worker.drain()
        assert rig.worker.backing_off["shop"].retry_at == rig.clock.now + 3600
        rig.clock.advance(1)
        await rig.put(3, first=2)  # never leased: the tag is held
        rig.clock.advance(500)
        await rig.put(2, first=5)  # young: put 100 s before the others expire
        rig.clock.advance(MAX_AGE - 499)  # e0-e4 are older than MAX_AGE; still held
        await rig.worker.drain()
        message = "not sent while the destination was backing off (throttled)"
        assert await rig.dead() == {f"e{n}": ("expired", message) for n in range(5)}
        assert await rig.depth() == 2
        assert [(r.outcome_kind, r.events, r.message) for r in rig.results[1:]] == [
            ("expired", 5, message)
        ]

    tiktok = run(tmp_path, respond, body)
    assert len(tiktok.requests) == 1  # no probe carried them


def test_a_paused_destinations_old_events_expire_every_interval(tmp_path: Path) -> None:
    def respond(body: dict[str, object]) -> httpx.Response:
        if body["event_source_id"] == "PIXEL1":
            return answer(40105, "Access token is invalid")
        return answer()

    async def body(rig: Rig) -> None:
        await rig.put(1, first=0)
        await rig.put(1, first=100, tag="free")  # another tag: delivered, never expired
        await rig.worker.drain()
        assert rig.worker.paused["shop"].probe_at == rig.clock.now + 3600
        await rig.put(1, first=1)
        rig.clock.advance(MAX_AGE + 1)
        await rig.put(1, first=2)  # young
        await rig.worker.drain()
        message = (
            "not sent while the destination was paused (token_invalid: Access token is invalid)"
        )
        assert await rig.dead() == {"e0": ("expired", message), "e1": ("expired", message)}
        # e2 grows old, but the next round is EXPIRE_INTERVAL after this one.
        rig.clock.advance(MAX_AGE)
        await rig.worker.drain()
        assert await rig.depth() == 1
        rig.clock.advance(EXPIRE_INTERVAL)
        await rig.worker.drain()
        assert await rig.depth() == 0
        assert set(await rig.dead()) == {"e0", "e1", "e2"}

    tiktok = run(tmp_path, respond, body)
    assert [b["event_source_id"] for b in tiktok.bodies] == ["PIXEL1", "PIXEL2"]


def test_one_round_expires_more_than_one_call_moves(tmp_path: Path) -> None:
    count = 2 * EXPIRE_LIMIT + 10

    async def body(rig: Rig) -> None:
        await rig.put(1, first=0)
        await rig.worker.drain()  # paused
        await rig.put(count, first=1)
        rig.clock.advance(MAX_AGE + 1)
        await rig.worker.drain()
        assert await rig.depth() == 0
        expired = [r.events for r in rig.results if r.outcome_kind == "expired"]
        assert expired == [count + 1]

    run(tmp_path, lambda _: answer(40105, "Access token is invalid"), body)


def test_a_destination_that_is_not_held_expires_nothing_by_itself(tmp_path: Path) -> None:
    async def body(rig: Rig) -> None:
        await rig.put(1, first=0)
        rig.clock.advance(MAX_AGE + 1)
        await rig.worker.drain()  # delivered: old, but its destination answers
        assert await rig.dead() == {}
        assert await rig.depth() == 0

    tiktok = run(tmp_path, lambda _: answer(), body)
    assert len(tiktok.requests) == 1


def calls_of(rig: Rig) -> list[str]:
    assert isinstance(rig.queue, CallOrder)
    return rig.queue.calls


def test_a_due_probe_is_leased_before_the_expiry_round(tmp_path: Path) -> None:
    count = 2 * EXPIRE_LIMIT + 10

    async def body(rig: Rig) -> None:
        await rig.put(1, first=0)
        await rig.worker.drain()  # paused: the next probe in an hour
        await rig.put(count, first=1)
        rig.clock.advance(POLICY.probe_interval)  # the probe is due, every item is past MAX_AGE
        calls_of(rig).clear()
        await rig.worker.drain()
        # The probe went out first, with the old items; paused again, the round expired them.
        assert calls_of(rig)[0] == "lease"
        assert "expire" in calls_of(rig)
        assert await rig.depth() == 0

    tiktok = run(tmp_path, lambda _: answer(40105, "Access token is invalid"), body, CallOrder)
    assert [len(b["data"]) for b in tiktok.bodies] == [1, count + 1]


def test_a_due_probe_of_a_backing_off_destination_is_leased_before_the_expiry_round(
    tmp_path: Path,
) -> None:
    count = 2 * EXPIRE_LIMIT + 10

    async def body(rig: Rig) -> None:
        await rig.put(1, first=0)
        await rig.worker.drain()  # throttled: backs off for an hour
        await rig.put(count, first=1)
        rig.clock.advance(3600)
        calls_of(rig).clear()
        await rig.worker.drain()
        assert calls_of(rig)[0] == "lease"
        # The probe was throttled: its items, all past MAX_AGE, expired with its answer.
        assert await rig.depth() == 0

    def respond(body: dict[str, object]) -> httpx.Response:
        return answer(status=429, headers={"Retry-After": "3600"})

    tiktok = run(tmp_path, respond, body, CallOrder)
    assert [len(b["data"]) for b in tiktok.bodies] == [1, count + 1]


def test_a_round_stops_when_the_probe_falls_due(tmp_path: Path) -> None:
    count = 3 * EXPIRE_LIMIT

    async def body(rig: Rig) -> None:
        await rig.put(1, first=0)
        await rig.worker.drain()  # paused: the next probe in an hour
        await rig.put(count, first=1)
        rig.clock.advance(POLICY.probe_interval - 1)  # held, every item is past MAX_AGE
        calls_of(rig).clear()
        assert isinstance(rig.queue, CallOrder)
        rig.queue.on_expire = lambda: rig.clock.advance(1)  # the probe falls due meanwhile
        await rig.worker.drain()
        # One call of the round, then the probe with what it left; paused again, the next round
        # is EXPIRE_INTERVAL later.
        assert calls_of(rig)[:2] == ["expire", "lease"]
        assert calls_of(rig).count("expire") == 1
        assert await rig.depth() == count + 1 - EXPIRE_LIMIT

    tiktok = run(tmp_path, lambda _: answer(40105, "Access token is invalid"), body, CallOrder)
    assert [len(b["data"]) for b in tiktok.bodies] == [1, count + 1 - EXPIRE_LIMIT]
