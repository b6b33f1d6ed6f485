"""``serve``'s start time and memory with 1,000,000 events queued while TikTok is unreachable
(issue 13 item 4: RSS <= 150 MB, ``/healthz`` within 1 s of the start), against an empty queue.

The queue (SQLite, the default: ``GATEWAY_DATA_DIR/queue.db``) is filled with real payloads:
``--hits`` hits of ``bench/ingest.py``'s mix go through the gateway app in process (its own
collectors and ``Ingest``, into a memory queue, no delivery), and the items they made are then
``Queue.put`` into the SQLite file in batches of 20,000 (one transaction each, for speed:
1,000,000 hits through HTTP would take several minutes), cycling through them until ``--events``
TikTok events are queued (with ``--forward``, the GA4 forwards the same hits made come along in
their proportion, one per hit). The filled file is kept and copied afresh before each start, and
dropped from the page cache (as after a reboot; ``--warm`` keeps it cached).

Each start runs ``tiktok-gateway serve`` as a subprocess on CPU 0 (this script runs on CPU 1),
TikTok (and Google) at a closed port, i.e. in an outage, with ``GATEWAY_QUEUE_MAX_EVENTS`` and
``GATEWAY_QUEUE_MAX_BYTES`` raised over the queue's size so that hits are still taken. Measured:

- ``--starts`` starts per queue (empty, full): ms from exec to the first ``/healthz`` 200 (polled
  every 5 ms), the CPU ``serve`` used until then, that time less what its threads waited for a
  CPU (``/proc/<pid>/task/*/schedstat``: other processes' work on this shared machine; what an
  idle core would have taken), ms to the first public ``/readyz`` 200, VmRSS/VmHWM then;
- ``--runs`` full runs per queue: the same, then VmRSS/VmHWM after 30 s and 60 s of outage (the
  TikTok lane holds back and probes, leases and releases), and after 10 s of ``--rate`` hits/s
  (open loop, bench/ingest.py's mix; rate, p99 and non-2xx printed), and the seconds a graceful
  stop (SIGTERM) took;
- the queue file's bytes per item and per TikTok event after the fill.

Medians over the starts and runs. ``--compare EXE`` alternates another build's
``tiktok-gateway`` (the code before a change) in every start and run: an A/B in one run.
``--redis`` also times starts against a private ``redis-server`` (no persistence) holding the
same items (Redis's own memory is Redis's, not counted here).

    .venv/bin/python bench/million.py [--events 1000000] [--starts 7] [--runs 3] [--redis]
        [--forward] [--keep FILE] [--compare OTHER/.venv/bin/tiktok-gateway]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import ingest  # bench/ingest.py: the hit mix and its open-loop client
import servers
from tiktok_gateway.config import load_config
from tiktok_gateway.queue.base import NewItem, Queue
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.queue.redis_streams import RedisStreamsQueue
from tiktok_gateway.queue.sqlite import SQLiteQueue

GATEWAY = str(Path(sys.executable).with_name("tiktok-gateway"))
GATEWAY_CPU, BENCH_CPU = 0, 1
PUT_BATCH = 20_000
POLL_SECONDS = 0.005
PIXEL = "BENCHPIXEL"


def _environ(forward: bool, closed: int) -> dict[str, str]:
    """The gateway's settings: one TikTok tag, TikTok (and Google) at the closed port ``closed``."""
    env = {
        "TIKTOK_PIXEL_CODE": PIXEL,
        "TIKTOK_ACCESS_TOKEN": "bench-token",
        "TIKTOK_API_URL": f"http://127.0.0.1:{closed}",
        "GATEWAY_GA4_FORWARD": "true" if forward else "false",
    }
    if forward:
        env["GATEWAY_GA4_ENDPOINT"] = f"http://127.0.0.1:{closed}"
    return env


async def _sample_items(hits: int, forward: bool) -> list[NewItem]:
    """The items ``hits`` hits of the mix make, through the app in process (no delivery)."""
    from queue_bytes import mix_sent  # bench/queue_bytes.py

    queue = MemoryQueue()
    async with mix_sent(load_config(None, _environ(forward, 9)), queue, hits):
        leased = await queue.lease((await queue.stats()).depth, 60)
    return [NewItem(item.group, item.payload) for item in leased]


