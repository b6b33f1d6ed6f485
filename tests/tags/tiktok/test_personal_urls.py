"""E-mail addresses in page URLs through the whole gateway (SPEC 13 personal data, SPEC 12):
TikTok (its queue and the sandbox standing in for it) gets the URLs redacted, Google gets the
hit byte for byte, and the debug page shows neither the addresses nor event names holding one."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any

from tests.harness import GA4_SANDBOX, config_of, running
from tiktok_gateway.sandbox.app import sandbox_of

# Page URL and referrer with addresses: once-encoded, double-encoded, escaped UTF-8, userinfo.
DL = "https%3A%2F%2Fshop.example%2Fwelcome%3Femail%3Dalice%2540example.com%26step%3D2"
DR = "https%3A%2F%2Fbob%3Apw%40mail.example%2F%25C3%25A9lise%2540b%25C3%25BCcher.de"
QUERY = f"v=2&tid=G-1&cid=1.2&_p=7&_s=1&en=page_view&dl={DL}&dr={DR}"
# A batch: the query holds what its events share, each line an event (the first with its own
# page URL); the body must reach Google unchanged.
BATCH_QUERY = f"v=2&tid=G-1&cid=1.2&_p=7&_s=2&dl={DL}&dr={DR}"
BODY = (
    b"en=sign_up&dl=https%3A%2F%2Fshop.example%2Fthanks%2Fcarol%40example.org\r\n"
    b"en=alice%40example.com&_et=5\r\n"
    b"en=%C3%A9lise%40b%C3%BCcher.de"
)
IN_CLEAR = ("alice", "bob", "carol", "lise", "cher", "example.com", "example.org", "%40", "@")


def test_tiktok_gets_redacted_urls_and_google_the_hit_unchanged() -> None:
    async def scenario() -> tuple[Any, list[Any], list[Any]]:
        async with running(config_of(GA4_SANDBOX), peer="127.0.0.1") as gw:
            assert (await gw.client.get(f"/g/collect?{QUERY}")).status_code == 204
            sent = await gw.client.post(f"/g/collect?{BATCH_QUERY}", content=BODY)
            assert sent.status_code == 204
            # What the queue holds for TikTok (the default tag's group) already is redacted.
            leased = await gw.queue.lease(100, 60, only_groups=["default"])
            assert len(leased) == 2  # page_view, sign_up; the two odd names are dropped
            for item in leased:
                for text in IN_CLEAR:
                    assert text.encode() not in item.payload, (text, item.payload)
            await gw.queue.release([item.id for item in leased])
            assert gw.runtime.worker is not None
            await gw.runtime.worker.drain()
            events = (await gw.admin.get("/sandbox/events")).json()["events"]
            listed = (await gw.admin.get("/sandbox/ga4/hits")).json()["hits"]
            assert gw.runtime.sandbox is not None
            forwards = sandbox_of(gw.runtime.sandbox).google.store.hits()
            return events, listed, forwards

    events, listed, forwards = asyncio.run(scenario())
    pages = {event["event"]["event_id"]: event["event"].get("page") for event in events}
    assert sorted(page["url"] for page in pages.values()) == [
        "https://shop.example/thanks/(redacted)",
        "https://shop.example/welcome?email=(redacted)&step=2",
    ]
    referrers = {page.get("referrer") for page in pages.values()}
    assert referrers == {"https://mail.example/(redacted)"}
    for text in IN_CLEAR:
        assert text not in json.dumps(events), text
    # GA4: the incoming query in its order plus the visitor's IP, the body byte for byte.
    single, batch = forwards
    assert single.query == f"{QUERY}&_uip=127.0.0.1"
    assert single.body == b""
    assert batch.query == f"{BATCH_QUERY}&_uip=127.0.0.1"
    assert batch.body == BODY
    assert [hit["body_sha256"] for hit in listed] == [
        hashlib.sha256(b"").hexdigest(),
        hashlib.sha256(BODY).hexdigest(),
    ]


def test_the_debug_api_shows_no_address_in_event_names_urls_or_reasons() -> None:
    names = ["%C3%A9lise%40b%C3%BCcher.de", "alice%40example.com", "carol%2540example.org"]

    async def scenario() -> dict[str, Any]:
        async with running(config_of(GA4_SANDBOX), peer="127.0.0.1") as gw:
            for index, name in enumerate(names):
                hit = f"v=2&tid=G-1&cid=1.2&_p=9&_s={index}&en={name}&dl={DL}&dr={DR}"
                assert (await gw.client.get(f"/g/collect?{hit}")).status_code == 204
            sent = await gw.client.post(f"/g/collect?{BATCH_QUERY}", content=BODY)
            assert sent.status_code == 204
            answer = await gw.admin.get("/debug/api/hits")
            assert answer.status_code == 200
            listing: dict[str, Any] = answer.json()
            return listing

    listing = asyncio.run(scenario())
    text = json.dumps(listing, ensure_ascii=False)
    for clear in IN_CLEAR[:-1]:
        assert clear not in text, clear
    # The one "@" left marks where a userinfo was: "https://[redacted]@mail.example/...".
    assert set(re.findall(r".{10}@", text)) == {"[redacted]@"}
    hits = listing["hits"]
    assert len(hits) == 4
    shown = [event["name"] for hit in hits[1:] for event in hit["events"]]
    assert shown == ["[redacted]"] * 3
    assert [tag["reason"] for hit in hits[1:] for tag in hit["events"][0]["tags"]] == [
        "invalid_event_name"
    ] * 3
