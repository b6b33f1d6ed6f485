"""Secrets and personal data never leak (issue 4, item 3).

Known secrets are configured (a TikTok access token, the admin and ingest tokens, a Measurement
Protocol api secret); a raw e-mail address and phone number are sent through every input, with
malformed variants and wrong tokens so the error paths run too; delivery runs (an outage, then
success, and a dead letter). Then none of the secrets nor the e-mail or phone may appear in any
log line (structlog and stdlib), any answer's body or headers, /metrics, /readyz, the sandbox's
listing, and every /debug and /admin page or stream there is (with the admin token and without).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus

import httpx
import pytest
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Message

from tests.fakes import FakeClock
from tests.harness import running
from tests.telemetry.helpers import run
from tiktok_gateway.app import Listeners
from tiktok_gateway.config import load_config
from tiktok_gateway.queue.base import NewItem

ACCESS_TOKEN = "acc3ss-T0KEN-zq8v"
ADMIN_TOKEN = "adm1n-T0KEN-kw4r"
INGEST_TOKEN = "ing3st-T0KEN-pj2x"
MP_SECRET = "mp-S3CRET-hv7n"
SECRETS = (ACCESS_TOKEN, ADMIN_TOKEN, INGEST_TOKEN, MP_SECRET)

EMAIL = "Leak.Alice@mailbox.test"
PHONE = "+1 415 555 0199"
PERSONAL = ("leak.alice", "mailbox.test", "4155550199", "555 0199", "555-0199", "5550199")

TOML = """
[[tags]]
name = "secure"
pixel_code = "CSECURE"
access_token_env = "TIKTOK_ACCESS_TOKEN"
api_url = "http://sandbox.internal"   # runtime.SANDBOX_ORIGIN: in process, with the token

[[tags]]
name = "open"
pixel_code = "COPEN"

[ga4]
endpoint = "sandbox"   # every GA4 hit is forwarded too, to the in-process stand-in
"""

ENVIRON = {
    "TIKTOK_ACCESS_TOKEN": ACCESS_TOKEN,
    "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    "GATEWAY_INGEST_TOKEN": INGEST_TOKEN,
    "GATEWAY_MP_API_SECRETS": f"G-1={MP_SECRET}",
    "GATEWAY_MAX_BODY_BYTES": "20000",
}


def q(text: str) -> str:
    return quote(text, safe="")


PII = f"ep.user_data.email_address={q(EMAIL)}&ep.user_data.phone_number={q(PHONE)}"
PAGE = q("https://shop.example.com/thanks?ttclid=E.C.P.leak")
HIT = (
    f"v=2&tid=G-1&cid=1.2&_p=7&_s=1&en=purchase&ep.transaction_id=T1&epn.value=10&cu=EUR"
    f"&dl={PAGE}&{PII}"
)
MP_OK = f"/mp/collect?measurement_id=G-1&api_secret={MP_SECRET}"
BEARER = {"authorization": f"Bearer {INGEST_TOKEN}"}


class Seen:
    """Everything the gateway showed: where it was, and the text."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def answer(self, response: httpx.Response) -> httpx.Response:
        where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
        self.add(where, "\n".join(f"{k}: {v}" for k, v in response.headers.items()))
        self.add(where, response.content.decode("utf-8", "replace"))
        return response

    def leaks(self) -> list[str]:
        found = []
        for where, text in self.texts:
            forms = {text.lower(), unquote_plus(text).lower()}
            for needle in (*SECRETS, *PERSONAL):
                if any(needle.lower() in form for form in forms):
                    found.append(f"{needle!r} in {where}: {excerpt(text, needle)}")
        return found


def excerpt(text: str, needle: str) -> str:
    at = max(text.lower().find(needle.lower()), unquote_plus(text).lower().find(needle.lower()))
    return repr(text[max(at - 80, 0) : at + 80]) if at >= 0 else repr(text[:160])


