"""The ingest endpoints answer as SPEC 10.1 says, and commit before answering."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tests import redis_server
from tests.harness import HIT, config_of, run, running
from tiktok_gateway import app as app_module
from tiktok_gateway.delivery.holds import BackoffState
from tiktok_gateway.queue.redis_streams import RedisStreamsQueue
from tiktok_gateway.tags.tiktok.envelope import Envelope


async def queued_events(queue: Any) -> list[Envelope]:
    items = await queue.lease(10_000, 60)
    return [Envelope.from_bytes(item.payload) for item in items]


def test_get_hit_is_committed_before_204() -> None:
    async def scenario() -> None:
        async with running() as gw:
            answer = await gw.client.get(f"/g/collect?{HIT}", headers={"user-agent": "UA/1"})
            assert answer.status_code == 204
            assert len(answer.headers["x-request-id"]) == 16
            (envelope,) = await queued_events(gw.queue)
            assert envelope.event["event"] == "Pageview"
            assert envelope.event["user"] == {"ip": "203.0.113.9", "user_agent": "UA/1"}
            assert envelope.pixel_code == "CTEST"

    run(scenario())


def test_post_batch_with_crlf_lines_and_a_bad_line() -> None:
    async def scenario() -> None:
        async with running() as gw:
            body = "en=page_view\r\nfoo=bar\r\nen=scroll&epn.percent_scrolled=90\r\n"
            answer = await gw.client.post(
                "/g/collect?v=2&tid=G-1&cid=1.2",
                content=body,
                headers={"content-type": "text/plain"},
            )
            assert answer.status_code == 400
            payload = answer.json()
            assert payload["error"] == "invalid_events"
            assert payload["detail"][0]["line"] == 1
            assert payload["detail"][0]["error"] == "missing_event_name"
            assert payload["queued"] == 2  # the valid lines of the same hit are accepted
            names = [e.event["event"] for e in await queued_events(gw.queue)]
            assert names == ["Pageview", "scroll"]

    run(scenario())


def test_malformed_hits_get_400_with_a_reason() -> None:
    async def scenario() -> None:
        async with running() as gw:
            for query in ("v=1&tid=G-1&en=x", "v=2&en=page_view", "", "%%%"):
                answer = await gw.client.get(f"/g/collect?{query}")
                assert answer.status_code == 400, query
                assert answer.json()["error"]
            answer = await gw.client.post(f"/g/collect?{HIT}", content=b"en=a\xff\xfe")
            assert answer.status_code == 400
            assert answer.json()["error"] == "invalid_utf8"

    run(scenario())


def test_wrong_methods_and_unknown_paths() -> None:
    async def scenario() -> None:
        async with running() as gw:
            wrong = await gw.client.put(f"/g/collect?{HIT}")
            assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")
            assert "GET" in wrong.headers["allow"]
            assert (await gw.client.get("/events")).status_code == 405
            missing = await gw.client.get("/nope")
            assert (missing.status_code, missing.json()["error"]) == (404, "not_found")

    run(scenario())


def test_head_on_collect_still_takes_starlette_routing() -> None:
    async def scenario() -> None:
        async with running() as gw:
            answer = await gw.client.head(f"/g/collect?{HIT}")
            assert answer.status_code == 204  # HEAD is routed as GET, as before the shortcut
            assert len(await queued_events(gw.queue)) == 1

    run(scenario())


def test_an_unexpected_error_on_collect_is_a_json_500_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(app_module, "ga4_collect", broken)

    async def scenario() -> None:
        async with running() as gw:
            answer = await gw.client.get(f"/g/collect?{HIT}")
            assert (answer.status_code, answer.json()["error"]) == (500, "internal_error")
            assert (await gw.client.get("/healthz")).status_code == 200

    with caplog.at_level(logging.ERROR, logger="tiktok_gateway.app"):
        run(scenario())
    assert any("a bug" in (record.exc_text or "") for record in caplog.records)


def test_a_client_gone_before_its_body_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with running() as gw:
            scope = {
                "type": "http", "method": "POST", "path": "/g/collect", "raw_path": b"/g/collect",
                "query_string": HIT.encode(), "headers": [], "client": ("203.0.113.9", 1),
                "server": ("shop.example.com", 443), "scheme": "https", "root_path": "",
                "http_version": "1.1",
            }  # fmt: skip
            sent: list[Any] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.disconnect"}

            async def send(message: Any) -> None:
                sent.append(message)

            await gw.app(scope, receive, send)
            # Answered for the log and the counters (nobody reads it), nothing queued.
            assert sent[0]["status"] == 400
            assert json.loads(sent[1]["body"])["error"] == "client_disconnected"
            assert await queued_events(gw.queue) == []

    with caplog.at_level(logging.INFO):
        run(scenario())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info]


def test_oversized_body_gets_413() -> None:
    async def scenario() -> None:
        async with running(config_of({"GATEWAY_MAX_BODY_BYTES": "1000"})) as gw:
            answer = await gw.client.post(f"/g/collect?{HIT}", content=b"en=x&" + b"a" * 2000)
            assert answer.status_code == 413
            assert answer.json()["error"] == "body_too_large"

    run(scenario())


def test_cors_echoes_origin_with_credentials_never_star() -> None:
    async def scenario() -> None:
        async with running() as gw:
            preflight = await gw.client.options(
                "/g/collect",
                headers={
                    "origin": "https://shop.example.com",
                    "access-control-request-method": "POST",
                    "access-control-request-headers": "content-type",
                },
            )
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == "https://shop.example.com"
            assert preflight.headers["access-control-allow-credentials"] == "true"
            assert "POST" in preflight.headers["access-control-allow-methods"]
            hit = await gw.client.get(f"/g/collect?{HIT}", headers={"origin": "https://a.example"})
            assert hit.headers["access-control-allow-origin"] == "https://a.example"
        restricted = config_of({"GATEWAY_ALLOWED_ORIGINS": "https://shop.example.com"})
        async with running(restricted) as gw:
            other = await gw.client.get(
                f"/g/collect?{HIT}", headers={"origin": "https://evil.example"}
            )
            assert other.status_code == 204
            assert "access-control-allow-origin" not in other.headers

    run(scenario())


def test_ttclid_cookie_on_landing_hit_and_not_when_consent_blocks() -> None:
    landing = "v=2&tid=G-1&cid=1&en=page_view&dl=https%3A%2F%2Fwww.shop.co.uk%2F%3Fttclid%3DCLK"

    async def scenario() -> None:
        async with running() as gw:
            answer = await gw.client.get(
                f"/g/collect?{landing}", headers={"host": "sgtm.shop.co.uk"}
            )
            cookie = answer.headers["set-cookie"]
            assert cookie.startswith("ttclid=CLK;")
            for part in ("Domain=shop.co.uk", "Max-Age=2592000", "Path=/", "Secure", "HttpOnly"):
                assert part in cookie
            (envelope,) = await queued_events(gw.queue)
            assert envelope.event["user"]["ttclid"] == "CLK"  # the landing hit carries it too
            denied = await gw.client.get(f"/g/collect?{landing}&gcs=G100")
            assert denied.status_code == 204
            assert "set-cookie" not in denied.headers

    run(scenario())


def test_trusted_proxy_chain_gives_the_client_ip() -> None:
    async def scenario() -> None:
        config = config_of({"GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8"})
        async with running(config, peer="10.1.1.1") as gw:
            headers = {"x-forwarded-for": "6.6.6.6, 198.51.100.20, 10.2.2.2"}
            await gw.client.get(f"/g/collect?{HIT}", headers=headers)
            (envelope,) = await queued_events(gw.queue)
            assert envelope.event["user"]["ip"] == "198.51.100.20"
        async with running(config_of()) as gw:  # untrusted peer: the header is ignored
            await gw.client.get(f"/g/collect?{HIT}", headers={"x-forwarded-for": "6.6.6.6"})
            (envelope,) = await queued_events(gw.queue)
            assert envelope.event["user"]["ip"] == "203.0.113.9"

    run(scenario())


def test_events_endpoint_with_ingest_token() -> None:
    event = {
        "x-ttq-event-name": "CompletePayment",
        "x-ttq-event-id": "o-1",
        "x-ttq-ud-email": "A@B.co",
    }

    async def scenario() -> None:
        async with running(config_of({"GATEWAY_INGEST_TOKEN": "ingest-secret"})) as gw:
            refused = await gw.client.post("/events", json=event)
            assert refused.status_code == 401
            wrong = await gw.client.post(
                "/events", json=event, headers={"authorization": "Bearer nope"}
            )
            assert wrong.status_code == 401
            ok = await gw.client.post(
                "/events", json=[event, 5], headers={"authorization": "Bearer ingest-secret"}
            )
            assert ok.status_code == 400  # the list's second entry is not an event
            assert ok.json()["queued"] == 1
            (envelope,) = await queued_events(gw.queue)
            assert len(envelope.event["user"]["email"]) == 64
            assert "A@B.co" not in json.dumps(envelope.event)

    run(scenario())


def test_mp_collect_checks_the_api_secret() -> None:
    body = {
        "client_id": "1.2",
        "events": [{"name": "purchase", "params": {"transaction_id": "T9"}}],
    }

    async def scenario() -> None:
        async with running(config_of({"GATEWAY_MP_API_SECRETS": "G-1=mp-secret"})) as gw:
            wrong = await gw.client.post("/mp/collect?measurement_id=G-1&api_secret=x", json=body)
            assert wrong.status_code == 403
            ok = await gw.client.post(
                "/mp/collect?measurement_id=G-1&api_secret=mp-secret", json=body
            )
            assert ok.status_code == 200
            assert ok.json() == {"status": "accepted", "queued": 1, "dropped": {}, "unrouted": 0}
            bad = await gw.client.post(
                "/mp/collect?measurement_id=G-1&api_secret=mp-secret", content=b"{"
            )
            assert bad.status_code == 400

    run(scenario())


def test_health_and_readiness() -> None:
    async def scenario() -> None:
        async with running(peer="127.0.0.1") as gw:
            assert (await gw.client.get("/healthz")).json() == {"status": "ok"}
            # The public listener says ready or not, no more; the admin one says why.
            public = await gw.client.get("/readyz")
            assert (public.status_code, public.json()) == (200, {"status": "ready"})
            ready = await gw.admin.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["queue"]["depth"] == 0
            await gw.client.get(f"/g/collect?{HIT}")
            assert (await gw.admin.get("/readyz")).json()["queue"]["depth"] == 1
            assert "backing_off" not in ready.json()
            worker = gw.runtime.worker
            assert worker is not None
            worker.lanes["default"].hold.backoff = BackoffState("timeout", 4, 0.0, 1e12)
            ready = await gw.admin.get("/readyz")  # TikTok's trouble, not this process's
            assert (ready.status_code, ready.json()["problems"]) == (200, [])
            assert ready.json()["backing_off"] == {"default": "timeout: 4 failed requests in a row"}
            assert (await gw.client.get("/readyz")).json() == {"status": "ready"}

    run(scenario())


def test_hits_get_503_while_a_redis_queue_cannot_be_reached(tmp_path: Path) -> None:
    async def scenario() -> None:
        with redis_server.private_server(tmp_path) as server:
            queue = await RedisStreamsQueue.open(server.url)
            async with running(queue=queue, peer="127.0.0.1") as gw:
                assert (await gw.client.get(f"/g/collect?{HIT}")).status_code == 204
                server.process.terminate()
                server.process.wait()
                answer = await gw.client.get(f"/g/collect?{HIT}")
                assert answer.status_code == 503
                assert answer.json()["error"] == "queue_unavailable"
                ready = await gw.admin.get("/readyz")
                assert ready.status_code == 503
                first, second = ready.json()["problems"]
                assert first == "queue unavailable: redis: ConnectionError"
                assert second.startswith("queue cannot be written: redis: ConnectionError (for ")
                public = await gw.client.get("/readyz")
                assert (public.status_code, public.json()) == (503, {"status": "unready"})

    run(scenario())


def test_sandbox_is_mounted_when_no_token() -> None:
    async def scenario() -> None:
        async with running(peer="127.0.0.1") as gw:
            listing = await gw.admin.get("/sandbox/events")
            assert listing.status_code == 200
            assert listing.json()["events"] == []
            # On the admin listener only: the public one knows no operator surface.
            for path in ("/sandbox/events", "/debug", "/admin/queue", "/metrics"):
                assert (await gw.client.get(path)).status_code == 404, path
        async with running() as gw:  # an operator tool: not for remote peers without a token
            assert (await gw.admin.delete("/sandbox/events")).status_code == 403
            assert (await gw.admin.post("/sandbox/outage", json={})).status_code == 403
        token = "admin-token-of-16+"
        async with running(config_of({"GATEWAY_ADMIN_TOKEN": token})) as gw:
            bearer = {"authorization": f"Bearer {token}"}
            assert (await gw.admin.get("/sandbox/events", headers=bearer)).status_code == 200
        async with running(config_of({"TIKTOK_ACCESS_TOKEN": "tok"})) as gw:
            assert (await gw.admin.get("/sandbox/events")).status_code == 404

    run(scenario())
