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
from tests.system.processes import (
    delivering_to,
    free_port,
    missing_event_ids,
    purchase_hit,
    start,
    start_sandbox,
    stop,
    wait_until_up,
)

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
    sandbox = start_sandbox(sandbox_port, TOKEN, log)
    env = delivering_to(sandbox_url, TOKEN, "CSHARED") | {"GATEWAY_QUEUE_URL": queue_url}
    admin_port = free_port()
    gateways = [start(["serve"], env | {"GATEWAY_PORT": str(port)}, log) for port in ports[:1]]
    second = {"GATEWAY_PORT": str(ports[1]), "GATEWAY_ADMIN_PORT": str(admin_port)}
    gateways.append(start(["serve"], env | second, log))
    try:
        for port, gateway in zip(ports, gateways, strict=True):
            wait_until_up(f"http://127.0.0.1:{port}/healthz", gateway)
        assert httpx.post(f"{sandbox_url}/sandbox/outage").status_code == 200
        for index in range(N):  # every other hit to each process
            url = f"http://127.0.0.1:{ports[index % 2]}/g/collect?{purchase_hit(index)}"
            assert httpx.get(url, timeout=5).status_code == 204
        time.sleep(0.5)  # both workers lease, fail against the outage, lease again
        assert stop(gateways[0], signal.SIGKILL) == -signal.SIGKILL
        assert httpx.delete(f"{sandbox_url}/sandbox/outage").status_code == 200

        lost = missing_event_ids(sandbox_url, {f"order-{index}" for index in range(N)})
        assert lost == set(), f"lost: {sorted(lost)}; log: {log.read_text()}"
        ready = httpx.get(f"http://127.0.0.1:{admin_port}/readyz").json()
        assert ready["queue"]["depth"] == 0
        assert stop(gateways[1]) in (0, -signal.SIGTERM)
    finally:
        for process in (*gateways, sandbox):
            if process.poll() is None:
                process.kill()
                process.wait()
