"""What the bounded protocol (``endpoints/limits.py``) costs per request: microseconds per
keep-alive request, uvicorn's httptools protocol against the limited one, two ways:

- in process: one protocol instance on a stand-in transport is fed ``--requests`` heads (a
  450-byte ``/g/collect`` hit, a browser's size) one after another, each answered by the bare app
  (``bare.py``) before the next: the protocol's and the app's own cost, no sockets;
- over loopback: the bare app under each protocol in a server pinned to CPU 0, one client on
  CPU 1 on one keep-alive connection (noisier: the kernel and the client are in it).

Runs alternate between the two protocols; printed: the median and the best of ``--runs`` runs of
each, and their differences (on a shared machine the best runs are the steadier estimate).

    python bench/protocol_cost.py [--requests 5000] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bare import serve_bare
from servers import free_ports, machine, start, stop

HEAD = (
    b"GET /g/collect?v=2&tid=G-1&cid=1.2&en=page_view&dl=https%3A%2F%2Fshop.example.com%2F HTTP/1.1"
    b"\r\nHost: shop.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"
    b" (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\nAccept: */*\r\nAccept-Language: en\r\n"
    b"Referer: https://shop.example.com/\r\nOrigin: https://shop.example.com\r\n"
    b"Cookie: _ga=GA1.1.1.2; _ttp=abcdefghijklmnop\r\n\r\n"
)


def per_request_us(port: int, requests: int) -> float:
    """Microseconds per request, sequential, on one keep-alive connection."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(200):  # warm
            sock.sendall(HEAD)
            sock.recv(4096)
        started = time.perf_counter()
        for _ in range(requests):
            sock.sendall(HEAD)
            if not sock.recv(4096).startswith(b"HTTP/1.1 204"):
                raise RuntimeError("unexpected answer")
        return (time.perf_counter() - started) / requests * 1e6


class _Transport(asyncio.Transport):
    """Takes the protocol's writes and drops them."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        addresses = {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}
        return addresses.get(name, default)


def in_process_us(kind: str, requests: int) -> float:
    """Microseconds per request through one protocol instance of ``kind``, in process."""
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from bare import BARE
    from tiktok_gateway.endpoints.limits import HttpLimits, limited_protocol

    protocol_class: type[HttpToolsProtocol] = HttpToolsProtocol
    if kind == "limited":
        protocol_class = limited_protocol(HttpLimits(max_connections=10_000))
    config = uvicorn.Config(BARE, http=protocol_class, lifespan="off", log_config=None)
    config.load()

    async def run() -> float:
        state = ServerState()
        protocol = protocol_class(config, state, {}, asyncio.get_running_loop())
        protocol.connection_made(_Transport())
        for index in range(200 + requests):
            if index == 200:
                started = time.perf_counter()
            protocol.data_received(HEAD)
            while state.total_requests <= index:
                await asyncio.sleep(0)
        elapsed = time.perf_counter() - started
        protocol.connection_lost(None)
        return elapsed / requests * 1e6

    uvloop.install()
    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--serve-bare", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_bare:
        serve_bare(options.serve_bare[0], int(options.serve_bare[1]))
        return
    print(machine())
    os.sched_setaffinity(0, {1})
    log = Path(tempfile.gettempdir()) / "protocol_cost.log"
    ports = dict(zip(("base", "limited"), free_ports(2), strict=True))
    servers = [
        start([sys.executable, __file__, "--serve-bare", kind, str(port)], {}, cpu=0, log=log)
        for kind, port in ports.items()
    ]
    try:
        loopback: dict[str, list[float]] = {kind: [] for kind in ports}
        for _ in range(options.runs):
            for kind, port in ports.items():
                loopback[kind].append(per_request_us(port, options.requests))
    finally:
        stop(servers)
    in_process: dict[str, list[float]] = {kind: [] for kind in ports}
    for _ in range(options.runs):
        for kind in ports:
            in_process[kind].append(in_process_us(kind, options.requests))
    report("in process", in_process, options)
    report("loopback", loopback, options)


def report(title: str, results: dict[str, list[float]], options: argparse.Namespace) -> None:
    medians = {kind: statistics.median(values) for kind, values in results.items()}
    print(f"{title}: {options.requests} requests x {options.runs} runs")
    for kind, values in results.items():
        runs = " ".join(f"{value:.1f}" for value in values)
        print(
            f"  {kind:8} median {medians[kind]:6.1f}, best {min(values):6.1f} us/request"
            f"  (runs: {runs})"
        )
    difference = medians["limited"] - medians["base"]
    ratio = medians["limited"] / medians["base"]
    best = min(results["limited"]) - min(results["base"])
    print(f"  limited - base: {difference:+.1f} us/request ({ratio:.3f}x), best runs {best:+.1f}")


if __name__ == "__main__":
    main()
