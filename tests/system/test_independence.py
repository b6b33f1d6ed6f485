"""TikTok and GA4 are delivered independently (SPEC 12): an outage of one never delays the
other. Real processes: a gateway and the standalone sandbox standing in for both."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.system.processes import (
    forwarded_orders,
    gateway_with_sandbox,
    missing_event_ids,
    missing_forwards,
    purchase_hit,
    stop,
)

TOKEN = "independence-token"
N = 40
PROMPT = 5.0  # seconds within which the healthy side must have everything


def delivered_ids(sandbox_url: str) -> set[str]:
    listing = httpx.get(f"{sandbox_url}/sandbox/events", params={"limit": 10_000}).json()
    return {stored["event"]["event_id"] for stored in listing["events"]}


def test_an_outage_of_one_destination_never_delays_the_other(tmp_path: Path) -> None:
    with gateway_with_sandbox(tmp_path, TOKEN, "CINDEP") as pair:
        sandbox_url = pair.sandbox_url
        with httpx.Client(base_url=pair.gateway_url, timeout=5) as client:
            # 1. TikTok down: every GA4 hit still reaches Google at once, no TikTok event does.
            assert httpx.post(f"{sandbox_url}/sandbox/outage").status_code == 200
            first = {f"order-{index}" for index in range(N)}
            for index in range(N):
                assert client.get(f"/g/collect?{purchase_hit(index)}").status_code == 204
            assert missing_forwards(sandbox_url, first, timeout=PROMPT) == set()
            assert delivered_ids(sandbox_url) == set()
            # Over the network (http1.py), with nothing of the HTTP client's own but the
            # connection's: the browser's user agent (httpx's here), never a client's own.
            hits = httpx.get(f"{sandbox_url}/sandbox/ga4/hits", params={"limit": 1}).json()
            headers = dict(hits["hits"][0]["headers"])
            assert set(headers) == {"host", "content-length", "user-agent"}
            assert headers["user-agent"].startswith("python-httpx/")
            # /readyz names the destination backing off (on the admin listener), and stays ready.
            ready = httpx.get(f"{pair.admin_url}/readyz")
            assert ready.status_code == 200
            assert "default" in ready.json()["backing_off"]
            assert client.get("/readyz").json() == {"status": "ready"}

            # 2. Google down, TikTok back: every TikTok event arrives, no new GA4 hit does.
            assert httpx.post(f"{sandbox_url}/sandbox/ga4/outage").status_code == 200
            assert httpx.delete(f"{sandbox_url}/sandbox/outage").status_code == 200
            second = {f"order-{index}" for index in range(N, 2 * N)}
            for index in range(N, 2 * N):
                assert client.get(f"/g/collect?{purchase_hit(index)}").status_code == 204
            assert missing_event_ids(sandbox_url, first | second, timeout=PROMPT) == set()
            assert forwarded_orders(sandbox_url) == first
            assert "ga4" in httpx.get(f"{pair.admin_url}/readyz").json()["backing_off"]

            # 3. Google back: the forwards it missed arrive, once the back-off probes again.
            assert httpx.delete(f"{sandbox_url}/sandbox/ga4/outage").status_code == 200
            assert missing_forwards(sandbox_url, first | second) == set()
        assert stop(pair.gateway) in (0, -signal.SIGTERM)


def test_a_slow_tiktok_never_slows_ga4_forwards(tmp_path: Path) -> None:
    """TikTok answers, but only after 3 s: its lane's requests are all in flight, the GA4 lane's
    are not among them."""
    slow = ["--latency-ms", "3000"]
    with gateway_with_sandbox(tmp_path, TOKEN, "CSLOW", slow, GATEWAY_MAX_IN_FLIGHT="1") as pair:
        orders = {f"order-{index}" for index in range(N)}
        started = time.monotonic()
        with httpx.Client(base_url=pair.gateway_url, timeout=5) as client:
            for index in range(N):
                assert client.get(f"/g/collect?{purchase_hit(index)}").status_code == 204
        assert missing_forwards(pair.sandbox_url, orders, timeout=2.5) == set()
        forwarded_within = time.monotonic() - started
        assert forwarded_within < 2.9, forwarded_within  # before TikTok's first answer
        assert missing_event_ids(pair.sandbox_url, orders, timeout=30) == set()
        assert stop(pair.gateway) in (0, -signal.SIGTERM)
