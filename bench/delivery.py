"""Delivery throughput: events/s the gateway drains from its SQLite queue into TikTok, batched.

Set-up: the standalone sandbox (``tiktok-gateway sandbox``, no faults) stands in for TikTok on CPU
1; the gateway (``tiktok-gateway serve``, TIKTOK_ACCESS_TOKEN + TIKTOK_API_URL) runs on CPU 0. Each
round pre-loads ``--events`` events with ``POST /events`` (with GATEWAY_INGEST_TOKEN's bearer;
lists of 1000: page_view, view_item, add_to_cart with items, purchase with e-mail and phone) into a
gateway whose token the sandbox refuses, so its tag pauses and the queue only fills (ingest is not
measured). That gateway stops; a new one with the right token starts on the same queue file and
drains it. Every 0.2 s the bench reads the sandbox's ``accepted_total``, every 2 s the gateway's
admin ``/readyz``.
``--latency-ms`` adds that much to every sandbox answer, standing in for a TikTok that is further
away than the same machine.

``--compare [NAME@]KEY=VALUE`` (repeatable; e.g. ``PYTHONPATH=/path/to/other/tree/src``) adds a
variant (named ``other`` without ``NAME@``; occurrences with one name add to its variables): the
drainer of its rounds runs with those variables (pre-loading always runs this tree). Rounds
alternate "this" and the variants, and the medians are printed per variant with the ratio of
their events per gateway CPU second to this tree's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median
from typing import Any

import httpx

import servers

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126"
KINDS = ("page_view", "view_item", "page_view", "add_to_cart", "page_view", "view_item", "purchase")
TOKEN, SERVER_CPU, TIKTOK_CPU = "bench-delivery-token", 0, 1
INGEST_TOKEN = "bench-delivery-ingest"
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def _event(n: int, rng: random.Random) -> dict[str, Any]:
    """One ``/events`` entry (SPEC 4 keys); every 7th a purchase with user data."""
    kind = KINDS[n % len(KINDS)]
    event: dict[str, Any] = {
        "event_name": kind,
        "x-ttq-event-id": f"bench-{n}",
        "client_id": f"{rng.randint(10**8, 10**9)}.1746564151",
        "page_location": f"https://shop.example.de/p/{n % 5000}?utm_source=tiktok&ttclid=E.C.{n}",
        "x-ttq-ct-ip-address": f"203.0.113.{n % 250}",
        "x-ttq-ct-user-agent": UA,
    }
    if kind != "page_view":
        prices = [rng.randint(500, 9999) / 100 for _ in range(3 if kind == "add_to_cart" else 1)]
        items = [
            {"item_id": f"SKU-{rng.randint(1, 9999)}", "item_name": "Stan and Friends Tee",
             "item_brand": "Google", "price": price, "quantity": 1}
            for price in prices
        ]  # fmt: skip
        event |= {"currency": "EUR", "value": round(sum(prices), 2), "items": items}
    if kind == "purchase":
        event |= {"transaction_id": f"T-{n}", "x-ttq-ud-email": f"buyer.{n}@example.com"}
        event["x-ttq-ud-phone"] = f"+49151{rng.randint(10**7, 10**8 - 1)}"
    return event


def _cpu_seconds(pid: int | None) -> float:  # utime + stime of all its threads; None: CPU 0 busy
    return servers.cpu_busy(SERVER_CPU) if pid is None else servers.process_cpu(pid)


def _preload(url: str, bodies: list[bytes], parallel: int) -> float:
    """POST every body to ``url``/events, ``parallel`` at a time; returns the seconds it took."""
    began = time.perf_counter()
    headers = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    with (
        httpx.Client(base_url=url, timeout=60, headers=headers) as client,
        ThreadPoolExecutor(parallel) as pool,
    ):
        for answer in pool.map(lambda body: client.post("/events", content=body), bodies):
            if answer.status_code != 200:
                raise RuntimeError(f"/events answered {answer.status_code}: {answer.text[:300]}")
    return time.perf_counter() - began


def _drain(admin: str, tiktok: str, total: int, pids: tuple[int, int]) -> dict[str, Any]:
    """Until the sandbox has ``total`` events (or 5 s without progress): its ``accepted_total``
    every 0.2 s, the gateway's queue every 2 s (``admin``: its admin listener's address). Rates
    are over whole seconds inside the drain."""
    samples: list[tuple[float, int]] = []  # (time, accepted_total)
    depth = leased = 0
    cpu = [_cpu_seconds(pid) for pid in (*pids, None)]
    thread_cpu = servers.thread_cpu(pids[0])
    began = time.perf_counter()
    with httpx.Client(timeout=10) as client:
        while len(samples) < 25 or samples[-1][1] > samples[-25][1]:
            listing = client.get(f"{tiktok}/sandbox/events", params={"limit": 0}).json()
            samples.append((time.perf_counter(), listing["accepted_total"]))
            # Every 2 s: as often as when stats() still counted rows, to compare with those runs.
            if len(samples) % 10 == 1 or samples[-1][1] >= total:
                queue = client.get(f"{admin}/readyz").json()["queue"]
                depth, leased = max(depth, queue["depth"]), max(leased, queue["leased"])
                if samples[-1][1] >= total and queue["depth"] == 0:
                    break
            time.sleep(max(0.0, samples[-1][0] + 0.2 - time.perf_counter()))
    wall = time.perf_counter() - began
    names = servers.thread_names(pids[0], PY_SPY)
    threads = {
        names.get(tid, f"thread {tid}"): used - thread_cpu.get(tid, 0.0)
        for tid, used in servers.thread_cpu(pids[0]).items()
    }
    inside = [(at, accepted) for at, accepted in samples if 0 < accepted < total]
    rates = [
        (inside[i + 5][1] - inside[i][1]) / (inside[i + 5][0] - inside[i][0])
        for i in range(0, len(inside) - 5, 5)
    ]
    idle = [at for at, accepted in samples if accepted == 0]
    done = [at for at, accepted in samples if accepted >= total]
    span = done[0] - idle[-1] if idle and done else wall  # +- 0.2 s
    return {
        "rates": rates,
        "overall": samples[-1][1] / span,
        "per_cpu": samples[-1][1] / max(_cpu_seconds(pids[0]) - cpu[0], 1e-9),
        "accepted": samples[-1][1],
        "max_depth": depth,
        "max_leased": leased,
        "gw_cpu": (gateway_cpu := _cpu_seconds(pids[0]) - cpu[0]) / wall,
        "tiktok_cpu": (_cpu_seconds(pids[1]) - cpu[1]) / wall,
        "others": (_cpu_seconds(None) - cpu[2] - gateway_cpu) / wall,
        "rss": servers.memory(pids[0])[1],
        "end": queue,
        "threads": threads,
    }


def _table(results: list[dict[str, Any]]) -> None:
    """The medians of ``results`` (rounds of one variant) as one header and one row."""
    per_second = [rate for r in results for rate in r["rates"]]
    if not per_second:  # the queue drained within the first sample: nothing to rate
        raise SystemExit("drained in under a second: pre-load more --events to measure a rate")
    med = {
        key: median(r[key] for r in results)
        for key in results[0]
        if key not in ("rates", "threads")
    }
    print(f"{'events/s':>10}{'overall':>10}{'per CPU-s':>10}{'max depth':>10}{'max leased':>11}"
          f"{'gw CPU':>8}{'tiktok CPU':>11}{'others':>8}{'peak RSS':>10}"
          f"{'accepted':>11}")  # fmt: skip
    print(f"{median(per_second):>10,.0f}{med['overall']:>10,.0f}{med['per_cpu']:>10,.0f}"
          f"{med['max_depth']:>10,.0f}{med['max_leased']:>11,.0f}{100 * med['gw_cpu']:>7.0f}%"
          f"{100 * med['tiktok_cpu']:>10.0f}%{100 * med['others']:>7.0f}%{med['rss']:>7.0f} MiB"
          f"{sum(r['accepted'] for r in results):>11,}")  # fmt: skip
    each = " ".join(f"{r['per_cpu']:,.0f}" for r in results)
    print(f"  per CPU-s of each round: {each}")
    names = sorted({name for r in results for name in r["threads"]})
    per_event = {
        name: median(1e6 * r["threads"].get(name, 0.0) / r["accepted"] for r in results)
        for name in names
    }
    shares = ", ".join(f"{name} {us:.1f}" for name, us in per_event.items() if us >= 0.05)
    print(f"  gateway CPU per event by thread (us, median): {shares}")
    ok = median(per_second) >= 20_000
    print(f"target >= 20,000 events/s: {'met' if ok else 'MISSED'} ({len(per_second)} seconds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="pre-loaded per round")
    parser.add_argument("--rounds", type=int, default=3, help="per variant")
    parser.add_argument("--parallel", type=int, default=4, help="concurrent /events POSTs")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="the sandbox's added answer time"
    )
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the gateway")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        help="[NAME@]KEY=VALUE for the drainer of a variant (rounds alternate with 'this')",
    )
    parser.add_argument(
        "--py-spy", type=Path, help="record each drainer with py-spy into this folder (raw)"
    )
    args = parser.parse_args()
    if args.py_spy and shutil.which(PY_SPY) is None:
        parser.error("--py-spy needs py-spy (pip install py-spy; it is no dependency)")
    os.sched_setaffinity(0, {TIKTOK_CPU})
    print(f"machine: {servers.machine()}")
    rng = random.Random(20250606)
    events = [_event(n, rng) for n in range(args.events)]
    bodies = [json.dumps(events[i : i + 1000]).encode() for i in range(0, len(events), 1000)]
    print(
        f"{len(events):,} events in {len(bodies)} POSTs of {len(bodies[0]) / 1000:.0f} bytes/event"
    )
    variants: dict[str, dict[str, str]] = {"this": {}}
    for spec in args.compare:
        name, _, setting = spec.rpartition("@") if "@" in spec.split("=", 1)[0] else ("", "", spec)
        key, value = setting.split("=", 1)
        variants.setdefault(name or "other", {})[key] = value
    for name, settings in list(variants.items())[1:]:
        print(f"{name}: {settings}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    log = tmp / "servers.log"
    ports = servers.free_ports(3)
    gateway_url, admin_url, tiktok_url = (f"http://127.0.0.1:{port}" for port in ports)
    cli = [sys.executable, "-m", "tiktok_gateway"]
    tiktok = servers.start(
        [*cli, "sandbox", "--access-token-env", "TOKEN", "--latency-ms", str(args.latency_ms),
         "--port", str(ports[2])],
        {"TOKEN": TOKEN}, TIKTOK_CPU, log,
    )  # fmt: skip
    serve = [*cli, "serve", "--host", "127.0.0.1", "--admin-port", str(ports[1])]
    serve += ["--port", str(ports[0])]  # last: servers.start waits for it
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    try:
        for n in range(1, args.rounds * len(variants) + 1):
            name = list(variants)[(n - 1) % len(variants)]
            env = {"TIKTOK_PIXEL_CODE": "CBENCHDELIVERY", "TIKTOK_API_URL": tiktok_url}
            env |= {"GATEWAY_DATA_DIR": str(tmp / f"queue{n}"), "TIKTOK_ACCESS_TOKEN": "refused"}
            env |= {"GATEWAY_PROBE_INTERVAL_SECONDS": "3600"}  # paused until it stops
            env |= {"GATEWAY_INGEST_TOKEN": INGEST_TOKEN}
            env |= dict(kv.split("=", 1) for kv in args.env)
            loader = servers.start(serve, env, SERVER_CPU, log)
            seconds = _preload(gateway_url, bodies, args.parallel)
            queued = httpx.get(f"{admin_url}/readyz").json()["queue"]
            servers.stop([loader])
            httpx.delete(f"{tiktok_url}/sandbox/events")  # totals back to 0
            print(
                f"round {n} ({name}): pre-loaded {len(events) / seconds:,.0f} events/s;"
                f" queue {queued}"
            )
            drain_env = env | {"TIKTOK_ACCESS_TOKEN": TOKEN} | variants[name]
            drainer = servers.start(serve, drain_env, SERVER_CPU, log)
            spy = None
            if args.py_spy:
                args.py_spy.mkdir(parents=True, exist_ok=True)
                out = args.py_spy / f"round{n}-{name}.txt"
                spy = subprocess.Popen(
                    [PY_SPY, "record", "--format", "raw", "--rate", "250", "--threads",
                     "-o", str(out), "-p", str(drainer.pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            try:
                result = _drain(admin_url, tiktok_url, len(events), (drainer.pid, tiktok.pid))
            finally:
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(timeout=30)
                servers.stop([drainer])
            rates = " ".join(f"{rate:,.0f}" for rate in result["rates"])
            print(f"  accepted {result['accepted']:,} of {len(events):,}; events/s: {rates}")
            print(f"  queue at the end: {result.pop('end')}; per CPU-s {result['per_cpu']:,.0f}")
            results[name].append(result)
    finally:
        servers.stop([tiktok])
    shutil.rmtree(tmp, ignore_errors=True)  # kept with the servers' log when a run fails
    print(f"\ngateway on CPU {SERVER_CPU}, sandbox on {TIKTOK_CPU}")
    for name, rounds in results.items():
        print(f"\nMEDIANs of {len(rounds)} rounds, {name}")
        _table(rounds)
    this = median(r["per_cpu"] for r in results["this"])
    print(f"\nper gateway CPU second (median): this {this:,.0f} ({1e6 / this:.1f} us per event)")
    for name in list(results)[1:]:
        other = median(r["per_cpu"] for r in results[name])
        print(
            f"  {name} {other:,.0f} ({1e6 / other:.1f} us per event): this / {name}"
            f" = {this / other:.2f}"
        )


if __name__ == "__main__":
    main()
