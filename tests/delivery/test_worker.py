"""The delivery worker against a scripted TikTok (httpx.MockTransport) and the memory queue."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import httpx
from pydantic import SecretStr

from tests.fakes import FakeClock
from tiktok_gateway.delivery.backoff import BackoffPolicy
from tiktok_gateway.delivery.destination import Destination, Limits
from tiktok_gateway.delivery.outcome import Retry
from tiktok_gateway.delivery.worker import DeliveryResult, DeliveryWorker
from tiktok_gateway.queue.base import LeasedItem, NewItem
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.tags.tiktok.client import TrackReply, post_batch
from tiktok_gateway.tags.tiktok.destination import TikTokDestination, tiktok_limits
from tiktok_gateway.tags.tiktok.envelope import Envelope
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings

API = "https://tiktok.test"
TAGS = {
    "shop": TikTokTagSettings(
        name="shop", pixel_code="PIXEL1", access_token=SecretStr("s3cret"), api_url=API
    ),
    "free": TikTokTagSettings(name="free", pixel_code="PIXEL2", api_url=API),
}
LIMITS = tiktok_limits(max_in_flight=4, max_age=7 * 24 * 3600.0, timeout=10.0)


def destinations(limits: Limits = LIMITS) -> dict[str, Destination]:
    """The two tags as destinations, posting to ``API``."""
    return {name: TikTokDestination(tag, API, limits) for name, tag in TAGS.items()}


Body = dict[str, Any]
Answer = Callable[[Body], httpx.Response]


def answer(
    code: int = 0, message: str = "OK", status: int = 200, headers: dict[str, str] | None = None
) -> httpx.Response:
    if status != 200:
        return httpx.Response(status, text="error", headers=headers)
    body = {"code": code, "message": message, "request_id": f"req-{code}", "data": {}}
    return httpx.Response(status, json=body, headers=headers)


def ok(body: Body) -> httpx.Response:
    return answer()


class TikTok:
    """Records every request and answers with ``self.answer`` (which tests may swap)."""

    def __init__(self, respond: Answer = ok, latency: float = 0.0) -> None:
        self.respond = respond
        self.latency = latency
        self.bodies: list[Body] = []
        self.requests: list[httpx.Request] = []
        self.concurrent = self.max_concurrent = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        try:
            body = json.loads(request.content)
        except ValueError:  # answered as the sandbox does: a bad field, no event named
            return answer(40002, "Invalid JSON body")
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            response = self.respond(body)
        finally:
            self.concurrent -= 1
        self.bodies.append(body)
        return response

    def ids(self, index: int) -> list[str]:
        return [event["event_id"] for event in self.bodies[index]["data"]]


class RecordingQueue(MemoryQueue):
    """The memory queue, noting every item it hands out (to check attempt counts)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.leased: list[LeasedItem] = []

    async def lease(
        self,
        limit: int,
        lease_seconds: float,
        exclude_groups: Collection[str] = (),
        only_groups: Collection[str] | None = None,
    ) -> list[LeasedItem]:
        items = await super().lease(limit, lease_seconds, exclude_groups, only_groups)
        self.leased.extend(items)
        return items


