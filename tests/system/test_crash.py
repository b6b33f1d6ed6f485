"""Kill -9 of a real gateway process loses no acknowledged event (SPEC 8)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.system.processes import free_port, start, stop, wait_until_up

TOKEN = "crash-test-token"
N = 60


def test_acknowledged_events_survive_sigkill_during_an_outage(tmp_path: Path) -> None:
    sandbox_port, gateway_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    log = tmp_path / "processes.log"
    sandbox = start(
        ["sandbox", "--port", str(sandbox_port), "--access-token-env", "SANDBOX_TOKEN"],
        {"SANDBOX_TOKEN": TOKEN},
        log,
    )
    env = {
        "TIKTOK_PIXEL_CODE": "CCRASH",
        "TIKTOK_ACCESS_TOKEN": TOKEN,
        "TIKTOK_API_URL": sandbox_url,
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_BATCH_MAX_WAIT_MS": "20",
        "GATEWAY_RETRY_BASE_SECONDS": "0.05",
        "GATEWAY_RETRY_MAX_SECONDS": "0.5",
        # What the killed process had leased comes back when the lease ends.
        "GATEWAY_LEASE_SECONDS": "2",
    }
    gateway = start(["serve"], env, log)
    try:
        wait_until_up(f"{sandbox_url}/sandbox/", sandbox)
        wait_until_up(f"{gateway_url}/healthz", gateway)
        # An open-ended outage: 503 without Retry-After, so retries follow the short back-off.
        assert httpx.post(f"{sandbox_url}/sandbox/outage").status_code == 200
        with httpx.Client(base_url=gateway_url, timeout=5) as client:
            for index in range(N):
                query = f"v=2&tid=G-1&cid=1.2&en=purchase&ep.transaction_id=order-{index}"
                assert client.get(f"/g/collect?{query}").status_code == 204
        time.sleep(0.3)  # let the worker lease and fail against the outage at least once
        assert stop(gateway, signal.SIGKILL) == -signal.SIGKILL

        gateway = start(["serve"], env, log)
        wait_until_up(f"{gateway_url}/healthz", gateway)
        assert httpx.delete(f"{sandbox_url}/sandbox/outage").status_code == 200

        wanted = {f"order-{index}" for index in range(N)}
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while not wanted <= seen and time.monotonic() < deadline:
            listing = httpx.get(f"{sandbox_url}/sandbox/events", params={"limit": 10_000}).json()
            seen = {stored["event"]["event_id"] for stored in listing["events"]}
            time.sleep(0.1)
        assert wanted - seen == set(), f"lost: {sorted(wanted - seen)}; log: {log.read_text()}"
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
        assert stop(gateway) in (0, -signal.SIGTERM)
    finally:
        for process in (gateway, sandbox):
            if process.poll() is None:
                process.kill()
                process.wait()
