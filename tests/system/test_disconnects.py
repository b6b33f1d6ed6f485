"""Clients that go away mid-body, through a real ``serve`` (SPEC 13): no error line, no traceback,
nothing queued, and the gateway goes on answering."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx

from tests.harness import HIT
from tests.system.processes import free_port, start, stop, wait_until_up

INGEST_TOKEN = "disconnect-ingest-token"


def send_part_and_close(port: int, path: str, headers: str, sent: bytes, length: int) -> None:
    """A request head promising ``length`` body bytes, ``sent`` of them, then the socket closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: shop.example.com\r\n{headers}"
            f"Content-Length: {length}\r\n\r\n"
        )
        sock.sendall(head.encode() + sent)
        time.sleep(0.05)


def test_clients_gone_mid_body_leave_no_error(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    log = tmp_path / "gateway.log"
    env = {
        "GATEWAY_PORT": str(port),
        "GATEWAY_ADMIN_PORT": str(admin),
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_INGEST_TOKEN": INGEST_TOKEN,
        "GATEWAY_MP_API_SECRETS": "G-1=mp-secret",
        "GATEWAY_GA4_FORWARD": "false",
        "GATEWAY_LOG_FORMAT": "json",
        "TIKTOK_PIXEL_CODE": "CDISCONNECT",
    }
    gateway = start(["serve"], env, log)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", gateway)
        bearer = f"Authorization: Bearer {INGEST_TOKEN}\r\nContent-Type: application/json\r\n"
        for _ in range(10):
            send_part_and_close(port, f"/g/collect?{HIT}", "", b"en=page_view&", 5000)
            send_part_and_close(port, "/events", bearer, b'[{"event_name": "pur', 5000)
            mp = "/mp/collect?measurement_id=G-1&api_secret=mp-secret"
            send_part_and_close(port, mp, "", b'{"client_id": "1.', 5000)
        time.sleep(0.5)
        # The query carries personal data: no access log may print it.
        whole = f"http://127.0.0.1:{port}/g/collect?{HIT}&ep.note=quinn%40access-log.example"
        assert httpx.get(whole).status_code == 204
        stats = httpx.get(f"http://127.0.0.1:{admin}/readyz").json()
        assert stats["queue"]["depth"] <= 1  # the one whole hit (depth counts it leased too)
    finally:
        assert stop(gateway) in (0, -15)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert not [line for line in lines if line.get("level") in ("warning", "error", "critical")]
    assert "Traceback" not in log.read_text()
    assert "quinn%40access-log.example" not in log.read_text()  # no access log prints queries
    gone = [line for line in lines if line.get("error") == "client_disconnected"]
    assert len(gone) >= 20  # counted and logged as what they are (at info)