def _cycle(sample: list[NewItem], events: int) -> list[NewItem]:
    """``events`` TikTok items cycling through the sample, the GA4 forwards in their proportion."""
    tiktok = [item for item in sample if item.group != "ga4"]
    forwards = [item for item in sample if item.group == "ga4"]
    wanted = [tiktok[n % len(tiktok)] for n in range(events)]
    if forwards:
        count = round(events * len(forwards) / len(tiktok))
        wanted += [forwards[n % len(forwards)] for n in range(count)]
        random.Random(3).shuffle(wanted)  # hits' items arrive interleaved
    return wanted


async def _fill(opener: Callable[[], Awaitable[Queue]], items: list[NewItem]) -> float:
    """Put ``items`` in batches of ``PUT_BATCH``; returns the seconds it took."""
    queue = await opener()
    began = time.perf_counter()
    try:
        for start in range(0, len(items), PUT_BATCH):
            await queue.put(items[start : start + PUT_BATCH])
    finally:
        await queue.close()
    return time.perf_counter() - began


def _get(port: int, path: str) -> int:
    """The status of ``GET path`` on 127.0.0.1:``port``, 0 when nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = sock.recv(64)
            return int(head[9:12]) if head.startswith(b"HTTP/1.1 ") else 0
    except OSError:
        return 0


def _until(ok: Callable[[], bool], since: float, limit: float = 60.0) -> float:
    """Seconds from ``since`` until ``ok()`` (polled every ``POLL_SECONDS``); inf past ``limit``."""
    while not ok():
        if time.perf_counter() - since > limit:
            return float("inf")
        time.sleep(POLL_SECONDS)
    return time.perf_counter() - since


def _evict(path: Path) -> None:
    """Write ``path`` out and drop it from the page cache: the start then reads it from the disk,
    as after a reboot or on a new machine (no other file is touched)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _runqueue_wait(pid: int) -> float:
    """Seconds the process's threads have waited for a CPU (ready to run, another process on
    it): on a shared machine, ``healthz - waited`` is what an idle core would have taken."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def _data_dir(tmp: Path, source: Path | None, warm: bool) -> Path:
    """A fresh data folder holding a copy of ``source`` (or nothing), cold unless ``warm``."""
    data = tmp / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    if source is not None:
        shutil.copyfile(source, data / "queue.db")
        if not warm:
            _evict(data / "queue.db")
    return data


def _run(
    gateway: str, env: dict[str, str], log: Path, outage: float, rate: float, full: bool
) -> dict[str, float]:
    """One start of ``serve``: its start times and memory (the module docstring)."""
    port, admin = servers.free_ports(2)
    env = env | {"GATEWAY_ADMIN_PORT": str(admin), "GATEWAY_LOG_LEVEL": "warning"}
    # Over the depth (2,000,000 items and 2.2 GB with forwarding): hits are still taken.
    env["GATEWAY_QUEUE_MAX_EVENTS"] = str(10_000_000)
    env["GATEWAY_QUEUE_MAX_BYTES"] = str(20 * 2**30)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TIKTOK_", "GATEWAY_"))}
    row: dict[str, float] = {}
    with log.open("ab") as out:
        began = time.perf_counter()
        proc = subprocess.Popen(
            [gateway, "serve", "--port", str(port)],
            env=clean | env,
            stdout=out,
            stderr=out,
            preexec_fn=lambda: os.sched_setaffinity(0, {GATEWAY_CPU}),
        )
    try:
        row["healthz"] = _until(lambda: _get(port, "/healthz") == 200, began)
        row["cpu"], row["waited"] = servers.process_cpu(proc.pid), _runqueue_wait(proc.pid)
        row["readyz"] = _until(lambda: _get(port, "/readyz") == 200, began)
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}; see {log}")
        row["rss_start"], row["hwm_start"] = servers.memory(proc.pid)
        if full:
            for mark in (30.0, 60.0):
                if mark > outage:
                    break
                time.sleep(max(began + mark - time.perf_counter(), 0.0))
                row[f"rss_{mark:.0f}"], row[f"hwm_{mark:.0f}"] = servers.memory(proc.pid)
            time.sleep(max(began + outage - time.perf_counter(), 0.0))
            reqs = [
                ingest._hit(ingest.ORDER[n % len(ingest.ORDER)], random.Random(n), 10**6 + n)
                for n in range(2000)
            ]
            load = asyncio.run(ingest._open_loop(port, reqs, rate, 10.0, 16))
            row["rss_load"], row["hwm_load"] = servers.memory(proc.pid)
            row["load_rate"], row["load_p99"], row["load_bad"] = (
                load["rate"],
                load["p99"],
                load["bad"],
            )
    finally:
        stopping = time.perf_counter()
        servers.stop([proc], timeout=60)
        row["stop"] = time.perf_counter() - stopping
    return row


def _median(rows: list[dict[str, float]], key: str) -> float:
    values = [row[key] for row in rows if key in row]
    return statistics.median(values) if values else float("nan")


def _print_rows(label: str, rows: list[dict[str, float]]) -> None:
    def ms(key: str) -> str:
        return f"{1000 * _median(rows, key):7.0f}"

    def mb(key: str) -> str:
        return f"{_median(rows, key):5.0f}/{_median(rows, 'hwm' + key[3:]):<4.0f}"

    idle = [row["healthz"] - row["waited"] for row in rows]
    print(
        f"{label:<30}{len(rows):>3}{ms('healthz')}{ms('cpu')}"
        f"{1000 * statistics.median(idle):7.0f}{ms('readyz')}  {mb('rss_start')}  "
        f"{mb('rss_30')}  {mb('rss_60')}  {mb('rss_load')}  {_median(rows, 'load_rate'):6.0f}"
        f"{_median(rows, 'load_p99'):7.1f}{_median(rows, 'load_bad'):5.0f}{ms('stop')}",
        flush=True,
    )
    spread = ", ".join(f"{1000 * row['healthz']:.0f}" for row in rows)
    print(f"{'':<33}healthz per run (ms): {spread}", flush=True)


HEADER = (
    f"{'gateway, queue':<30}{'n':>3}{'healthz':>7}{'cpu':>7}{'-wait':>7}{'readyz':>7}"
    f"  {'RSS/HWM MiB: start':<18}"
    f"{'30 s':<12}{'60 s':<12}{'load':<9}{'hits/s':>6}{'p99ms':>7}{'bad':>5}{'stop':>7}"
)


def _redis_starts(
    gateways: dict[str, str], items: list[NewItem], args: argparse.Namespace, tmp: Path
) -> None:
    if shutil.which("redis-server") is None:
        print("redis: redis-server is not installed; skipped")
        return
    port = servers.free_ports(1)[0]
    cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    redis = subprocess.Popen(
        [*cmd, "--dir", str(tmp), "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {BENCH_CPU}),
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        time.sleep(0.5)
        for label, fill in (("redis, empty", []), (f"redis, {len(items):,} queued", items)):
            asyncio.run(_redis_flush(url))
            if fill:
                seconds = asyncio.run(_fill(lambda: RedisStreamsQueue.open(url), fill))
                print(f"redis filled in {seconds:.0f} s", flush=True)
            env = _environ(args.forward, args.closed) | {"GATEWAY_QUEUE_URL": url}
            rows: dict[str, list[dict[str, float]]] = {name: [] for name in gateways}
            for n in range(args.starts):
                for name in _alternate(gateways, n):
                    run = _run(gateways[name], env, tmp / "gateway.log", 0, 0, full=False)
                    rows[name].append(run)
            for name, got in rows.items():
                _print_rows(f"{name}, {label}", got)
    finally:
        redis.terminate()
        redis.wait(timeout=30)


async def _redis_flush(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()


def _alternate(gateways: dict[str, str], n: int) -> list[str]:
    """The gateways' names, in turn first: A/B, then B/A, ..."""
    names = list(gateways)
    return names[n % len(names) :] + names[: n % len(names)]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="TikTok events queued")
    parser.add_argument("--hits", type=int, default=4_000, help="hits making the sample items")
    parser.add_argument("--starts", type=int, default=7, help="start-only runs per queue")
    parser.add_argument("--runs", type=int, default=3, help="full runs (outage, load) per queue")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds before the load")
    parser.add_argument("--rate", type=float, default=500.0, help="hits/s for 10 s at the end")
    parser.add_argument("--forward", action="store_true", help="GA4 forwarding on")
    parser.add_argument("--warm", action="store_true", help="keep the copied file in the cache")
    parser.add_argument("--redis", action="store_true", help="also time starts on Redis")
    parser.add_argument("--keep", type=Path, help="reuse (or make) the filled file here")
    parser.add_argument(
        "--compare", metavar="EXE", help="another tiktok-gateway (e.g. of the code before a"
        " change): every start and run alternates the two"
    )  # fmt: skip
    args = parser.parse_args()
    os.sched_setaffinity(0, {BENCH_CPU})
    args.closed = servers.free_ports(1)[0]  # nothing listens there: TikTok is in an outage
    gateways = {"gateway": GATEWAY} | ({"compared": args.compare} if args.compare else {})
    print(f"machine: {servers.machine()}")
    for name, exe in gateways.items():
        print(f"{name}: {exe} on CPU {GATEWAY_CPU}")
    print(
        f"GA4 forwarding {'on' if args.forward else 'off'}; TikTok at a closed port;"
        f" the queue file {'warm' if args.warm else 'cold (evicted from the page cache)'}"
        " at each start"
    )
    sample = asyncio.run(_sample_items(args.hits, args.forward))
    items = _cycle(sample, args.events)
    sizes = sorted(len(item.payload) for item in sample)
    print(
        f"sample: {args.hits} hits -> {len(sample)} items, payload median {sizes[len(sizes) // 2]}"
        f" bytes; queue: {len(items):,} items"
    )
    with tempfile.TemporaryDirectory(prefix="bench-million-") as name:
        tmp = Path(name)
        filled = args.keep or tmp / "filled.db"
        if not filled.exists():
            seconds = asyncio.run(_fill(lambda: SQLiteQueue.open(filled), items))
            print(f"filled {filled} in {seconds:.0f} s", flush=True)
        fill_bytes = filled.stat().st_size
        print(
            f"queue.db after the fill: {fill_bytes:,} bytes for {len(items):,} items:"
            f" {fill_bytes / len(items):.0f} bytes per item,"
            f" {fill_bytes / args.events:.0f} per TikTok event",
            flush=True,
        )
        env = _environ(args.forward, args.closed)
        queues = (("sqlite, empty", None), (f"sqlite, {args.events:,} queued", filled))
        log = tmp / "gateway.log"
        print(
            "\nstarts: ms from exec to the first /healthz 200, the CPU serve used until then,"
            " that time less the time its threads waited for a CPU (what an idle core would"
            " take), to the first /readyz 200; RSS at /readyz\n" + HEADER,
            flush=True,
        )
        for label, source in queues:
            rows: dict[str, list[dict[str, float]]] = {name: [] for name in gateways}
            for n in range(args.starts):
                for name in _alternate(gateways, n):
                    run_env = env | {"GATEWAY_DATA_DIR": str(_data_dir(tmp, source, args.warm))}
                    rows[name].append(_run(gateways[name], run_env, log, 0, 0, full=False))
            for name, got in rows.items():
                _print_rows(f"{name}, {label}", got)
        if args.runs:
            print(
                f"\nfull runs ({args.outage:.0f} s of outage, then {args.rate:.0f} hits/s for"
                f" 10 s):\n{HEADER}",
                flush=True,
            )
        for label, source in queues if args.runs else ():
            rows = {name: [] for name in gateways}
            for n in range(args.runs):
                for name in _alternate(gateways, n):
                    run_env = env | {"GATEWAY_DATA_DIR": str(_data_dir(tmp, source, args.warm))}
                    run = _run(gateways[name], run_env, log, args.outage, args.rate, full=True)
                    rows[name].append(run)
            for name, got in rows.items():
                _print_rows(f"{name}, {label}", got)
        if args.runs:
            after = (tmp / "data" / "queue.db").stat().st_size
            print(f"queue.db after the last run (graceful stop): {after:,} bytes", flush=True)
        if args.redis:
            _redis_starts(gateways, items, args, tmp)


if __name__ == "__main__":
    main()
