"""Bounded heads, head deadlines, the connection cap and proxy headers through a real ``serve``
(SPEC 13, issue 12). On the unbounded server, 300 hits with a 4 MB Host grew the process from
65 MB to 3.5 GB, idle sockets were never closed, and X-Forwarded-For from loopback was taken as
the client's address."""

from __future__ import annotations

import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.harness import HIT
from tests.raw_http import connect, head_of, parse_responses, read_until_closed
from tests.raw_http import send_ignoring_reset as send
from tests.system.processes import free_port, start, stop, wait_until_up

MB = 1024 * 1024


@dataclass
class Gateway:
    port: int
    admin: int
    process: subprocess.Popen[bytes]

    def status(self, key: str) -> int:
        """``key`` of /proc/<pid>/status, in bytes (VmRSS: resident now, VmHWM: its peak)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)


@contextmanager
def gateway(tmp_path: Path, **settings: str) -> Iterator[Gateway]:
    port, admin = free_port(), free_port()
    env = {
        "GATEWAY_PORT": str(port),
        "GATEWAY_ADMIN_PORT": str(admin),
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_GA4_FORWARD": "false",
        "TIKTOK_PIXEL_CODE": "CLIMITS",
        **settings,
    }
    process = start(["serve"], env, tmp_path / "gateway.log")
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        yield Gateway(port, admin, process)
    finally:
        assert stop(process) in (0, -15)
    assert "Traceback" not in (tmp_path / "gateway.log").read_text()


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def bomb(port: int, held: list[socket.socket]) -> int:
    """A hit with a 4 MB Host; the socket is kept open (in ``held``); returns the status."""
    sock = connect(port, timeout=10)
    held.append(sock)
    send(sock, b"GET /g/collect HTTP/1.1\r\nHost: " + b"h" * (4 * MB) + b"\r\n\r\n")
    answers = parse_responses(read_until_closed(sock, timeout=10))
    assert answers, "closed without an answer"
    assert answers[0].json()["error"] == "request_head_too_large"
    return answers[0].status


def test_a_header_bomb_is_refused_without_growing_the_process(tmp_path: Path) -> None:
    with gateway(tmp_path) as server, ExitStack() as stack:
        for _ in range(20):  # warm: what a normal hit and a refusal allocate once
            assert httpx.get(f"http://127.0.0.1:{server.port}/g/collect?{HIT}").status_code == 204
        with connect(server.port) as sock:  # the largest head allowed is served
            sock.sendall(head_of(16384, path="/healthz", extra="Connection: close\r\n"))
            assert [answer.status for answer in parse_responses(read_until_closed(sock))] == [200]
        held: list[socket.socket] = []
        stack.callback(close_all, held)
        assert bomb(server.port, held) == 431
        rss, peak = server.status("VmRSS"), server.status("VmHWM")
        with ThreadPoolExecutor(16) as pool:
            for _ in range(15):  # 300 bombs, 20 at a time; an unbounded server fails the first 20
                assert set(pool.map(lambda _: bomb(server.port, held), range(20))) == {431}
                assert server.status("VmRSS") - rss < 30 * MB
        assert server.status("VmRSS") - rss < 30 * MB
        assert server.status("VmHWM") - peak < 30 * MB
        assert httpx.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200


def test_idle_and_trickling_connections_are_closed_at_the_head_deadline(tmp_path: Path) -> None:
    with gateway(tmp_path, GATEWAY_HEADER_TIMEOUT_SECONDS="1") as server, ExitStack() as stack:
        opened = time.monotonic()
        silent = [stack.enter_context(connect(server.port)) for _ in range(300)]
        trickling = [stack.enter_context(connect(server.port)) for _ in range(5)]
        stop_trickling = threading.Event()

        def trickle() -> None:  # one byte of a head per 0.1 s on each, until closed
            for byte in b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"s" * 200:
                for sock in trickling:
                    send(sock, bytes([byte]))
                if stop_trickling.wait(0.1):
                    return

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        stack.callback(stop_trickling.set)
        selector = stack.enter_context(selectors.DefaultSelector())
        for sock in silent + trickling:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        open_ones, closed_at = len(silent) + len(trickling), []
        while open_ones and time.monotonic() - opened < 4:
            # the public port answers throughout
            assert httpx.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200
            for key, _ in selector.select(timeout=0.05):
                closing = key.fileobj
                assert isinstance(closing, socket.socket)
                try:
                    data = closing.recv(4096)
                except ConnectionResetError:
                    data = b""
                assert data == b""  # closed without an answer
                selector.unregister(closing)
                open_ones -= 1
                closed_at.append(time.monotonic() - opened)
        assert open_ones == 0, f"{open_ones} connections still open after 4 s"
        assert min(closed_at) >= 0.9
        assert max(closed_at) < 2.5  # the deadline (1 s) plus slack for 305 connections


def test_past_the_cap_connections_are_answered_503_at_once(tmp_path: Path) -> None:
    with gateway(tmp_path, GATEWAY_MAX_CONNECTIONS="200") as server, ExitStack() as stack:
        for _ in range(200):  # idle: they hold descriptors until the head deadline (10 s)
            stack.enter_context(connect(server.port))
        time.sleep(0.3)  # all accepted
        for port in (server.port, server.admin):  # one count over both listeners
            with connect(port) as extra:
                started = time.monotonic()
                [refused] = parse_responses(read_until_closed(extra, timeout=3))
                assert time.monotonic() - started < 0.5
            assert refused.status == 503
            assert refused.json() == {"error": "too_many_connections", "detail": None}
        stack.close()  # the 200 go
        time.sleep(0.3)
        assert httpx.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200


def test_x_forwarded_for_from_loopback_is_not_the_client_without_trusted_proxies(
    tmp_path: Path,
) -> None:
    with gateway(tmp_path, GATEWAY_BATCH_MAX_WAIT_MS="0") as server:
        hit = f"http://127.0.0.1:{server.port}/g/collect?{HIT}&ep.transaction_id=xff-1"
        forwarded = {"X-Forwarded-For": "198.51.100.7", "User-Agent": "xff-test"}
        assert httpx.get(hit, headers=forwarded).status_code == 204
        events = f"http://127.0.0.1:{server.admin}/sandbox/events"
        deadline = time.monotonic() + 10
        while not (stored := httpx.get(events).json()["events"]):
            assert time.monotonic() < deadline, "the event never reached the sandbox"
            time.sleep(0.1)
        [event] = stored
        assert event["event"]["user"]["ip"] == "127.0.0.1"  # the peer, not the header
