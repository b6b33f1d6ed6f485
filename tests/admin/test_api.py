"""Admin auth and the admin API through the app (harness: in-process client, chosen peer)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import httpx
import pytest

from tests.harness import config_of, running
from tiktok_gateway.admin.auth import COOKIE_NAME, session_value, valid_session
from tiktok_gateway.delivery.holds import BackoffState, PauseState
from tiktok_gateway.queue.base import DeadLetter, NewItem, Queue
from tiktok_gateway.tags.tiktok.envelope import Envelope

TOKEN = "admin-secret-token-123"
ADMIN = {"GATEWAY_ADMIN_TOKEN": TOKEN}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
SURFACES = ["/admin/queue", "/admin/dead-letters", "/debug", "/debug/api/hits", "/debug/debug.js"]


def get_all(
    peer: str, environ: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    async def scenario() -> list[httpx.Response]:
        async with running(config_of(environ), peer=peer) as gateway:
            return [await gateway.admin.get(path, headers=headers) for path in SURFACES]

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
            client = gateway.admin
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
            value = cookie.partition(f"{COOKIE_NAME}=")[2].partition(";")[0]
            assert valid_session(value, TOKEN, time.time())
            assert not valid_session(value, "another-admin-token", time.time())
            assert "Max-Age=43200" in cookie
            for attribute in ("HttpOnly", "SameSite=strict", "Path=/"):
                assert attribute in cookie
            assert "Secure" not in cookie  # plain HTTP on the admin listener

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
                response = await gateway.admin.get(path, headers=BEARER)
                assert response.status_code == 404, path

    asyncio.run(scenario())


async def dead_letter(queue: Queue, event: dict[str, Any], tag: str = "default") -> str:
    """Put one envelope and move it to the dead letters; returns its dead-letter id."""
    envelope = Envelope(tag, "CTEST", None, event)
    await queue.put([NewItem(envelope.group, envelope.to_bytes())])
    (item,) = await queue.lease(10, 60.0)
    await queue.dead_letter([DeadLetter(item.id, "rejected", 40002, "bad event_time", "req-1")])
    return (await queue.dead_letters())[0].id  # the most recent first


def test_a_paused_destination_is_listed_but_the_process_stays_ready() -> None:
    """A refused token is the operator's to fix; the process still takes hits (and GA4 goes
    on), so a load balancer must not take it out of rotation."""

    async def scenario() -> None:
        async with running(config_of(ADMIN)) as gateway:
            worker = gateway.runtime.worker
            assert worker is not None
            worker.lanes["default"].hold.pause = PauseState(
                "unauthorized", 40105, "bad token", 1.0, 61.0
            )
            public = await gateway.client.get("/readyz")
            assert (public.status_code, public.json()) == (200, {"status": "ready"})
            detailed = await gateway.admin.get("/readyz", headers=BEARER)
            assert detailed.status_code == 200
            assert detailed.json()["paused"] == {"default": "code 40105: bad token"}
            assert detailed.json()["problems"] == []

    asyncio.run(scenario())


def test_queue_state_lists_paused_and_backing_off_tags() -> None:
    async def scenario() -> None:
        async with running(config_of(ADMIN)) as gateway:
            worker = gateway.runtime.worker
            assert worker is not None
            hold = worker.lanes["default"].hold
            hold.pause = PauseState("unauthorized", 40105, "bad token", 1.0, 61.0)
            hold.backoff = BackoffState("throttled", 2, 5.0, 9.5)
            body = (await gateway.admin.get("/admin/queue", headers=BEARER)).json()
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
            client = gateway.admin
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
                answer = await gateway.admin.post(url, content=bad, headers=BEARER | JSON)
                assert answer.status_code == 400, bad
                assert answer.json()["error"] == "bad_request"
            answer = await gateway.admin.post(url, json={"all": True}, headers=BEARER)
            assert answer.json() == {"replayed": 2}
            assert (await gateway.queue.stats()).depth == 2

    asyncio.run(scenario())


def test_cookie_sessions_must_post_json() -> None:
    async def scenario() -> None:
        async with running(config_of(ADMIN)) as gateway:
            gateway.admin.cookies.set(COOKIE_NAME, session_value(TOKEN, int(time.time())))
            url = "/admin/dead-letters/replay"
            form = await gateway.admin.post(url, content=b'{"all": true}')
            assert form.status_code == 403
            assert "application/json" in form.json()["detail"]
            answer = await gateway.admin.post(url, json={"all": True})
            assert answer.json() == {"replayed": 0}

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("peer", "proto", "secure"),
    [
        ("203.0.113.9", "https", True),  # a trusted proxy that terminated TLS
        ("203.0.113.9", "http", False),
        ("198.51.100.1", "https", False),  # anybody else's say is ignored
    ],
)
def test_the_session_cookie_is_secure_behind_a_trusted_tls_proxy(
    peer: str, proto: str, secure: bool
) -> None:
    async def scenario() -> None:
        config = config_of(ADMIN | {"GATEWAY_TRUSTED_PROXIES": "203.0.113.0/24"})
        async with running(config, peer=peer) as gateway:
            login = await gateway.admin.get(
                "/debug", params={"token": TOKEN}, headers={"X-Forwarded-Proto": proto}
            )
            assert login.status_code == 303
            assert ("Secure" in login.headers["set-cookie"]) is secure

    asyncio.run(scenario())


def test_sessions_end_on_the_server_after_twelve_hours() -> None:
    async def scenario() -> None:
        async with running(config_of(ADMIN)) as gateway:
            now = int(time.time())
            for issued, status in ((now - 11 * 3600, 200), (now - 13 * 3600, 401)):
                gateway.admin.cookies.set(COOKIE_NAME, session_value(TOKEN, issued))
                assert (await gateway.admin.get("/admin/queue")).status_code == status
            # A cookie of another token, or one whose time was changed, is no session.
            for forged in (
                session_value("another-admin-token", now),
                session_value(TOKEN, now - 13 * 3600).replace(str(now - 13 * 3600), str(now)),
            ):
                gateway.admin.cookies.set(COOKIE_NAME, forged)
                assert (await gateway.admin.get("/admin/queue")).status_code == 401

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},  # a cross-site form or beacon can send this
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/json", "Origin": "https://evil.example"},
        {"Content-Type": "application/json", "Origin": "null"},
    ],
)
def test_state_changes_a_cross_site_page_could_send_are_refused(headers: dict[str, str]) -> None:
    async def scenario() -> None:
        async with running(peer="127.0.0.1") as gateway:
            await dead_letter(gateway.queue, {"event": "Pageview", "event_id": "1"})
            for url in ("/admin/dead-letters/replay", "/sandbox/outage"):
                answer = await gateway.admin.post(url, content=b'{"all": true}', headers=headers)
                assert answer.status_code == 403, url
                assert answer.json()["error"] == "forbidden"
            assert (await gateway.queue.stats()).dead == 1
            same_origin = {"Content-Type": "application/json", "Origin": "http://127.0.0.1:8081"}
            answer = await gateway.admin.post(
                "/admin/dead-letters/replay", content=b'{"all": true}', headers=same_origin
            )
            assert answer.json() == {"replayed": 1}

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("host", "names", "allowed"),
    [
        ("127.0.0.1:8081", "", True),
        ("[::1]:8081", "", True),
        ("localhost:8081", "", True),
        ("rebind.evil.example:8081", "", False),  # DNS rebinding: a name pointed at 127.0.0.1
        ("gateway.internal", "gateway.internal,ops.example", True),
        ("gateway.internal.evil.example", "gateway.internal", False),
        ("", "", False),
    ],
)
def test_the_admin_listener_answers_only_to_known_host_names(
    host: str, names: str, allowed: bool
) -> None:
    async def scenario() -> None:
        config = config_of({"GATEWAY_ADMIN_HOSTNAMES": names} if names else None)
        async with running(config, peer="127.0.0.1") as gateway:
            for path in ("/admin/queue", "/debug", "/metrics", "/readyz", "/sandbox/events"):
                answer = await gateway.admin.get(path, headers={"Host": host})
                if allowed:
                    assert answer.status_code == 200, path
                else:
                    assert answer.status_code == 403, path
                    assert answer.json()["error"] == "host_not_allowed"

    asyncio.run(scenario())


def test_a_delete_needs_no_body_but_no_foreign_origin() -> None:
    async def scenario() -> None:
        async with running(peer="127.0.0.1") as gw:
            evil = {"Origin": "https://evil.example"}
            assert (await gw.admin.delete("/sandbox/outage", headers=evil)).status_code == 403
            assert (await gw.admin.delete("/sandbox/outage")).status_code == 200

    asyncio.run(scenario())
