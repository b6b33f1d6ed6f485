"""A header bomb against three servers: resident memory (VmRSS) before and after, and its peak.

Each hit sends a request head with a ``--mb`` MB ``Host`` header and keeps its socket open, 16 at
a time. The servers:

- ``base``: the bare app (``bare.py``) under uvicorn's own httptools protocol, unbounded
  (``--base-hits``, fewer: it keeps every head whole while its socket is open);
- ``limited``: the same app under ``endpoints/limits.py``'s protocol;
- ``serve``: ``tiktok-gateway serve`` itself.

    python bench/header_bomb.py [--hits 300] [--base-hits 50] [--mb 4]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bare import serve_bare
from servers import free_ports, machine, start, stop

MB = 1024 * 1024


def vm(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def hit(port: int, head: bytes, held: list[socket.socket]) -> bytes:
    """Send ``head``, keep the socket, return the status line of the answer (b"" if none)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    held.append(sock)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(head)
    answer = b""
    try:
        while b"\r\n" not in answer and (chunk := sock.recv(4096)):
            answer += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return answer.split(b"\r\n", 1)[0]


def bomb(name: str, args: list[str], env: dict[str, str], hits: int, mb: int) -> None:
    [port] = free_ports(1)
    log = Path(tempfile.gettempdir()) / f"header_bomb_{name}.log"
    process = start([*args, str(port)], env, cpu=0, log=log)
    held: list[socket.socket] = []
    try:
        time.sleep(0.5)
        warm = b"GET /g/collect HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        for _ in range(20):
            hit(port, warm, held)
        rss, peak = vm(process.pid, "VmRSS"), vm(process.pid, "VmHWM")
        head = b"GET /g/collect HTTP/1.1\r\nHost: " + b"h" * (mb * MB) + b"\r\n\r\n"
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _: hit(port, head, held), range(hits)))
        elapsed = time.monotonic() - started
        grown = vm(process.pid, "VmRSS") - rss
        peaked = vm(process.pid, "VmHWM") - peak
        answers = sorted({status.decode(errors="replace") or "(none)" for status in statuses})
        print(
            f"{name:8} {hits:4} hits x {mb} MB in {elapsed:5.1f} s: RSS {rss / MB:6.1f} MB"
            f" -> +{grown / MB:7.1f} MB, peak +{peaked / MB:7.1f} MB; answers {answers}"
        )
    finally:
        for sock in held:
            sock.close()
        stop([process])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hits", type=int, default=300)
    parser.add_argument("--base-hits", type=int, default=50)
    parser.add_argument("--mb", type=int, default=4)
    parser.add_argument("--serve-bare", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_bare:
        serve_bare(options.serve_bare[0], int(options.serve_bare[1]))
        return
    print(machine())
    me = [sys.executable, __file__]
    bomb("base", [*me, "--serve-bare", "base"], {}, options.base_hits, options.mb)
    bomb("limited", [*me, "--serve-bare", "limited"], {}, options.hits, options.mb)
    with tempfile.TemporaryDirectory() as data:
        env = {"GATEWAY_DATA_DIR": data, "GATEWAY_GA4_FORWARD": "false"}
        env["GATEWAY_ADMIN_PORT"] = str(free_ports(1)[0])
        serve = [sys.executable, "-m", "tiktok_gateway", "serve", "--port"]
        bomb("serve", serve, env, options.hits, options.mb)


if __name__ == "__main__":
    main()