class Rig:
    """A queue, a fake clock, a scripted TikTok and a worker wired together. ``options`` go to
    the worker, but for the destinations' ``Limits`` fields (``max_events``, ``max_bytes``,
    ``max_in_flight``, ``max_age``, ``timeout``)."""

    def __init__(self, tiktok: TikTok, client: httpx.AsyncClient, **options: Any) -> None:
        self.clock = FakeClock()
        self.queue = RecordingQueue(self.clock)
        self.tiktok = tiktok
        self.results: list[DeliveryResult] = []
        fields = {
            name: options.pop(name) for name in Limits.__dataclass_fields__ if name in options
        }
        self.worker = DeliveryWorker(
            self.queue,
            destinations(dataclasses.replace(LIMITS, **fields)),
            client,
            clock=self.clock,
            rng=random.Random(1),
            on_result=self.results.append,
            **options,
        )

    async def put(
        self, count: int, *, tag: str = "shop", test_code: str | None = None, first: int = 0
    ) -> None:
        pixel = TAGS[tag].pixel_code if tag in TAGS else "PIXEL9"
        envelopes = [
            Envelope(tag, pixel, test_code, {"event": "ViewContent", "event_id": f"e{n}"})
            for n in range(first, first + count)
        ]
        await self.queue.put([NewItem(e.group, e.to_bytes()) for e in envelopes])

    async def dead(self) -> dict[str, tuple[str, int | None, str, str]]:
        records = await self.queue.dead_letters(limit=10_000)
        return {
            json.loads(r.payload)["event"]["event_id"]: (r.reason, r.code, r.message, r.request_id)
            for r in records
        }

    def kinds(self) -> list[str]:
        return [r.outcome_kind for r in self.results]


def scenario(
    body: Callable[[Rig], Awaitable[None]], respond: Answer = ok, **options: Any
) -> TikTok:
    tiktok = TikTok(respond)

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(tiktok.handle)) as client:
            await body(Rig(tiktok, client, **options))

    asyncio.run(main())
    return tiktok


def test_delivered_events_are_acked() -> None:
    async def body(rig: Rig) -> None:
        await rig.put(3)
        await rig.worker.drain()
        stats = await rig.queue.stats()
        assert (stats.depth, stats.leased, stats.dead) == (0, 0, 0)
        [result] = rig.results
        assert (result.outcome_kind, result.events, result.destination, result.sent) == (
            "delivered",
            3,
            "shop",
            True,
        )
        assert result.keys == ["e0", "e1", "e2"]
        assert result.request_id == "req-0"

    tiktok = scenario(body)
    [request] = tiktok.requests
    assert str(request.url) == API + "/open_api/v1.3/event/track/"
    assert request.headers["Access-Token"] == "s3cret"
    assert request.headers["Content-Type"] == "application/json"
    assert tiktok.bodies[0]["event_source_id"] == "PIXEL1"
    assert "test_event_code" not in tiktok.bodies[0]
    assert tiktok.ids(0) == ["e0", "e1", "e2"]


def test_a_tag_without_token_sends_no_token_header() -> None:
    async def body(rig: Rig) -> None:
        await rig.put(1, tag="free")
        await rig.worker.drain()

    tiktok = scenario(body)
    assert "Access-Token" not in tiktok.requests[0].headers
    assert tiktok.bodies[0]["event_source_id"] == "PIXEL2"


def test_server_error_is_retried_after_the_back_off() -> None:
    answers = iter([answer(status=503), answer()])

    async def body(rig: Rig) -> None:
        await rig.put(1)
        await rig.worker.drain()
        assert (await rig.queue.stats()).depth == 1
        await rig.worker.drain()  # the clock has not moved: nothing is due
        assert len(rig.tiktok.requests) == 1
        rig.clock.advance(1.0)  # attempt 0: full jitter below base * 2**0 = 1 s
        await rig.worker.drain()
        assert (await rig.queue.stats()).depth == 0
        assert [item.attempts for item in rig.queue.leased] == [0, 1]
        assert rig.kinds() == ["retry", "delivered"]

    tiktok = scenario(body, lambda _: next(answers))
    assert len(tiktok.requests) == 2


