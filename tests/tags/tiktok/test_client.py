"""Posting batches to the Events API over the network: the aiohttp poster a tag with a token
uses, against a real loopback server, puts the same request on the wire as the httpx path
(which the built-in sandbox and ``check --send-test`` use), and its failures classify alike."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.harness import config_of
from tests.servers import loopback_socket, served_in_thread
from tiktok_gateway.delivery.destination import Batch
from tiktok_gateway.delivery.outcome import Delivered, Retry
from tiktok_gateway.queue.base import LeasedItem
from tiktok_gateway.tags.tiktok.client import AiohttpPoster, TrackReply, env_proxy, post_batch
from tiktok_gateway.tags.tiktok.envelope import Envelope, RawEnvelope
from tiktok_gateway.tags.tiktok.kind import destinations

BODY = b'{"event_source":"web","event_source_id":"CTEST","data":[{"event":"Pageview"}]}'


@dataclass
class Recorder:
    """What the stand-in saw, (method, path, headers, body) per request; ``delay``: before it
    answers."""

    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    delay: float = 0.0

    def app(self) -> Starlette:
        async def track(request: Request) -> Response:
            body = await request.body()
            self.seen.append((request.method, request.url.path, dict(request.headers), body))
            await asyncio.sleep(self.delay)
            return JSONResponse({"code": 0, "message": "OK", "request_id": "req-1"})

        return Starlette(routes=[Route("/open_api/v1.3/event/track/", track, methods=["POST"])])


@pytest.fixture
def tiktok() -> Iterator[tuple[Recorder, str]]:
    recorder = Recorder()
    with served_in_thread(
        recorder.app(), lambda app, port: uvicorn.Config(app, port=port, log_level="warning")
    ) as url:
        yield recorder, url


async def _via_aiohttp(url: str, token: str | None, timeout: float = 5.0) -> TrackReply:
    poster = AiohttpPoster(2)
    try:
        return await poster.post(url, token, BODY, timeout)
    finally:
        await poster.aclose()


async def _via_httpx(url: str, token: str | None) -> TrackReply:
    async with httpx.AsyncClient() as client:
        return await post_batch(client, url, token, BODY, 5.0)


def test_both_paths_send_the_same_request_and_read_the_same_answer(
    tiktok: tuple[Recorder, str],
) -> None:
    recorder, url = tiktok
    replies = [asyncio.run(_via_aiohttp(url, "tok-1")), asyncio.run(_via_httpx(url, "tok-1"))]
    for reply in replies:
        assert reply.status == 200
        assert reply.error is None
        assert json.loads(reply.body or b"") == {"code": 0, "message": "OK", "request_id": "req-1"}
        assert reply.classify(time.time()) == Delivered("req-1", partial=False, detail="OK")
    (m1, path1, headers1, body1), (m2, path2, headers2, body2) = recorder.seen
    assert (m1, path1, body1) == (m2, path2, body2) == ("POST", "/open_api/v1.3/event/track/", BODY)
    for headers in (headers1, headers2):
        assert headers["content-type"] == "application/json"
        assert headers["access-token"] == "tok-1"
        assert headers["content-length"] == str(len(BODY))


def test_no_token_no_access_token_header(tiktok: tuple[Recorder, str]) -> None:
    recorder, url = tiktok
    asyncio.run(_via_aiohttp(url + "/", None))  # a trailing slash on the base URL is fine
    [(_, path, headers, _)] = recorder.seen
    assert path == "/open_api/v1.3/event/track/"
    assert "access-token" not in headers


def test_a_slow_answer_is_a_timeout_to_retry(tiktok: tuple[Recorder, str]) -> None:
    recorder, url = tiktok
    recorder.delay = 1.0
    reply = asyncio.run(_via_aiohttp(url, "tok-1", timeout=0.2))
    assert isinstance(reply.error, TimeoutError)
    outcome = reply.classify(time.time())
    assert isinstance(outcome, Retry)
    assert (outcome.reason, outcome.cause) == ("timeout", "transport")


def test_a_refused_connection_is_a_connection_failure_to_retry() -> None:
    with loopback_socket() as sock:  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        reply = asyncio.run(_via_aiohttp(url, "tok-1"))
    assert reply.error is not None
    assert reply.status is None
    outcome = reply.classify(time.time())
    assert isinstance(outcome, Retry)
    assert (outcome.reason, outcome.cause) == ("connection", "transport")


def test_a_tag_with_a_token_delivers_through_its_own_client(
    tiktok: tuple[Recorder, str],
) -> None:
    """The runtime's httpx client is left alone (here it fails every request)."""
    recorder, url = tiktok
    config = config_of({"TIKTOK_ACCESS_TOKEN": "tok-2", "TIKTOK_API_URL": url})
    [destination] = destinations(config, "http://sandbox.internal")
    payload = Envelope("default", "CTEST", None, {"event": "Pageview", "event_id": "e1"}).to_bytes()
    unit = RawEnvelope.from_bytes(payload)
    batch = Batch(
        destination.name, unit.route, (LeasedItem("1:1", "default", payload, 0, 0.0),), (unit,)
    )

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("the runtime's client must not be used", request=request)

    async def main() -> object:
        async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
            try:
                return await destination.send(client, batch)
            finally:
                await destination.aclose()

    assert asyncio.run(main()) == Delivered("req-1", partial=False, detail="OK")
    [(_, _, headers, body)] = recorder.seen
    assert headers["access-token"] == "tok-2"
    assert json.loads(body)["data"] == [{"event": "Pageview", "event_id": "e1"}]


def test_the_proxy_the_environment_names_is_used(
    tiktok: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the httpx client did: HTTP(S)_PROXY, and NO_PROXY exempting hosts."""
    recorder, proxy = tiktok  # the stand-in takes the absolute-form request a proxy gets
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    reply = asyncio.run(_via_aiohttp("http://tiktok.invalid", "tok-1"))
    assert reply.status == 200
    [(_, path, headers, body)] = recorder.seen
    assert (path, headers["host"], body) == ("/open_api/v1.3/event/track/", "tiktok.invalid", BODY)
    monkeypatch.setenv("NO_PROXY", "tiktok.invalid")
    monkeypatch.setenv("no_proxy", "tiktok.invalid")
    assert env_proxy("http://tiktok.invalid") is None
    assert env_proxy("http://business-api.tiktok.com") == proxy
