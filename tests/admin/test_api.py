"""Admin auth and the admin API through the app (harness: in-process client, chosen peer)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
import pytest

from tests.harness import config_of, running
from tiktok_gateway.admin.auth import COOKIE_NAME, session_value
from tiktok_gateway.delivery.holds import BackoffState, PauseState
from tiktok_gateway.queue.base import DeadLetter, NewItem, Queue
from tiktok_gateway.tags.tiktok.envelope import Envelope

TOKEN = "admin-secret-token-123"
ADMIN = {"GATEWAY_ADMIN_TOKEN": TOKEN}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SURFACES = ["/admin/queue", "/admin/dead-letters", "/debug", "/debug/api/hits", "/debug/debug.js"]


def get_all(
    peer: str, environ: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    async def scenario() -> list[httpx.Response]:
        async with running(config_of(environ), peer=peer) as gateway:
            return [await gateway.client.get(path, headers=headers) for path in SURFACES]

    return asyncio.run(scenario())


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.8.9.10", "::1"])
def test_without_a_token_loopback_peers_are_admitted(peer: str) -> None:
    for response in get_all(peer):
        assert response.status_code == 200, response.request.url


def test_without_a_token_other_peers_are_forbidden() -> None:
    for response in get_all("203.0.113.9"):
        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"
        assert response.json()["detail"]


def test_a_forwarded_loopback_request_is_not_loopback() -> None:
    for response in get_all("127.0.0.1", headers={"X-Forwarded-For": "198.51.100.7"}):
        assert response.status_code == 403


@pytest.mark.parametrize("peer", ["127.0.0.1", "203.0.113.9"])
def test_with_a_token_the_bearer_decides(peer: str) -> None:
    for response in get_all(peer, ADMIN, BEARER):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
    for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for response in get_all(peer, ADMIN, headers):
            assert response.status_code == 401
            assert response.json()["error"] == "unauthorized"
            assert TOKEN not in response.text
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_token_in_the_url_sets_a_session_cookie_and_redirects() -> None:
    async def scenario() -> None:
        async with running(config_of(ADMIN)) as gateway:
            client = gateway.client
            wrong = await client.get("/debug", params={"token": "nope"})
            assert wrong.status_code == 401
            assert "set-cookie" not in wrong.headers
            assert TOKEN not in wrong.text
            # ?token= is for the page only, not for the API.
            assert (await client.get("/admin/queue", params={"token": TOKEN})).status_code == 401

            login = await client.get("/debug", params={"token": TOKEN, "event": "purchase"})
            assert login.status_code == 303
            assert login.headers["location"] == "/debug?event=purchase"
            cookie = login.headers["set-cookie"]
            assert TOKEN not in cookie
            assert TOKEN not in login.text
            assert f"{COOKIE_NAME}={session_value(TOKEN)}" in cookie
            for attribute in ("HttpOnly", "SameSite=strict", "Path=/", "Secure"):
                assert attribute in cookie

            page = await client.get("/debug")  # the client kept the cookie
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert 'id="hits"' in page.text
            assert TOKEN not in page.text
            assert (await client.get("/admin/queue")).status_code == 200
            client.cookies.set(COOKIE_NAME, "forged")
            assert (await client.get("/admin/queue")).status_code == 401

    asyncio.run(scenario())


def test_debug_can_be_turned_off() -> None:
    async def scenario() -> None:
        async with running(config_of(ADMIN)) as gateway:
            # ``gateway.debug`` (GATEWAY_DEBUG) is read with a default of true.
            config = gateway.runtime.config
            off = config.gateway.model_copy(update={"debug": False})
            gateway.runtime.config = dataclasses.replace(config, gateway=off)
            for path in ("/debug", "/debug/api/hits", "/debug/stream"):
                response = await gateway.client.get(path, headers=BEARER)
                assert response.status_code == 404, path

    asyncio.run(scenario())


async def dead_letter(queue: Queue, event: dict[str, Any], tag: str = "default") -> str:
    """Put one envelope and move it to the dead letters; returns its dead-letter id."""
    envelope = Envelope(tag, "CTEST", None, event)
    await queue.put([NewItem(envelope.group, envelope.to_bytes())])
    (item,) = await queue.lease(10, 60.0)
    await queue.dead_letter([DeadLetter(item.id, "rejected", 40002, "bad event_time", "req-1")])
    return (await queue.dead_letters())[0].id  # the most recent first


def test_queue_state_lists_paused_and_backing_off_tags() -> None:
    async def scenario() -> None:
        async with running(config_of(ADMIN)) as gateway:
            worker = gateway.runtime.worker
            assert worker is not None
            hold = worker.lanes["default"].hold
            hold.pause = PauseState("unauthorized", 40105, "bad token", 1.0, 61.0)
            hold.backoff = BackoffState("throttled", 2, 5.0, 9.5)
            body = (await gateway.client.get("/admin/queue", headers=BEARER)).json()
            assert body["depth"] == 0
            assert body["dead_letters"] == 0
            assert body["paused"] == [
                {
                    "tag": "default",
                    "kind": "tiktok",
                    "reason": "unauthorized",
                    "code": 40105,
                    "message": "bad token",
                    "since": 1.0,
                    "probe_at": 61.0,
                }
            ]
            assert body["backing_off"] == [
                {
                    "tag": "default",
                    "kind": "tiktok",
                    "reason": "throttled",
                    "failures": 2,
                    "since": 5.0,
                    "retry_at": 9.5,
                }
            ]

    asyncio.run(scenario())


def test_dead_letters_are_listed_redacted_and_replayed() -> None:
    async def scenario() -> None:
        async with running(config_of(ADMIN)) as gateway:
            event = {
                "event": "Pageview",
                "event_time": "x",
                "event_id": "e-1",
                "user": {"email": "a" * 64, "city": "berlin"},
                "page": {"url": "https://shop.example.com/?mail=bob@example.com"},
            }
            dead_id = await dead_letter(gateway.queue, event)
            client = gateway.client
            listed = (await client.get("/admin/dead-letters?limit=5", headers=BEARER)).json()
            (letter,) = listed["dead_letters"]
            assert letter["id"] == dead_id
            assert letter["tag"] == "default"
            assert letter["pixel"] == "CTEST"
            assert letter["event_name"] == "Pageview"
            assert letter["event_id"] == "e-1"
            assert (letter["reason"], letter["code"]) == ("rejected", 40002)
            assert letter["request_id"] == "req-1"
            assert letter["attempts"] == 0
            assert letter["event"]["user"] == {"email": "a" * 64, "city": "[redacted]"}
            assert "bob@example.com" not in str(letter)
            for bad in ("limit=0", "limit=x", "limit=5000"):
                answer = await client.get(f"/admin/dead-letters?{bad}", headers=BEARER)
                assert answer.status_code == 400

            replayed = await client.post(
                "/admin/dead-letters/replay", json={"ids": [dead_id]}, headers=BEARER
            )
            assert replayed.json() == {"replayed": 1}
            stats = await gateway.queue.stats()
            assert (stats.depth, stats.dead) == (1, 0)
            (item,) = await gateway.queue.lease(10, 60.0)
            assert Envelope.from_bytes(item.payload).event["event_id"] == "e-1"

    asyncio.run(scenario())


def test_replay_all_and_bad_bodies() -> None:
    async def scenario() -> None:
        async with running(config_of(ADMIN)) as gateway:
            await dead_letter(gateway.queue, {"event": "Pageview", "event_id": "1"})
            await dead_letter(gateway.queue, {"event": "Pageview", "event_id": "2"})
            url = "/admin/dead-letters/replay"
            for bad in (b"", b"[1]", b"{}", b'{"all": false}', b'{"ids": []}', b'{"ids": [1]}'):
                answer = await gateway.client.post(url, content=bad, headers=BEARER)
                assert answer.status_code == 400, bad
                assert answer.json()["error"] == "bad_request"
            answer = await gateway.client.post(url, json={"all": True}, headers=BEARER)
            assert answer.json() == {"replayed": 2}
            assert (await gateway.queue.stats()).depth == 2

    asyncio.run(scenario())


def test_cookie_sessions_must_post_json() -> None:
    async def scenario() -> None:
        async with running(config_of(ADMIN)) as gateway:
            gateway.client.cookies.set(COOKIE_NAME, session_value(TOKEN))
            url = "/admin/dead-letters/replay"
            form = await gateway.client.post(url, content=b'{"all": true}')
            assert form.status_code == 400
            answer = await gateway.client.post(url, json={"all": True})
            assert answer.json() == {"replayed": 0}

    asyncio.run(scenario())