def test_retry_after_is_honoured_also_by_new_events_and_by_the_probe() -> None:
    answers = iter(
        [
            answer(status=429, headers={"Retry-After": "120"}),
            answer(status=429, headers={"Retry-After": "30"}),  # the probe: above its 1-2 s wait
            answer(),
        ]
    )

    async def body(rig: Rig) -> None:
        await rig.put(1)
        await rig.worker.drain()
        await rig.put(3, first=1)  # the tag backs off: new events wait too
        rig.clock.advance(119)
        await rig.worker.drain()
        assert len(rig.tiktok.requests) == 1
        rig.clock.advance(1)
        await rig.worker.drain()
        assert len(rig.tiktok.requests) == 2
        await rig.put(2, first=4)  # due at once, but the tag waits the probe's Retry-After
        rig.clock.advance(29)
        await rig.worker.drain()
        assert len(rig.tiktok.requests) == 2
        rig.clock.advance(1)
        await rig.worker.drain()
        assert (await rig.queue.stats()).depth == 0
        assert [len(body["data"]) for body in rig.tiktok.bodies] == [1, 4, 6]

    scenario(body, lambda _: next(answers))


def test_connection_errors_are_retried() -> None:
    failures = iter([True, False])

    def respond(body: Body) -> httpx.Response:
        if next(failures):
            raise httpx.ConnectError("connection refused")
        return answer()

    async def body(rig: Rig) -> None:
        await rig.put(2)
        await rig.worker.drain()
        assert (await rig.queue.stats()).depth == 2
        assert rig.results[0].message == "ConnectError: connection refused"
        rig.clock.advance(1.0)
        await rig.worker.drain()
        assert (await rig.queue.stats()).depth == 0
        assert rig.kinds() == ["retry", "delivered"]

    scenario(body, respond)


def test_an_outage_holds_the_tag_back_and_one_probe_goes_out_per_back_off() -> None:
    up = False

    def respond(body: Body) -> httpx.Response:
        return answer() if up or body["event_source_id"] != "PIXEL1" else answer(status=503)

    async def body(rig: Rig) -> None:
        nonlocal up
        await rig.put(5)
        await rig.put(2, tag="free", first=100)  # another tag keeps going
        await rig.worker.drain()
        state = rig.worker.backing_off["shop"]
        assert (state.reason, state.failures, state.since) == ("server_error", 1, rig.clock.now)
        assert rig.clock.now <= state.retry_at < rig.clock.now + 1  # base * 2**0, jittered
        assert "free" not in rig.worker.backing_off
        assert len(rig.tiktok.requests) == 2
        await rig.put(5, first=5)  # new events during the outage wait in the queue
        await rig.worker.drain()
        assert len(rig.tiktok.requests) == 2
        for failures in range(2, 6):  # one probe per back-off, carrying every event that is due
            rig.clock.advance(rig.worker.backing_off["shop"].retry_at - rig.clock.now)
            await rig.worker.drain()
            assert len(rig.tiktok.requests) == failures + 1
            state = rig.worker.backing_off["shop"]
            assert state.failures == failures
            assert state.retry_at - rig.clock.now < 2 ** (failures - 1)
        assert len(rig.tiktok.bodies[-1]["data"]) >= 5  # the new events at least
        up = True
        rig.clock.advance(300)
        await rig.worker.drain()
        assert rig.worker.backing_off == {}
        assert (await rig.queue.stats()).depth == 0
        assert len(rig.tiktok.requests) == 7  # 2, four failed probes, the one delivered

    scenario(body, respond, max_events=1000)


def test_a_long_outage_is_probed_at_least_every_probe_interval() -> None:
    async def body(rig: Rig) -> None:
        await rig.put(1)
        await rig.worker.drain()
        for failures in range(2, 12):  # 2**10 s would be far above both caps
            rig.clock.advance(rig.worker.backing_off["shop"].retry_at - rig.clock.now)
            await rig.put(1, first=failures)  # traffic goes on: the probe has an event to carry
            await rig.worker.drain()
            state = rig.worker.backing_off["shop"]
            assert state.failures == failures
            assert state.retry_at - rig.clock.now <= 5

    policy = BackoffPolicy(base=1.0, cap=300.0, probe_interval=5.0)
    tiktok = scenario(body, lambda _: answer(status=502), policy=policy)
    assert len(tiktok.requests) == 11


