"""The debug page in real headless Chromium against the real gateway behind uvicorn.

The gateway runs with its delivery worker and the built-in sandbox (no TikTok token), which also
stands in for Google: every hit is forwarded there too. Two tags: ``shop`` fires on everything,
``brand`` on purchases only. The queue starts with two dead-letter
sources: an invalid event (``event_time: "x"``) the sandbox rejects with 40002 once the worker
runs, and a valid event dead-lettered by hand, which a replay then delivers for good.

``DEBUG_SCREENSHOT=1`` writes ``docs/debug-page.png``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from playwright.sync_api import Page, expect, sync_playwright
from starlette.types import ASGIApp

from tests.harness import GA4_SANDBOX
from tests.servers import loopback_socket, served_in_thread
from tiktok_gateway.app import Listeners, create_app
from tiktok_gateway.config import Config, load_config
from tiktok_gateway.delivery.holds import BackoffState
from tiktok_gateway.queue.base import DeadLetter, NewItem
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.tags.tiktok.envelope import Envelope

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "debug-page.png"
TOKEN = "browser-test-admin-token"
EMAIL = "jane.doe@example.com"
WAIT_MS = 15_000
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TAGS = """
[[tags]]
name = "shop"
pixel_code = "CSHOP0000000000001"
purchase_event = "CompletePayment"

[[tags]]
name = "brand"
pixel_code = "CBRAND000000000002"
[tags.trigger]
include_events = ["purchase"]
"""

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (CI installs it)"
)


def gateway_config(tmp_path: Path, public: socket.socket, admin: socket.socket) -> Config:
    """The gateway on the two sockets' ports."""
    path = tmp_path / "gateway.toml"
    path.write_text(TAGS)
    environ = {
        "GATEWAY_ADMIN_TOKEN": TOKEN,
        "GATEWAY_BATCH_MAX_WAIT_MS": "50",
        "GATEWAY_PORT": str(public.getsockname()[1]),
        "GATEWAY_ADMIN_PORT": str(admin.getsockname()[1]),
    }
    return load_config(path, {**environ, **GA4_SANDBOX})


def prepared_queue() -> tuple[MemoryQueue, str]:
    """A queue holding an invalid event and one dead letter (a valid event); that letter's id."""
    queue = MemoryQueue()
    pixel = "CSHOP0000000000001"

    async def fill() -> str:
        fine = Envelope(
            "shop",
            pixel,
            None,
            {"event": "Contact", "event_time": 1_700_000_000, "event_id": "ok-1"},
        )
        await queue.put([NewItem(fine.group, fine.to_bytes())])
        (item,) = await queue.lease(1, 60.0)
        await queue.dead_letter([DeadLetter(item.id, "retries_exhausted", 50000, "outage")])
        event = {"event": "Search", "event_time": "x", "event_id": "bad-1"}
        bad = Envelope("shop", pixel, None, event)
        await queue.put([NewItem(bad.group, bad.to_bytes())])
        return (await queue.dead_letters())[0].id

    return queue, asyncio.run(fill())