async def send_everything(client: httpx.AsyncClient, seen: Seen) -> None:
    """Every ingest input, with the e-mail and phone, valid and not."""
    a = seen.answer
    email_json = json.dumps(EMAIL)
    # GA4 web: a valid hit, a batch with a bad line, malformed hits, bad UTF-8, a huge body
    assert (await client.get(f"/g/collect?{HIT}")).status_code == 204
    a(await client.get(f"/g/collect?{HIT}", headers={"origin": "https://shop.example.com"}))
    batch = f"en=sign_up&{PII}\r\nfoo=bar&{PII}\r\nen=login&up.email={q(EMAIL)}\r\n"
    a(await client.post("/g/collect?v=2&tid=G-1&cid=1.2", content=batch))
    a(await client.get(f"/g/collect?v=1&tid=G-1&en=x&{PII}"))
    a(await client.get(f"/g/collect?v=2&en=page_view&{PII}"))
    a(await client.get(f"/g/collect?v=2&tid=G-1&{PII}"))
    a(await client.post(f"/g/collect?{HIT}", content=f"en=x&{PII}".encode() + b"\xff\xfe"))
    a(await client.post(f"/g/collect?{HIT}", content=(f"en=x&{PII}&" * 400).encode()))
    a(await client.options("/g/collect", headers={"origin": "https://shop.example.com"}))
    a(await client.put(f"/g/collect?{HIT}"))
    # Measurement Protocol: valid, wrong secrets (another known secret among them), malformed
    body: dict[str, Any] = {
        "client_id": "1.2",
        "user_id": EMAIL,
        "user_data": {"email_address": EMAIL, "phone_number": PHONE},
        "events": [
            {"name": "purchase", "params": {"transaction_id": "T2", "value": 5, "currency": "EUR"}},
            {"name": "generate_lead", "params": {"email": EMAIL, "phone": PHONE}},
            {"name": "", "params": {"email": EMAIL}},
            {"name": "x", "params": EMAIL},
            {"name": "y", "timestamp_micros": EMAIL},
            EMAIL,
        ],
    }
    a(await client.post(MP_OK, json=body))
    a(await client.post(MP_OK, json={**body, "events": body["events"][:2]}))
    a(await client.post(f"/mp/collect?measurement_id=G-1&api_secret={INGEST_TOKEN}", json=body))
    a(await client.post(f"/mp/collect?measurement_id=G-1&api_secret={q(EMAIL)}", json=body))
    a(await client.post("/mp/collect?measurement_id=G-1", json=body))
    a(await client.post(f"/mp/collect?api_secret={MP_SECRET}", json=body))
    a(await client.post(MP_OK, content=b'{"client_id": ' + email_json.encode() + b", "))
    a(await client.post(MP_OK, json={**body, "client_id": 12}))
    truncated = json.dumps({"client_id": "1.2", "user_data": body["user_data"]})[:-2]
    a(await client.post(MP_OK, content=truncated.encode()))
    a(await client.post(MP_OK, json={**body, "timestamp_micros": EMAIL}))
    a(await client.post(MP_OK, json={**body, "events": EMAIL}))
    a(await client.post(MP_OK, json=[body]))
    # /events: valid, wrong tokens (the other secrets among them), malformed
    event = {
        "event_name": "purchase",
        "x-ttq-event-id": "e-1",
        "x-ttq-ud-email": EMAIL,
        "x-ttq-ud-phone-number": PHONE,
        "user_data": {"email_address": EMAIL, "phone_number": PHONE},
    }
    a(await client.post("/events", json=event, headers=BEARER))
    a(await client.post("/events", json=[event, 5, {"note": EMAIL}], headers=BEARER))
    a(await client.post("/events", json={**event, "x-ttq-ud-phone-number": 14155550199}))
    for wrong in (ADMIN_TOKEN, ACCESS_TOKEN, MP_SECRET, EMAIL, ""):
        a(await client.post("/events", json=event, headers={"authorization": f"Bearer {wrong}"}))
    a(await client.post("/events", json=event))
    a(await client.post("/events", content=email_json.encode(), headers=BEARER))
    a(await client.post("/events", content=b"[" + email_json.encode(), headers=BEARER))
    a(await client.post("/events", content=f"{{{email_json}: 1e400}}".encode(), headers=BEARER))
    a(await client.post("/events", content=truncated.encode(), headers=BEARER))
    big = json.dumps([event] * 200).encode()
    a(await client.post("/events", content=big, headers=BEARER))