def test_a_probe_that_ends_without_an_answer_does_not_hold_the_tag_forever() -> None:
    answers = iter([answer(status=500)])

    def respond(body: Body) -> httpx.Response:
        response = next(answers, None)
        if response is None:  # a bug while sending: the worker logs it, releases the batch
            raise RuntimeError("boom")
        return response

    async def body(rig: Rig) -> None:
        nonlocal answers
        await rig.put(1)
        await rig.worker.drain()
        rig.clock.advance(1)
        await rig.worker.drain()  # the probe fails without an answer: a failed probe
        assert len(rig.tiktok.requests) == 2
        assert rig.worker.backing_off["shop"].failures == 2
        answers = iter([answer()])
        rig.clock.advance(2)
        await rig.worker.drain()  # the next batch probes, and is delivered
        assert len(rig.tiktok.requests) == 3
        assert rig.worker.backing_off == {}
        assert (await rig.queue.stats()).depth == 0

    scenario(body, respond)


def test_a_batch_that_fails_inside_the_worker_backs_its_tag_off_instead_of_looping() -> None:
    calls = 0

    def respond(body: Body) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:  # a bug while sending; the released events must not go out again at once
            raise RuntimeError("boom")
        return answer()

    async def body(rig: Rig) -> None:
        await rig.put(2)
        await rig.worker.drain()
        assert len(rig.tiktok.requests) == 1
        state = rig.worker.backing_off["shop"]
        assert (state.reason, state.failures) == ("delivery_error", 1)
        stats = await rig.queue.stats()
        assert (stats.depth, stats.leased) == (2, 0)  # released, not lost
        rig.clock.advance(1)
        await rig.worker.drain()
        assert len(rig.tiktok.requests) == 2
        assert (await rig.queue.stats()).depth == 0

    scenario(body, respond)


def test_a_code_retried_only_a_few_times_does_not_hold_the_tag() -> None:
    answers = iter([answer(45678, "new"), answer()])

    async def body(rig: Rig) -> None:
        await rig.put(1)
        await rig.worker.drain()
        await rig.put(1, first=1)
        await rig.worker.drain()  # sent at once: the unknown code may concern that batch only
        assert len(rig.tiktok.requests) == 2
        assert rig.worker.backing_off == {}

    scenario(body, lambda _: next(answers))


def test_partial_success_is_delivered_and_reported() -> None:
    def respond(body: Body) -> httpx.Response:
        data = {"failed_events": [{"index": 1}]}
        return httpx.Response(200, json={"code": 20001, "message": "Partial", "data": data})

    async def body(rig: Rig) -> None:
        await rig.put(3)
        await rig.worker.drain()
        assert (await rig.queue.stats()).depth == 0
        [result] = rig.results
        assert (result.outcome_kind, result.events) == ("partial", 3)
        assert "failed_events" in result.message

    scenario(body, respond)


def test_a_failing_observer_does_not_stop_delivery() -> None:
    tiktok = TikTok()

    def explode(result: DeliveryResult) -> None:
        raise RuntimeError("observer bug")

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(tiktok.handle)) as client:
            queue = MemoryQueue(FakeClock())
            worker = DeliveryWorker(
                queue, destinations(), client, clock=FakeClock(), on_result=explode
            )
            envelope = Envelope("shop", "PIXEL1", None, {"event": "Lead", "event_id": "x"})
            await queue.put([NewItem(envelope.group, envelope.to_bytes())])
            await worker.drain()
            assert (await queue.stats()).depth == 0

    asyncio.run(main())
    assert len(tiktok.requests) == 1


def test_post_batch_returns_transport_errors_instead_of_raising() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async def main() -> TrackReply:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await post_batch(client, API, "tok", b"{}", timeout=1.0)

    reply = asyncio.run(main())
    assert isinstance(reply.error, httpx.ReadTimeout)
    assert reply.classify(0.0) == Retry(
        None, "timeout", None, "ReadTimeout: timed out", cause="transport"
    )


