"""Two real gateway processes share one Redis queue (the reason for the Redis backend: several
processes, one queue). Hits go to both during a TikTok outage; one is killed with SIGKILL while it
holds leases or waits to retry; when the outage ends, the other delivers every event."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import redis_server
from tests.system.processes import free_port, start, stop, wait_until_up

TOKEN = "shared-queue-token"
N = 60


@pytest.fixture
def queue_url() -> Iterator[str]:
    redis_server.require()
    prefix = redis_server.new_prefix()
    yield f"{redis_server.URL}?key_prefix={prefix}"
    redis_server.delete_prefix(prefix)


def test_the_survivor_delivers_what_both_accepted(tmp_path: Path, queue_url: str) -> None:
    sandbox_port, ports = free_port(), (free_port(), free_port())
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    log = tmp_path / "processes.log"
    sandbox = start(
        ["sandbox", "--port", str(sandbox_port), "--access-token-env", "SANDBOX_TOKEN"],
        {"SANDBOX_TOKEN": TOKEN},
        log,
    )
    env = {
        "TIKTOK_PIXEL_CODE": "CSHARED",
        "TIKTOK_ACCESS_TOKEN": TOKEN,
        "TIKTOK_API_URL": sandbox_url,
        "GATEWAY_QUEUE_URL": queue_url,
        "GATEWAY_BATCH_MAX_WAIT_MS": "20",
        "GATEWAY_RETRY_BASE_SECONDS": "0.05",
        "GATEWAY_RETRY_MAX_SECONDS": "0.5",
        "GATEWAY_LEASE_SECONDS": "2",
    }
    gateways = [
        start(
            ["serve"],
            {**env, "GATEWAY_PORT": str(port), "GATEWAY_DATA_DIR": str(tmp_path / str(port))},
            log,
        )
        for port in ports
    ]
    try:
        wait_until_up(f"{sandbox_url}/sandbox/", sandbox)
        for port, gateway in zip(ports, gateways, strict=True):
            wait_until_up(f"http://127.0.0.1:{port}/healthz", gateway)
        assert httpx.post(f"{sandbox_url}/sandbox/outage").status_code == 200
        for index in range(N):  # every other hit to each process
            query = f"v=2&tid=G-1&cid=1.2&en=purchase&ep.transaction_id=order-{index}"
            url = f"http://127.0.0.1:{ports[index % 2]}/g/collect?{query}"
            assert httpx.get(url, timeout=5).status_code == 204
        time.sleep(0.5)  # both workers lease, fail against the outage, lease again
        assert stop(gateways[0], signal.SIGKILL) == -signal.SIGKILL
        assert httpx.delete(f"{sandbox_url}/sandbox/outage").status_code == 200

        wanted = {f"order-{index}" for index in range(N)}
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while not wanted <= seen and time.monotonic() < deadline:
            listing = httpx.get(f"{sandbox_url}/sandbox/events", params={"limit": 10_000}).json()
            seen = {stored["event"]["event_id"] for stored in listing["events"]}
            time.sleep(0.1)
        assert wanted - seen == set(), f"lost: {sorted(wanted - seen)}; log: {log.read_text()}"
        ready = httpx.get(f"http://127.0.0.1:{ports[1]}/readyz").json()
        assert ready["queue"]["depth"] == 0
        assert stop(gateways[1]) in (0, -signal.SIGTERM)
    finally:
        for process in (*gateways, sandbox):
            if process.poll() is None:
                process.kill()
                process.wait()
