"""What a queued event costs while TikTok is unreachable: SQLite bytes on disk, Redis memory and
append-only file bytes, per queue item and per hit (docs/deployment.md, "Sizing").

For each queue (SQLite in a folder of its own; a private ``redis-server`` with ``appendonly yes``
and ``appendfsync always``, as deploy/compose.yaml runs it) and with GA4 forwarding off and on:
``serve`` is started with TikTok (and Google) at a closed port, ``--hits`` hits of
``bench/ingest.py``'s mix are sent, the queue's depth is read from the admin ``/readyz``, and the
gateway is stopped (SIGTERM: leases handed back, SQLite's write-ahead log folded in). Then:

- SQLite: ``queue.db``'s growth over an empty queue's file (the same gateway started and stopped
  with no hit), per item;
- Redis: ``used_memory``'s growth over the empty server, per item; the append-only files' growth
  as written (every put, lease and retry of the outage) and after ``BGREWRITEAOF`` (what the
  queue itself needs), per item.

An item is one TikTok event or one GA4 forward (one per hit when forwarding is on).

    .venv/bin/python bench/queue_size.py [--hits 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

import servers
from ingest import ORDER, _hit

GATEWAY = str(Path(sys.executable).with_name("tiktok-gateway"))
GATEWAY_CPU = 0


async def _send(port: int, requests: list[bytes], connections: int = 16) -> int:
    """Send every request (closed loop); returns how many were not answered 2xx."""
    todo = iter(requests)
    bad = 0

    async def connection() -> None:
        nonlocal bad
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for request in todo:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            bad += head[9:10] != b"2"
            for line in head.lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    await reader.readexactly(int(line[15:]))
        writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return bad


def _aof_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in (folder / "appendonlydir").glob("*"))


def _run_gateway(env: dict[str, str], hits: int, log: Path) -> tuple[int, int]:
    """Start ``serve`` with ``env``, send ``hits`` hits, stop it; returns (queue depth, non-2xx)."""
    port, admin = servers.free_ports(2)
    env = env | {"GATEWAY_ADMIN_PORT": str(admin), "GATEWAY_LOG_LEVEL": "warning"}
    proc = servers.start([GATEWAY, "serve", "--port", str(port)], env, GATEWAY_CPU, log)
    try:
        rng = random.Random(13)
        requests = [_hit(ORDER[n % len(ORDER)], rng, n) for n in range(hits)]
        bad = asyncio.run(_send(port, requests)) if requests else 0
        depth = int(httpx.get(f"http://127.0.0.1:{admin}/readyz").json()["queue"]["depth"])
    finally:
        servers.stop([proc])
    return depth, bad


def _outage_env(forward: bool) -> dict[str, str]:
    closed = servers.free_ports(1)[0]  # nothing listens there: every request is refused
    env = {
        "TIKTOK_PIXEL_CODE": "BENCHPIXEL",
        "TIKTOK_ACCESS_TOKEN": "bench-token",
        "TIKTOK_API_URL": f"http://127.0.0.1:{closed}",
    }
    if forward:
        return env | {"GATEWAY_GA4_ENDPOINT": f"http://127.0.0.1:{closed}"}
    return env | {"GATEWAY_GA4_FORWARD": "false"}


def _sqlite(hits: int, forward: bool, tmp: Path) -> str:
    sizes = []
    depth = bad = 0
    for count in (0, hits):
        data = tmp / f"sqlite-{forward}-{count}"
        data.mkdir()
        env = _outage_env(forward) | {"GATEWAY_DATA_DIR": str(data)}
        depth, bad = _run_gateway(env, count, tmp / "gateway.log")
        leftovers = [path.name for path in data.iterdir() if path.name != "queue.db"]
        assert not leftovers, f"the queue was not closed cleanly: {leftovers}"
        sizes.append((data / "queue.db").stat().st_size)
    grown = sizes[1] - sizes[0]
    return (
        f"sqlite  forward={'on ' if forward else 'off'} hits {hits:>7,} items {depth:>7,}"
        f" ({depth / hits:.2f}/hit) non2xx {bad}: queue.db +{grown / 2**20:.1f} MiB,"
        f" {grown / depth:.0f} bytes/item, {grown / hits:.0f} bytes/hit"
    )


def _redis(hits: int, forward: bool, tmp: Path) -> str:
    folder = tmp / f"redis-{forward}"
    folder.mkdir()
    port = servers.free_ports(1)[0]
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    args += ["--dir", str(folder), "--appendonly", "yes", "--appendfsync", "always"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        empty_memory = int(client.info("memory")["used_memory"])
        empty_aof = _aof_bytes(folder)
        env = _outage_env(forward) | {"GATEWAY_QUEUE_URL": f"redis://127.0.0.1:{port}/0"}
        depth, bad = _run_gateway(env, hits, tmp / "gateway.log")
        memory = int(client.info("memory")["used_memory"]) - empty_memory
        written = _aof_bytes(folder) - empty_aof
        client.bgrewriteaof()
        while int(client.info("persistence")["aof_rewrite_in_progress"]) or int(
            client.info("persistence")["aof_rewrite_scheduled"]
        ):
            time.sleep(0.1)
        time.sleep(0.5)  # the old files are removed once the rewrite is in place
        rewritten = _aof_bytes(folder) - empty_aof
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)
    return (
        f"redis   forward={'on ' if forward else 'off'} hits {hits:>7,} items {depth:>7,}"
        f" ({depth / hits:.2f}/hit) non2xx {bad}: used_memory +{memory / 2**20:.1f} MiB,"
        f" {memory / depth:.0f} bytes/item, {memory / hits:.0f} bytes/hit; append-only file"
        f" {written / depth:.0f} bytes/item as written, {rewritten / depth:.0f} after rewrite"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hits", type=int, default=20_000, help="hits per configuration")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
    print(f"machine: {servers.machine()}")
    print(f"gateway: {GATEWAY}; TikTok and Google unreachable (a closed port)")
    with tempfile.TemporaryDirectory(prefix="bench-queue-size-") as name:
        tmp = Path(name)
        for forward in (False, True):
            print(_sqlite(args.hits, forward, tmp), flush=True)
            print(_redis(args.hits, forward, tmp), flush=True)


if __name__ == "__main__":
    main()