def test_tiktok_names_the_bad_event_and_only_it_is_dead_lettered() -> None:
    message = "Batch.{}.properties.contents.0.content_id: Not a valid string"

    def respond(body: Body) -> httpx.Response:
        ids = [event["event_id"] for event in body["data"]]
        if "e3" in ids:
            return answer(40002, message.format(ids.index("e3")))
        return answer()

    async def body(rig: Rig) -> None:
        await rig.put(6)
        await rig.worker.drain()
        assert await rig.dead() == {"e3": ("rejected", 40002, message.format(3), "req-40002")}
        assert (await rig.queue.stats()).depth == 0
        assert rig.kinds() == ["rejected", "delivered"]

    tiktok = scenario(body, respond)
    assert len(tiktok.requests) == 2
    assert tiktok.ids(1) == ["e0", "e1", "e2", "e4", "e5"]


def test_bisection_isolates_two_bad_events_among_sixteen() -> None:
    bad = {"e5", "e12"}

    def respond(body: Body) -> httpx.Response:
        if bad & {event["event_id"] for event in body["data"]}:
            return answer(40002, "Invalid params")  # no Batch.<i>: the worker must bisect
        return answer()

    async def body(rig: Rig) -> None:
        await rig.put(16)
        await rig.worker.drain()
        dead = await rig.dead()
        assert set(dead) == bad
        assert {d[0] for d in dead.values()} == {"rejected"}
        assert (await rig.queue.stats()).depth == 0
        delivered = [r for r in rig.results if r.outcome_kind == "delivered"]
        assert sum(r.events for r in delivered) == 14

    tiktok = scenario(body, respond)
    # 16, then 2 x 8, then for each bad half 2 x 4, 2 x 2, 2 x 1: 1 + 2 + 2 * 6 requests,
    # within the bound of bisection, 1 + 2 k log2(n).
    assert len(tiktok.requests) == 15 <= 1 + 2 * 2 * 4


def test_invalid_token_pauses_the_tag_until_a_probe_is_delivered() -> None:
    token_ok = False

    def respond(body: Body) -> httpx.Response:
        if token_ok or body["event_source_id"] != "PIXEL1":
            return answer()
        return answer(40105, "Access token is invalid")

    async def body(rig: Rig) -> None:
        nonlocal token_ok
        await rig.put(5)
        await rig.put(2, tag="free", first=100)  # another tag keeps going
        await rig.worker.drain()
        state = rig.worker.paused["shop"]
        assert (state.code, state.reason, state.probe_at) == (
            40105,
            "token_invalid",
            rig.clock.now + 60,
        )
        stats = await rig.queue.stats()
        assert (stats.depth, stats.leased, stats.dead) == (5, 0, 0)
        requests = len(rig.tiktok.requests)
        rig.clock.advance(30)
        await rig.worker.drain()
        assert len(rig.tiktok.requests) == requests  # no probe before probe_at
        rig.clock.advance(30)
        await rig.worker.drain()  # the probe fails: another interval
        assert len(rig.tiktok.requests) == requests + 1
        assert rig.worker.paused["shop"].probe_at == rig.clock.now + 60
        assert rig.worker.paused["shop"].since == state.since
        token_ok = True
        rig.clock.advance(60)
        await rig.worker.drain()
        assert rig.worker.paused == {}
        assert (await rig.queue.stats()).depth == 0
        assert [item.attempts for item in rig.queue.leased if item.group.startswith("shop")] == [
            0
        ] * 15

    scenario(body, respond)


def test_batch_too_large_is_split() -> None:
    def respond(body: Body) -> httpx.Response:
        return answer(40061, "Batch too large") if len(body["data"]) > 4 else answer()

    async def body(rig: Rig) -> None:
        await rig.put(10)
        await rig.worker.drain()
        assert (await rig.queue.stats()).depth == 0
        assert rig.kinds().count("split") == 3

    tiktok = scenario(body, respond)
    sizes = [len(b["data"]) for b in tiktok.bodies]
    assert sizes == [10, 5, 2, 3, 5, 2, 3]
    delivered = [
        i for n, b in enumerate(tiktok.bodies) if len(b["data"]) <= 4 for i in tiktok.ids(n)
    ]
    assert sorted(delivered) == sorted(f"e{n}" for n in range(10))


