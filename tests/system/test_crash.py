"""Kill -9 of a real gateway process loses no acknowledged event, nor a GA4 forward (SPEC 8, 12)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.system.processes import (
    delivering_to,
    free_port,
    missing_event_ids,
    missing_forwards,
    purchase_hit,
    start,
    start_sandbox,
    stop,
    wait_until_up,
)

TOKEN = "crash-test-token"
N = 60


def test_acknowledged_events_survive_sigkill_during_an_outage(tmp_path: Path) -> None:
    sandbox_port, gateway_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    log = tmp_path / "processes.log"
    sandbox = start_sandbox(sandbox_port, TOKEN, log)
    env = delivering_to(sandbox_url, TOKEN, "CCRASH")
    env |= {"GATEWAY_PORT": str(gateway_port), "GATEWAY_DATA_DIR": str(tmp_path / "data")}
    gateway = start(["serve"], env, log)
    try:
        wait_until_up(f"{gateway_url}/healthz", gateway)
        # Open-ended outages of both sides: 503 without Retry-After, so retries follow the short
        # back-off.
        assert httpx.post(f"{sandbox_url}/sandbox/outage").status_code == 200
        assert httpx.post(f"{sandbox_url}/sandbox/ga4/outage").status_code == 200
        with httpx.Client(base_url=gateway_url, timeout=5) as client:
            for index in range(N):
                assert client.get(f"/g/collect?{purchase_hit(index)}").status_code == 204
        time.sleep(0.3)  # let the worker lease and fail against the outage at least once
        assert stop(gateway, signal.SIGKILL) == -signal.SIGKILL

        gateway = start(["serve"], env, log)
        wait_until_up(f"{gateway_url}/healthz", gateway)
        assert httpx.delete(f"{sandbox_url}/sandbox/outage").status_code == 200
        assert httpx.delete(f"{sandbox_url}/sandbox/ga4/outage").status_code == 200

        orders = {f"order-{index}" for index in range(N)}
        lost = missing_event_ids(sandbox_url, orders)
        assert lost == set(), f"lost: {sorted(lost)}; log: {log.read_text()}"
        not_forwarded = missing_forwards(sandbox_url, orders)
        assert not_forwarded == set(), f"not forwarded: {sorted(not_forwarded)}"
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
        assert stop(gateway) in (0, -signal.SIGTERM)
    finally:
        for process in (gateway, sandbox):
            if process.poll() is None:
                process.kill()
                process.wait()
