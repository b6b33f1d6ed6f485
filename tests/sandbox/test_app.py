from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from tests.fakes import FakeClock
from tests.servers import served_in_thread
from tiktok_gateway.sandbox.app import Sandbox, create_sandbox_app, sandbox_of
from tiktok_gateway.sandbox.faults import FaultInjector, FaultKind, FaultSettings
from tiktok_gateway.sandbox.server import sandbox_server_config
from tiktok_gateway.tags.tiktok.payload import TRACK_PATH, TrackResponse, request_body

T = TypeVar("T")
TOKEN = "sandbox-secret-token"
HASH = hashlib.sha256(b"user_123").hexdigest()


def event(name: str = "CompletePayment", event_id: str = "e1") -> dict[str, Any]:
    return {
        "event": name,
        "event_time": 1700000000,
        "event_id": event_id,
        "user": {"external_id": HASH},
        "properties": {"contents": [{"content_id": "sku", "price": 9.5, "quantity": 1}]},
    }


def batch(pixel: str = "PIXEL1", *events: dict[str, Any], test_code: str | None = None) -> bytes:
    return json.dumps(request_body(pixel, list(events) or [event()], test_code)).encode()


def run(app: Starlette, scenario: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            return await scenario(client)

    return asyncio.run(main())


def send(app: Starlette, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def scenario(client: httpx.AsyncClient) -> httpx.Response:
        return await client.request(method, url, **kwargs)

    return run(app, scenario)


def post(app: Starlette, content: bytes, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Access-Token"] = token
    return send(app, "POST", TRACK_PATH, content=content, headers=headers)


def listing(app: Starlette, query: str = "") -> dict[str, Any]:
    response = send(app, "GET", f"/sandbox/events{query}")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def answer(response: httpx.Response) -> TrackResponse:
    assert response.status_code == 200
    return TrackResponse.model_validate(response.json())


def test_accepted_batch_is_answered_like_tiktok_and_kept() -> None:
    app = create_sandbox_app(access_token=TOKEN)
    response = post(app, batch("PIXEL1", event(), event("ViewContent", "e2"), test_code="T1"))
    body = response.json()
    assert set(body) == {"code", "message", "request_id", "data"}
    assert (body["code"], body["message"], body["data"]) == (0, "OK", {})
    assert body["request_id"]
    listed = listing(app)
    assert [e["event"]["event"] for e in listed["events"]] == ["CompletePayment", "ViewContent"]
    first = listed["events"][0]
    assert first["pixel_code"] == "PIXEL1"
    assert first["test_event_code"] == "T1"
    assert first["request_id"] == body["request_id"]
    assert first["received_at"] > 0
    assert listed["accepted_total"] == 2
    assert listed["requests_total"] == 1
    assert listed["rejected_total"] == 0


def test_request_ids_are_unique() -> None:
    app = create_sandbox_app()
    ids = {answer(post(app, batch())).request_id for _ in range(20)}
    assert len(ids) == 20


def test_path_without_trailing_slash_is_not_found() -> None:
    app = create_sandbox_app()
    response = post(app, batch())
    assert response.status_code == 200
    no_slash = send(app, "POST", TRACK_PATH.rstrip("/"), content=batch())
    assert no_slash.status_code == 404
    assert send(app, "GET", TRACK_PATH).status_code == 405


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_token_missing_or_wrong(token: str | None) -> None:
    app = create_sandbox_app(access_token=TOKEN)
    result = answer(post(app, batch(), token=token))
    assert result.code == 40105
    assert TOKEN not in result.message
    assert listing(app)["events"] == []
    assert listing(app)["rejected_total"] == 1


def test_token_never_echoed() -> None:
    app = create_sandbox_app(access_token=TOKEN)
    post(app, batch())
    post(app, batch(), token="wrong")
    for url in ("/sandbox/", "/sandbox", "/sandbox/events"):
        response = send(app, "GET", url)
        assert response.status_code == 200
        assert TOKEN not in response.text
    assert TOKEN not in repr(sandbox_of(app))


def test_without_configured_token_any_token_is_accepted() -> None:
    app = create_sandbox_app()
    assert answer(post(app, batch(), token=None)).code == 0
    assert answer(post(app, batch(), token="whatever")).code == 0


def test_invalid_batch_is_rejected_whole() -> None:
    app = create_sandbox_app()
    bad = event(event_id="e2")
    bad["properties"]["contents"][0]["content_id"] = 5
    result = answer(post(app, batch("P", event(), bad)))
    assert result.code == 40002
    assert result.message == "Batch.1.properties.contents.0.content_id: Not a valid string"
    assert result.request_id
    listed = listing(app)
    assert listed["events"] == []
    assert (listed["requests_total"], listed["rejected_total"]) == (1, 1)


def test_listing_filters_and_limits_newest_last() -> None:
    app = create_sandbox_app()
    post(app, batch("A", event(event_id="a1"), event(event_id="a2")))
    post(app, batch("B", event(event_id="b1")))
    post(app, batch("A", event(event_id="a3")))
    ids = [e["event"]["event_id"] for e in listing(app)["events"]]
    assert ids == ["a1", "a2", "b1", "a3"]
    only_a = listing(app, "?pixel=A")
    assert [e["event"]["event_id"] for e in only_a["events"]] == ["a1", "a2", "a3"]
    assert only_a["count"] == 3
    assert only_a["accepted_total"] == 4
    last_two = listing(app, "?pixel=A&limit=2")
    assert [e["event"]["event_id"] for e in last_two["events"]] == ["a2", "a3"]
    assert listing(app, "?limit=0")["events"] == []
    for limit in ("-1", "x"):
        bad = send(app, "GET", f"/sandbox/events?limit={limit}")
        assert bad.status_code == 400
        assert bad.json()["error"] == "invalid_limit"


def test_clear_forgets_events_and_totals() -> None:
    app = create_sandbox_app()
    post(app, batch("A", event(), event()))
    cleared = send(app, "DELETE", "/sandbox/events")
    assert cleared.json() == {"cleared": 2}
    listed = listing(app)
    assert listed["events"] == []
    assert (listed["accepted_total"], listed["requests_total"]) == (0, 0)


def test_store_is_bounded_but_totals_count_everything() -> None:
    app = create_sandbox_app(capacity=3)
    for index in range(5):
        post(app, batch("A", event(event_id=str(index))))
    listed = listing(app)
    assert [e["event"]["event_id"] for e in listed["events"]] == ["2", "3", "4"]
    assert (listed["kept"], listed["capacity"], listed["accepted_total"]) == (3, 3, 5)


def test_state_is_reachable_from_the_app() -> None:
    app = create_sandbox_app()
    post(app, batch("A", event(), test_code="T"))
    sandbox = sandbox_of(app)
    assert isinstance(sandbox, Sandbox)
    assert app.state.sandbox is sandbox
    (stored,) = sandbox.store.events()
    assert (stored.pixel_code, stored.test_event_code) == ("A", "T")
    assert sandbox.store.totals().accepted_total == 1
    with pytest.raises(TypeError):
        sandbox_of(Starlette())


def test_summary() -> None:
    app = create_sandbox_app(access_token=TOKEN, faults=FaultSettings(latency_ms=0))
    post(app, batch())
    summary = send(app, "GET", "/sandbox/").json()
    assert summary["track_path"] == TRACK_PATH
    assert summary["token_required"] is True
    assert summary["outage_active"] is False
    assert summary["faults"]["fail_rate"] == 0
    assert (summary["accepted_total"], summary["requests_total"]) == (1, 1)


def test_events_that_are_not_utf8_still_list() -> None:
    app = create_sandbox_app()
    content = batch().replace(b'"e1"', b'"\\ud800"')
    assert answer(post(app, content)).code == 0
    assert listing(app)["events"][0]["event"]["event_id"] == "\ud800"


def test_outage_at_start_ends_with_the_clock() -> None:
    clock = FakeClock()
    app = create_sandbox_app(faults=FaultSettings(outage_seconds=4.5), clock=clock)
    down = post(app, batch())
    assert down.status_code == 503
    assert down.headers["Retry-After"] == "5"
    clock.now += 4.4
    assert post(app, batch()).status_code == 503
    clock.now += 0.1
    assert answer(post(app, batch())).code == 0
    listed = listing(app)
    assert (listed["requests_total"], listed["faulted_total"], listed["accepted_total"]) == (
        3,
        2,
        1,
    )


def test_outage_started_and_ended_through_the_api() -> None:
    clock = FakeClock()
    app = create_sandbox_app(clock=clock)
    started = send(app, "POST", "/sandbox/outage?seconds=30")
    assert started.json() == {"outage": True, "seconds": 30.0}
    assert post(app, batch()).status_code == 503
    assert send(app, "GET", "/sandbox/").json()["outage_remaining_seconds"] == 30.0
    assert send(app, "DELETE", "/sandbox/outage").json() == {"outage": False}
    assert answer(post(app, batch())).code == 0

    assert send(app, "POST", "/sandbox/outage").json() == {"outage": True, "seconds": None}
    clock.now += 10**9
    open_ended = post(app, batch())
    assert open_ended.status_code == 503
    assert "Retry-After" not in open_ended.headers
    summary = send(app, "GET", "/sandbox/").json()
    assert (summary["outage_active"], summary["outage_remaining_seconds"]) == (True, None)
    send(app, "DELETE", "/sandbox/outage")
    assert answer(post(app, batch())).code == 0


@pytest.mark.parametrize("seconds", ["0", "-1", "x", "inf", "nan"])
def test_outage_with_bad_seconds(seconds: str) -> None:
    app = create_sandbox_app()
    response = send(app, "POST", f"/sandbox/outage?seconds={seconds}")
    assert response.status_code == 400
    assert answer(post(app, batch())).code == 0


def test_fail_rate_one_alternates_http_500_and_code_50000() -> None:
    app = create_sandbox_app(faults=FaultSettings(fail_rate=1.0))
    responses = [post(app, batch()) for _ in range(4)]
    assert [r.status_code for r in responses] == [500, 200, 500, 200]
    assert answer(responses[1]).code == 50000
    assert answer(responses[3]).request_id
    listed = listing(app)
    assert listed["events"] == []
    assert (listed["faulted_total"], listed["rejected_total"]) == (4, 0)


def test_throttle_rate_one_answers_40100() -> None:
    app = create_sandbox_app(faults=FaultSettings(throttle_rate=1.0))
    result = answer(post(app, batch()))
    assert result.code == 40100
    assert "Too many requests" in result.message
    assert listing(app)["events"] == []


def fault_sequence(seed: int) -> list[tuple[int, int | None]]:
    app = create_sandbox_app(faults=FaultSettings(fail_rate=0.3, throttle_rate=0.3), seed=seed)

    async def scenario(client: httpx.AsyncClient) -> list[tuple[int, int | None]]:
        seen: list[tuple[int, int | None]] = []
        for _ in range(40):
            response = await client.post(TRACK_PATH, content=batch())
            code = response.json()["code"] if response.status_code == 200 else None
            seen.append((response.status_code, code))
        return seen

    return run(app, scenario)


def test_seed_makes_faults_reproducible() -> None:
    first = fault_sequence(7)
    assert first == fault_sequence(7)
    assert {(200, 0), (200, 40100), (500, None)} <= set(first)
    assert fault_sequence(8) != first


def test_latency_is_added_to_every_request() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    app = create_sandbox_app(faults=FaultSettings(latency_ms=250, throttle_rate=0.5), sleep=sleep)
    for _ in range(3):
        post(app, batch())
    assert slept == [0.25, 0.25, 0.25]


def test_real_latency_uses_asyncio_sleep() -> None:
    app = create_sandbox_app(faults=FaultSettings(latency_ms=5))
    started = time.perf_counter()
    assert answer(post(app, batch())).code == 0
    assert time.perf_counter() - started >= 0.004


@pytest.mark.parametrize(
    "settings",
    [
        {"fail_rate": -0.1},
        {"fail_rate": 1.5},
        {"throttle_rate": 2},
        {"fail_rate": 0.6, "throttle_rate": 0.6},
        {"latency_ms": -1},
        {"outage_seconds": float("inf")},
    ],
)
def test_fault_settings_are_checked(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        FaultSettings(**settings)


def test_injector_decides_without_http() -> None:
    clock = FakeClock()
    injector = FaultInjector(FaultSettings(), random.Random(1), clock)
    assert injector.decide() is None
    injector.start_outage(2)
    fault = injector.decide()
    assert fault is not None
    assert (fault.kind, fault.status, fault.retry_after) == (FaultKind.OUTAGE, 503, 2)
    clock.now += 2
    assert injector.outage_remaining() == 0
    assert injector.decide() is None
    with pytest.raises(ValueError, match="more than 0"):
        injector.start_outage(0)


def test_mounted_inside_another_app() -> None:
    sandbox_app = create_sandbox_app()
    outer = Starlette(routes=[Mount("/tiktok", app=sandbox_app)])
    response = send(outer, "POST", f"/tiktok{TRACK_PATH}", content=batch())
    assert answer(response).code == 0
    assert (
        send(outer, "POST", f"/tiktok{TRACK_PATH}".rstrip("/"), content=batch()).status_code == 404
    )
    assert len(sandbox_of(sandbox_app).store) == 1


def test_admin_prefix_for_mounting_at_sandbox() -> None:
    sandbox_app = create_sandbox_app(admin_prefix="")
    outer = Starlette(routes=[Mount("/sandbox", app=sandbox_app)])
    assert answer(send(outer, "POST", f"/sandbox{TRACK_PATH}", content=batch())).code == 0
    assert send(outer, "GET", "/sandbox/events").json()["count"] == 1
    assert send(outer, "GET", "/sandbox/").json()["accepted_total"] == 1
    assert send(outer, "POST", "/sandbox/outage?seconds=5").status_code == 200
    assert send(outer, "POST", f"/sandbox{TRACK_PATH}", content=batch()).status_code == 503
    assert send(outer, "DELETE", "/sandbox/outage").status_code == 200
    assert send(outer, "DELETE", "/sandbox/events").json() == {"cleared": 1}


@pytest.mark.parametrize("prefix", ["sandbox", "/sandbox/", "/"])
def test_bad_admin_prefix(prefix: str) -> None:
    with pytest.raises(ValueError, match="admin_prefix"):
        create_sandbox_app(admin_prefix=prefix)


@pytest.fixture
def served() -> Iterator[tuple[str, Starlette]]:
    """The sandbox behind real uvicorn (uvloop, httptools) on a free loopback port."""
    app = create_sandbox_app(access_token=TOKEN)
    config = partial(sandbox_server_config, host="127.0.0.1")
    with served_in_thread(app, lambda app, port: config(app, port=port)) as url:
        yield url, app


def test_real_http_over_loopback(served: tuple[str, Starlette]) -> None:
    base_url, app = served
    with httpx.Client(base_url=base_url, timeout=5) as client:
        events = [event(event_id=str(i)) for i in range(50)]
        response = client.post(
            TRACK_PATH,
            content=batch("PIXEL9", *events),
            headers={"Access-Token": TOKEN, "Content-Type": "application/json"},
        )
        assert response.status_code == 200
        result = TrackResponse.model_validate(response.json())
        assert result.code == 0
        denied = client.post(TRACK_PATH, content=batch(), headers={"Access-Token": "nope"})
        assert denied.json()["code"] == 40105
        listed = client.get("/sandbox/events", params={"pixel": "PIXEL9"}).json()
    assert listed["count"] == 50
    assert listed["events"][-1]["event"]["event_id"] == "49"
    assert sandbox_of(app).store.totals().requests_total == 2