def test_events_past_the_expiry_are_dead_lettered_as_expired() -> None:
    async def body(rig: Rig) -> None:
        await rig.put(1)
        rig.clock.advance(7 * 24 * 3600 + 1)
        await rig.put(1, first=1)
        await rig.worker.drain()
        assert await rig.dead() == {"e0": ("expired", None, "HTTP 503", "")}
        assert (await rig.queue.stats()).depth == 1
        assert sorted(rig.kinds()) == ["expired", "retry"]

    scenario(body, lambda _: answer(status=503))


def test_unknown_codes_give_up_after_the_cap() -> None:
    async def body(rig: Rig) -> None:
        await rig.put(1)
        for _ in range(20):
            await rig.worker.drain()
            rig.clock.advance(301)
        # TikTok's request id of the last answer is kept, so its support can find the request.
        assert await rig.dead() == {"e0": ("retries_exhausted", 45678, "new", "req-45678")}

    tiktok = scenario(body, lambda _: answer(45678, "new"))
    assert len(tiktok.requests) == 20


def test_bad_payloads_and_unknown_destinations_are_dead_lettered() -> None:
    async def body(rig: Rig) -> None:
        await rig.queue.put([NewItem("shop", b"not json"), NewItem("shop", b"[1]")])
        await rig.put(1, tag="gone")
        await rig.put(1, first=1)
        await rig.worker.drain()
        records = await rig.queue.dead_letters()
        assert sorted(r.reason for r in records) == [
            "invalid_payload",
            "invalid_payload",
            "unknown_destination",
        ]
        assert (await rig.queue.stats()).depth == 0

    tiktok = scenario(body)
    assert len(tiktok.requests) == 1


def test_an_event_damaged_in_the_queue_is_isolated_by_bisection() -> None:
    """The worker splices queued event bytes into the body unparsed; if one was damaged (the
    queue file edited), TikTok refuses the whole body and bisection finds the event."""
    envelope = Envelope("shop", "PIXEL1", None, {"event": "ViewContent", "event_id": "bad"})
    damaged = envelope.to_bytes().replace(b'"event":"ViewContent"', b'"event":ViewContent')

    async def body(rig: Rig) -> None:
        await rig.put(2)
        await rig.queue.put([NewItem(envelope.group, damaged)])
        await rig.put(2, first=2)
        await rig.worker.drain()
        [record] = await rig.queue.dead_letters()
        assert (record.payload, record.reason, record.code) == (damaged, "rejected", 40002)
        assert (await rig.queue.stats()).depth == 0

    tiktok = scenario(body)
    delivered = sorted(event["event_id"] for b in tiktok.bodies for event in b["data"])
    assert delivered == ["e0", "e1", "e2", "e3"]


def test_groups_with_different_test_codes_never_share_a_request() -> None:
    async def body(rig: Rig) -> None:
        await rig.put(2)
        await rig.put(2, test_code="TEST1", first=2)
        await rig.put(1, first=4)
        await rig.worker.drain()

    tiktok = scenario(body)
    by_code = {b.get("test_event_code"): [e["event_id"] for e in b["data"]] for b in tiktok.bodies}
    assert by_code == {None: ["e0", "e1", "e4"], "TEST1": ["e2", "e3"]}
    assert len(tiktok.bodies) == 2


def test_a_request_holds_at_most_1000_events() -> None:
    async def body(rig: Rig) -> None:
        await rig.put(2500)
        await rig.worker.drain()
        assert (await rig.queue.stats()).depth == 0

    tiktok = scenario(body)
    assert [len(b["data"]) for b in tiktok.bodies] == [1000, 1000, 500]


