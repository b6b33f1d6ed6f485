"""CPU per GA4 forward of the network senders: aiohttp (the sender before) against ``Http1Sender``
(``tags/ga4/http1.py``), posting to a bare server on the other CPU.

The senders run in this process, pinned to CPU 0; the bare Starlette app (``bench/bare.py``
under uvicorn, as ``bench/ingest.py`` runs it) answers on CPU 1. Each round posts
``--requests`` forwards of a real hit's size (a 1.6 KB query, the browser's headers, a 60-byte
body), ``--concurrency`` at once (the GA4 lane's ``max_in_flight``), after a warm-up; rounds
alternate the senders; CPU seconds are this process's (all threads). Prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sys
import time
from pathlib import Path
from statistics import median

import aiohttp
import uvloop
from yarl import URL

import ingest
import servers
from tiktok_gateway.tags.ga4.forward import forwarded_headers, web_forward
from tiktok_gateway.tags.ga4.http1 import Http1Sender
from tiktok_gateway.tags.ga4.sender import Answer, Headers


class AiohttpSender:
    """The sender GA4 forwards used before ``Http1Sender`` (as it was in tags/ga4/sender.py)."""

    def __init__(self, connections: int) -> None:
        skipped = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            skip_auto_headers=skipped,
            trust_env=False,
        )

    async def post(self, url: str, headers: Headers, body: bytes, timeout: float) -> Answer:
        async with self._session.post(
            URL(url, encoded=True),
            data=body,
            headers=list(headers),
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            await response.read()
            return Answer(response.status, response.headers.get("Retry-After"))

    async def aclose(self) -> None:
        await self._session.close()


def _forward() -> tuple[str, Headers, bytes]:
    raw = ingest._hit("purchase", random.Random(7), 3)
    query = raw.split(b" ", 2)[1].split(b"?", 1)[1]
    headers = {"user-agent": ingest.UA, "accept-language": "de-DE,de;q=0.9"}
    forward = web_forward(
        query, b"en=page_view&_ee=1\r\nen=scroll&_et=8", headers, "203.0.113.9", "full"
    )
    return forward.query, forwarded_headers(headers), forward.body


async def _round(name: str, port: int, requests: int, concurrency: int) -> float:
    """CPU microseconds per forward of one round (this process, all threads)."""
    query, headers, body = _forward()
    url = f"http://127.0.0.1:{port}/g/collect?{query}"
    sender = AiohttpSender(concurrency) if name == "aiohttp" else Http1Sender(concurrency)
    todo = iter(range(requests + 500))

    async def worker() -> None:
        for _ in todo:
            answer = await sender.post(url, headers, body, 5.0)
            assert answer.status == 204, answer

    for _ in range(500 // concurrency):  # warm up: connections open
        await sender.post(url, headers, body, 5.0)
    before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    after = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter() - began
    await sender.aclose()
    cpu = sum(after[:2]) - sum(before[:2])
    print(f"  {name:<8} {1e6 * cpu / requests:7.1f} us CPU per forward, {requests / wall:8,.0f}/s")
    return 1e6 * cpu / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(f"machine: {servers.machine()}")
    os.sched_setaffinity(0, {0})
    port = servers.free_ports(1)[0]
    log = Path(f"/tmp/bench-forward-client-{port}.log")
    bare = [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(__file__).parent), "bare:BARE"]
    bare += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--port", str(port)]
    server = servers.start(bare, {}, 1, log)
    results: dict[str, list[float]] = {"aiohttp": [], "http1": []}
    try:
        uvloop.install()
        for _ in range(args.rounds):
            for name in results:
                results[name].append(
                    asyncio.run(_round(name, port, args.requests, args.concurrency))
                )
    finally:
        servers.stop([server])
    old, new = (median(results[name]) for name in results)
    print(f"MEDIAN CPU per forward, {args.concurrency} at once: aiohttp {old:.1f} us,"
          f" Http1Sender {new:.1f} us; ratio {new / old:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