async def asgi_get(
    app: Listeners, path: str, headers: dict[str, str], seconds: float
) -> tuple[int, str, str]:
    """GET through the ASGI interface, reading at most ``seconds`` (streams never end)."""
    path, _, query = path.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},  # Starlette ends streams on disconnect
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1:8081")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8081),  # the admin listener
    }
    status, head, chunks = 0, list[str](), list[bytes]()
    requested, gone = False, asyncio.Event()

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            head.extend(f"{k.decode()}: {v.decode()}" for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    task = asyncio.create_task(app(scope, receive, send))
    await asyncio.wait({task}, timeout=seconds)
    gone.set()
    await asyncio.wait({task}, timeout=1.0)
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return status, "\n".join(head), b"".join(chunks).decode("utf-8", "replace")


def operator_paths(routes: list[BaseRoute], prefix: str = "") -> Iterator[str]:
    """GET paths under /debug and /admin, as far as they exist today."""
    for route in routes:
        if isinstance(route, Mount):
            yield from operator_paths(list(route.routes), prefix + route.path)
        elif isinstance(route, Route) and "GET" in (route.methods or set()):
            path = prefix + route.path
            if path.startswith(("/debug", "/admin")) and "{" not in path:
                yield path


async def visit_operator_pages(app: Listeners, client: httpx.AsyncClient, seen: Seen) -> int:
    """Every /debug and /admin GET route, with the admin token, a wrong one and none; a hit is
    sent while they are open so live streams have something to show."""
    paths = sorted(set(operator_paths(list(app.admin.routes))))
    variants: list[tuple[str, dict[str, str]]] = [
        ("", {"authorization": f"Bearer {ADMIN_TOKEN}"}),
        (f"?token={ADMIN_TOKEN}", {}),
        ("", {"authorization": f"Bearer {INGEST_TOKEN}"}),
        ("", {}),
    ]
    visits = [(path + query, headers) for path in paths for query, headers in variants]

    async def one_more_hit() -> None:
        await asyncio.sleep(0.2)
        seen.answer(await client.get(f"/g/collect?{HIT}"))

    results = await asyncio.gather(
        *(asgi_get(app, path, headers, 0.6) for path, headers in visits), one_more_hit()
    )
    statuses: dict[str, set[int]] = {}
    for (path, headers), result in zip(visits, results[:-1], strict=True):
        assert isinstance(result, tuple)
        status, head, text = result
        seen.add(f"GET {path} -> {status} (headers)", head)
        seen.add(f"GET {path} -> {status}", text)
        if headers.get("authorization") == f"Bearer {ADMIN_TOKEN}":
            kind = "bearer"
        elif path.startswith("/debug?token="):
            kind = "debug login"  # answered with a redirect that sets the session cookie
        else:
            kind = "refused"  # no token, a wrong one, or ?token= anywhere but the /debug page
        statuses.setdefault(kind, set()).add(status)
    # The pages were really shown to the operator, and refused to everybody else.
    assert statuses == {"bearer": {200}, "debug login": {303}, "refused": {401}}, statuses
    return len(paths)


def test_no_secret_or_personal_data_leaks(
    tmp_path: Path, log_stream: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(TOML, encoding="utf-8")
    config = load_config(config_file, ENVIRON)
    clock = FakeClock()
    seen = Seen()

    async def scenario() -> None:
        async with running(config, clock=clock) as gw:
            client, worker = gw.client, gw.runtime.worker
            assert worker is not None
            await send_everything(client, seen)
            # Delivery: TikTok is down (retries), then back (delivered); one unreadable item.
            operator = {"authorization": f"Bearer {ADMIN_TOKEN}"}  # the sandbox is admin-only
            seen.answer(await gw.admin.post("/sandbox/outage", headers=operator, json={}))
            await worker.drain()
            seen.answer(await gw.admin.delete("/sandbox/outage", headers=operator))
            clock.now += 3600
            await gw.queue.put([NewItem("open", b"{not json")])
            await worker.drain()
            pages = ("/metrics", "/readyz", "/healthz", "/sandbox/events", "/sandbox/ga4/hits")
            for path in (*pages, "/sandbox/"):
                answer = await gw.admin.get(path, headers=operator)
                assert seen.answer(answer).status_code == 200, path
            # The public listener has none of them (its /readyz says ready, no more).
            for path in pages:
                public = seen.answer(await client.get(path, headers=operator))
                assert public.status_code == (200 if path in ("/healthz", "/readyz") else 404)
            listing = (await gw.admin.get("/sandbox/events", headers=operator)).json()
            pixels = {event["pixel_code"] for event in listing["events"]}
            assert pixels == {"CSECURE", "COPEN"}, "both tags delivered"
            assert await visit_operator_pages(gw.app, client, seen) >= 5
            admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
            for headers in (admin, {"authorization": f"Bearer {INGEST_TOKEN}"}, {}):
                replay = "/admin/dead-letters/replay"
                seen.answer(await gw.admin.post(replay, headers=headers, json={"all": True}))
            await worker.drain()
            seen.answer(await gw.admin.get("/metrics"))

    run(scenario())
    lines = log_stream.getvalue().splitlines()
    events = [json.loads(line) for line in lines]
    assert {"hit", "delivery"} <= {line["event"] for line in events}
    assert any(line["event"] == "delivery" and line["outcome"] == "retry" for line in events)
    assert any(line["logger"] != "tiktok_gateway.telemetry" for line in events), "stdlib lines"
    for line in lines:
        seen.add("log line", line)
    for record in caplog.records:
        seen.add(f"log record {record.name}", record.getMessage())
        if record.exc_text:
            seen.add(f"log record {record.name} (exception)", record.exc_text)
    leaks = seen.leaks()
    assert not leaks, "\n".join(leaks)


def test_the_detector_sees_encoded_and_cased_forms() -> None:
    seen = Seen()
    seen.add("clean", "hash 3b1f... and [email] and [number]")
    assert seen.leaks() == []
    for text in (
        "leak.alice%40mailbox.test",
        "LEAK.ALICE@MAILBOX.TEST",
        "tel +1%20415%20555%200199",
    ):
        seen = Seen()
        seen.add("dirty", text)
        assert seen.leaks(), text
    seen = Seen()
    seen.add("dirty", f"Bearer {quote(ADMIN_TOKEN)}")
    assert seen.leaks()