def _uvicorn_config(app: ASGIApp, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


@contextmanager
def served(app: Listeners, sockets: list[socket.socket]) -> Iterator[str]:
    """The gateway behind uvicorn (uvloop, httptools) on its two loopback sockets; the public
    listener's base URL."""
    with served_in_thread(app, _uvicorn_config, sockets) as url:
        yield url


def send_hits(base_url: str) -> None:
    """A visit: page view, product view, add to cart, purchase with e-mail and click id."""
    page = "https://shop.example.com/product/42?ttclid=E.C.P.test-click"
    common = {"v": "2", "tid": "G-DEMO1", "cid": "555.1700000000", "_p": "1700000000001"}
    hits = [
        {"en": "page_view", "dl": page, "dt": "Blue shirt"},
        {"en": "view_item", "dl": page, "cu": "EUR", "pr1": "idSKU-42~nmBlue shirt~pr19.9"},
        {"en": "add_to_cart", "dl": page, "cu": "EUR", "pr1": "idSKU-42~nmBlue shirt~pr19.9~qt2"},
        {
            "en": "purchase",
            "dl": "https://shop.example.com/thanks",
            "cu": "EUR",
            "epn.value": "39.8",
            "ep.transaction_id": "T-1001",
            "pr1": "idSKU-42~nmBlue shirt~pr19.9~qt2",
            "ep.user_data.email_address": EMAIL,
            "ep.user_data.phone_number": "+1 415 555 0199",
        },
    ]
    headers = {"User-Agent": "Mozilla/5.0 (browser test)", "Cookie": "_ttp=ttp-cookie-1"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        for number, hit in enumerate(hits, start=1):
            query = urlencode({**common, "_s": str(number), **hit})
            assert client.get(f"/g/collect?{query}").status_code == 204


def check_refused_then_logged_in(page: Page, base_url: str) -> None:
    refused = page.goto(f"{base_url}/debug")
    assert refused is not None
    assert refused.status == 401
    assert TOKEN not in page.content()
    loaded = page.goto(f"{base_url}/debug?token={TOKEN}")
    assert loaded is not None
    assert loaded.status == 200
    assert page.url == f"{base_url}/debug"  # the token left the address bar
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]
    expect(page.locator("#stream-status")).to_have_text("live", timeout=WAIT_MS)


def check_live_hits(page: Page) -> None:
    purchase = page.locator('[data-testid="hit"][data-event="purchase"]')
    expect(purchase).to_have_count(1, timeout=WAIT_MS)
    shop = purchase.locator('[data-testid="tag-result"][data-tag="shop"]')
    brand = purchase.locator('[data-testid="tag-result"][data-tag="brand"]')
    expect(shop.get_by_test_id("tiktok-event-name")).to_have_text("CompletePayment")
    expect(brand.get_by_test_id("tiktok-event-name")).to_have_text("PlaceAnOrder")
    expect(shop.get_by_test_id("tiktok-event")).to_contain_text('"event_id": "T-1001"')
    expect(shop.get_by_test_id("match-quality")).to_contain_text("good")
    for box in (shop, brand):
        delivery = box.get_by_test_id("delivery")
        expect(delivery).to_have_attribute("data-outcome", "delivered", timeout=WAIT_MS)
        expect(delivery).to_contain_text("request")
    # The hit's GA4 forward: where it went, and Google's answer.
    forward = purchase.locator('[data-testid="forward-result"][data-destination="ga4"]')
    expect(forward).to_contain_text("G-DEMO1 \u2192 built-in sandbox/g/collect")
    forwarded = forward.get_by_test_id("delivery")
    expect(forwarded).to_have_attribute("data-outcome", "delivered", timeout=WAIT_MS)
    expect(forwarded).to_contain_text("HTTP 204")
    rows = page.locator('[data-testid="hit"]')
    expect(rows).to_have_count(4)
    delivered = page.locator('[data-testid="delivery"][data-outcome="delivered"]')
    # 4 shop events + 1 brand purchase + the 4 hits' forwards
    expect(delivered).to_have_count(9, timeout=WAIT_MS)
    view = page.locator('[data-testid="hit"][data-event="page_view"]')
    expect(view.get_by_test_id("tiktok-event-name")).to_have_text("Pageview")
    expect(view.get_by_test_id("match-quality")).to_contain_text("ok")  # ttclid only
    html = page.content()
    assert EMAIL not in html
    assert "415 555 0199" not in html


def check_panels(page: Page, replayable: str) -> None:
    letters = page.get_by_test_id("dead-letter")
    expect(letters).to_have_count(2, timeout=WAIT_MS)
    rejected = page.locator('[data-testid="dead-letter"][data-id]', has_text="Search")
    expect(rejected).to_contain_text("rejected")
    expect(rejected).to_contain_text("40002")
    expect(page.locator("#queue-dead")).to_have_text("2", timeout=WAIT_MS)
    expect(page.locator("#queue-depth")).to_have_text("0", timeout=WAIT_MS)
    expect(page.get_by_test_id("paused-tags")).to_have_text("none")
    raw = page.locator('[data-testid="hit"][data-event="purchase"] details.raw')
    raw.locator("summary").click()
    expect(raw.get_by_test_id("raw-params")).to_contain_text("ep.user_data.email_address")
    expect(raw.get_by_test_id("raw-params")).to_contain_text("[redacted]")
    if os.environ.get("DEBUG_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
    page.locator(f'[data-testid="dead-letter"][data-id="{replayable}"]').get_by_test_id(
        "replay"
    ).click()
    expect(page.get_by_test_id("dead-status")).to_contain_text("replayed 1")
    gone = page.locator(f'[data-testid="dead-letter"][data-id="{replayable}"]')
    expect(gone).to_have_count(0)
    expect(page.locator("#queue-dead")).to_have_text("1", timeout=WAIT_MS)
    expect(gone).to_have_count(0)  # delivered this time: it does not come back


def check_filters(page: Page) -> None:
    rows = page.locator('[data-testid="hit"]')
    purchase = page.locator('[data-testid="hit"][data-event="purchase"]')
    page.get_by_test_id("filter-event").fill("purchase")
    expect(purchase).to_be_visible()
    expect(rows.filter(visible=True)).to_have_count(1)
    page.get_by_test_id("filter-event").fill("pageview")  # the TikTok name matches too
    expect(rows.filter(visible=True)).to_have_count(1)
    expect(page.locator('[data-testid="hit"][data-event="page_view"]')).to_be_visible()
    page.get_by_test_id("filter-event").fill("")
    page.get_by_test_id("filter-tag").select_option("brand")
    expect(rows.filter(visible=True)).to_have_count(1)
    expect(purchase).to_be_visible()
    page.get_by_test_id("filter-tag").select_option("ga4")
    expect(rows.filter(visible=True)).to_have_count(4)
    page.get_by_test_id("filter-tag").select_option("")
    page.get_by_test_id("filter-outcome").select_option("rejected")
    expect(rows.filter(visible=True)).to_have_count(0)
    page.get_by_test_id("filter-outcome").select_option("delivered")
    expect(rows.filter(visible=True)).to_have_count(4)


def check_backing_off(page: Page, app: Listeners) -> None:
    worker = app.state.runtime.worker
    # Set from this thread: the page reads it through /admin/queue on its next refresh.
    worker.lanes["shop"].hold.backoff = BackoffState("throttled", 3, time.time(), time.time() + 40)
    entry = page.locator('[data-testid="paused-tags"] .backing-off-tag[data-tag="shop"]')
    expect(entry).to_contain_text("backing off: throttled, 3 failed in a row", timeout=WAIT_MS)
    expect(entry).to_contain_text("next probe")
    worker.lanes["shop"].hold.backoff = None
    expect(page.get_by_test_id("paused-tags")).to_have_text("none", timeout=WAIT_MS)


def check_ga4_outage(page: Page, public_url: str, admin_url: str) -> None:
    """Google down: the next hit's forward shows as retrying, then delivered once it is back."""
    operator = {"authorization": f"Bearer {TOKEN}"}
    answer = httpx.post(f"{admin_url}/sandbox/ga4/outage", headers=operator, json={})
    assert answer.status_code == 200
    query = urlencode({"v": "2", "tid": "G-DEMO1", "cid": "555.1", "en": "sign_up"})
    assert httpx.get(f"{public_url}/g/collect?{query}").status_code == 204
    row = page.locator('[data-testid="hit"][data-event="sign_up"]')
    forwarded = row.locator('[data-testid="forward-result"]').get_by_test_id("delivery")
    expect(forwarded).to_have_attribute("data-outcome", "retry", timeout=WAIT_MS)
    expect(forwarded).to_contain_text("HTTP 503")
    assert httpx.delete(f"{admin_url}/sandbox/ga4/outage", headers=operator).status_code == 200
    expect(forwarded).to_have_attribute("data-outcome", "delivered", timeout=WAIT_MS)


def test_debug_page_in_headless_chromium(tmp_path: Path) -> None:
    queue, replayable = prepared_queue()
    public, admin = loopback_socket(), loopback_socket()
    app = create_app(gateway_config(tmp_path, public, admin), queue=queue, run_worker=True)
    admin_url = f"http://127.0.0.1:{admin.getsockname()[1]}"
    with served(app, [public, admin]) as public_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 1100})
            page = context.new_page()
            # Hits come in on the public listener; the page is on the admin one.
            assert httpx.get(f"{public_url}/debug").status_code == 404
            check_refused_then_logged_in(page, admin_url)
            send_hits(public_url)
            check_live_hits(page)
            check_panels(page, replayable)
            check_filters(page)
            check_backing_off(page, app)
            check_ga4_outage(page, public_url, admin_url)
            context.close()
        finally:
            browser.close()