def test_requests_in_flight_are_bounded() -> None:
    tiktok = TikTok(latency=0.02)

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(tiktok.handle)) as client:
            rig = Rig(tiktok, client, max_in_flight=2)
            for n in range(6):
                await rig.put(1, test_code=f"T{n}", first=n)
            await rig.worker.drain()
            assert (await rig.queue.stats()).depth == 0

    asyncio.run(main())
    assert len(tiktok.requests) == 6
    assert tiktok.max_concurrent == 2


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.005)


def test_run_flushes_a_partial_batch_after_max_wait() -> None:
    async def body(rig: Rig) -> None:
        task = asyncio.create_task(rig.worker.run())
        await rig.put(3)

        async def leased() -> bool:
            return (await rig.queue.stats()).leased == 3

        await eventually(leased)
        await asyncio.sleep(0.05)
        assert rig.tiktok.requests == []  # the fake clock has not reached max_wait
        rig.clock.advance(1.0)

        async def delivered() -> bool:
            return (await rig.queue.stats()).depth == 0

        await eventually(delivered)
        await rig.worker.stop()
        await task
        assert rig.tiktok.ids(0) == ["e0", "e1", "e2"]

    scenario(body, poll_interval=0.01)


def test_stop_flushes_waits_and_releases_the_rest() -> None:
    def respond(body: Body) -> httpx.Response:
        return answer()

    tiktok = TikTok(respond)
    slow_started = asyncio.Event()

    async def handle(request: httpx.Request) -> httpx.Response:
        code = json.loads(request.content).get("test_event_code")
        if code == "SLOW":  # in flight when stop() is called; finishes within the deadline
            slow_started.set()
            await asyncio.sleep(0.1)
        elif code == "HANG":  # never answers: cancelled at the deadline, its events released
            await asyncio.sleep(30)
        return await tiktok.handle(request)

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            rig = Rig(tiktok, client, max_wait=60.0, poll_interval=0.01, lease_limit=5000)
            await rig.put(2, first=0)  # a partial batch: only sent by stop()'s flush
            await rig.put(3, test_code="HANG", first=10)
            await rig.put(1000, test_code="SLOW", first=100)  # full: sent at once
            task = asyncio.create_task(rig.worker.run())
            await slow_started.wait()
            started = asyncio.get_running_loop().time()
            await rig.worker.stop(deadline=0.5)
            elapsed = asyncio.get_running_loop().time() - started
            await task
            assert 0.4 < elapsed < 2.0
            stats = await rig.queue.stats()
            assert (stats.depth, stats.leased, stats.dead) == (3, 0, 0)
            left = await rig.queue.lease(10, 60.0)
            assert sorted(json.loads(i.payload)["event"]["event_id"] for i in left) == [
                "e10",
                "e11",
                "e12",
            ]
            assert all(item.attempts == 0 for item in left)  # released, not nacked

    asyncio.run(main())
    sent = {b.get("test_event_code"): len(b["data"]) for b in tiktok.bodies}
    assert sent == {"SLOW": 1000, None: 2}


def test_the_next_batch_is_leased_while_every_request_slot_is_busy() -> None:
    held: list[int] = []  # events leased and not yet answered, as each request is answered

    async def body(rig: Rig) -> None:
        def respond(body: Body) -> httpx.Response:
            answered = sum(len(earlier["data"]) for earlier in rig.tiktok.bodies)
            held.append(len(rig.queue.leased) - answered)
            return answer()

        rig.tiktok.respond, rig.tiktok.latency = respond, 0.1
        await rig.put(8)
        running = asyncio.create_task(rig.worker.run())
        while (await rig.queue.stats()).depth:
            await asyncio.sleep(0.01)
        await rig.worker.stop()
        await running

    scenario(body, max_in_flight=1, lease_limit=2, max_events=2)
    # One batch of 2 in flight and the next one leased ahead, never more; the last has none.
    assert held == [4, 4, 4, 2]
