"""CPU per hit of ``serve --workers 1`` against ``--workers 2``, in the same run.

Two gateways run side by side (each its own SQLite queue, both delivering to one standalone
sandbox as TikTok and Google), unpinned: the workers of the second may use both cores. Rounds
alternate between them. Each open-loop round sends ``--rate`` hits/s for ``--open-seconds`` (the
mix and the open-loop generator of ``bench/ingest.py``, run as its ``_gen`` process: latency from
each request's scheduled send time), then waits until the gateway's queue is empty: the CPU of
the whole gateway (the supervisor, every worker, multiprocessing's resource tracker: every
process under the one started, from /proc) over that time, divided by the hits answered 2xx, is
its CPU per hit, delivery included. Closed-loop rounds (``wrk``, 64 connections, the same mix)
give each gateway's hits/s. MEDIANs over the rounds; the target: 2 workers <= 1.15x the CPU per
hit of 1 worker.

    .venv/bin/python bench/workers.py [--rounds 5] [--rate 1000] [--open-seconds 10] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import httpx

import ingest
import servers

Round = dict[str, float]
NAMES = ("workers-1", "workers-2")


def _tree(pid: int) -> list[int]:
    """``pid`` and every process under it."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            todo += map(int, Path(f"/proc/{current}/task/{current}/children").read_text().split())
        except FileNotFoundError:
            continue
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) the processes under ``pid`` (itself included) have used."""
    total = 0.0
    for each in _tree(pid):
        try:
            total += servers.process_cpu(each)
        except FileNotFoundError:  # exited meanwhile
            continue
    return total


def tree_rss(pid: int) -> float:
    """Resident MiB of the processes under ``pid`` (shared pages counted in each)."""
    total = 0.0
    for each in _tree(pid):
        try:
            total += servers.memory(each)[0]
        except (FileNotFoundError, ValueError):
            continue
    return total


def _depth(admin_port: int) -> int:
    ready = httpx.get(f"http://127.0.0.1:{admin_port}/readyz", timeout=5).json()
    return int(ready["queue"]["depth"])


def _drain(admin_port: int, timeout: float = 60.0) -> float:
    """Wait until the gateway's queue is empty; the seconds it took."""
    began = time.perf_counter()
    while _depth(admin_port) and time.perf_counter() - began < timeout:
        time.sleep(0.1)
    return time.perf_counter() - began


def _open_round(port: int, admin: int, pid: int, args: argparse.Namespace, seconds: float) -> Round:
    cmd = [sys.executable, ingest.__file__, "_gen", str(port), str(args.reqfile), str(args.rate)]
    cmd += [str(seconds), str(args.connections)]
    cpu, began = tree_cpu(pid), time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    drain = _drain(admin)
    used, wall = tree_cpu(pid) - cpu, time.perf_counter() - began
    result: Round = json.loads(out.stdout)
    hits = int(args.rate * seconds) - result["bad"]  # the generator sends exactly these
    return result | {
        "cpu_ms_per_hit": 1000 * used / max(hits, 1),
        "cpu": used / wall,
        "drain": drain,
    }


def _closed_round(port: int, args: argparse.Namespace) -> Round:
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{max(1, round(args.seconds))}s"]
    cmd += ["--timeout", "5s", "-s", str(args.lua), f"http://127.0.0.1:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 60, check=True)
    count, micros, bad, p50, p99 = map(int, out.stdout.split("WRK ", 1)[1].split())
    return {"rate": count / micros * 1e6, "p50": p50 / 1000, "p99": p99 / 1000, "bad": bad}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=1000.0, help="open loop, hits/s")
    parser.add_argument("--open-seconds", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=5.0, help="closed-loop round (wrk)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--data",
        type=Path,
        help="folder for the two queues (default: the temporary folder; /dev/shm takes the"
        " disk's fsync out of the comparison)",
    )
    args = parser.parse_args()
    print(f"machine: {servers.machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    args.reqfile, args.lua, log = tmp / "requests.bin", tmp / "mix.lua", tmp / "servers.log"
    rng = random.Random(20250606)
    reqs = [ingest._hit(kind, rng, session) for session in range(512) for kind in ingest.ORDER]
    args.reqfile.write_bytes(b"\0".join(reqs) + b"\0")
    args.lua.write_text(ingest.LUA % args.reqfile)
    ports = servers.free_ports(5)
    sandbox_url = f"http://127.0.0.1:{ports[4]}"
    env = {"TIKTOK_PIXEL_CODE": "CBENCHWORKERS", "TIKTOK_ACCESS_TOKEN": "bench-token"}
    env |= {"TIKTOK_API_URL": sandbox_url, "GATEWAY_GA4_ENDPOINT": sandbox_url}
    cli = [sys.executable, "-m", "tiktok_gateway"]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    gateways = {name: (ports[2 * n], ports[2 * n + 1]) for n, name in enumerate(NAMES)}
    runs: dict[tuple[bool, str], list[Round]] = {}
    cpus = os.sched_getaffinity(0)
    modes = [False, True] if shutil.which("wrk") else [False]
    try:
        sandbox = [*cli, "sandbox", "--access-token-env", "TOKEN", "--port", str(ports[4])]
        procs["sandbox"] = _start(sandbox, {"TOKEN": "bench-token"}, log)
        for n, (name, (port, admin)) in enumerate(gateways.items()):
            data = (args.data or tmp) / f"bench-workers-{name}"
            shutil.rmtree(data, ignore_errors=True)
            own = env | {"GATEWAY_DATA_DIR": str(data), "GATEWAY_ADMIN_PORT": str(admin)}
            serve = [*cli, "serve", "--workers", str(n + 1), "--port", str(port)]
            procs[name] = _start(serve, own, log)
        # The workers listen once the supervisor's children are up: wait for the hit port.
        for name, (_, admin) in gateways.items():
            _wait(f"http://127.0.0.1:{admin}/readyz", procs[name])
        print(f"gateways: {', '.join(f'{k} (pid {procs[k].pid})' for k in NAMES)}; CPUs {cpus}")
        for closed in modes:
            for n in range(args.rounds + 1):  # round 0 (1 s) warms up and is not counted
                for name, (port, admin) in gateways.items():
                    if closed:
                        result = _closed_round(port, args)
                    else:
                        seconds = args.open_seconds if n else 1.0
                        result = _open_round(port, admin, procs[name].pid, args, seconds)
                    if n:
                        runs.setdefault((closed, name), []).append(result)
                        shown = " ".join(f"{k}={v:,.3f}" for k, v in result.items())
                        print(f"  {['open', 'closed'][closed]} {n} {name}: {shown}", flush=True)
        memory = {name: tree_rss(procs[name].pid) for name in NAMES}
    finally:
        servers.stop(procs.values(), timeout=20)
    shutil.rmtree(tmp, ignore_errors=True)
    for name in NAMES:
        shutil.rmtree((args.data or tmp) / f"bench-workers-{name}", ignore_errors=True)
    _report(runs, memory, args)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TIKTOK_", "GATEWAY_"))}
    with log.open("ab") as out:
        return subprocess.Popen(args, env={**clean, **env}, stdout=out, stderr=out)


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(url)


def _report(
    runs: dict[tuple[bool, str], list[Round]], memory: dict[str, float], args: argparse.Namespace
) -> None:
    print(f"\nMEDIANs over {args.rounds} rounds")
    print(f"{'run':<30}{'hits/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'CPU':>7}{'ms CPU/hit':>11}"
          f"{'drain s':>8}{'non2xx':>7}  RSS (all processes)")  # fmt: skip
    for (closed, name), rounds in runs.items():
        med = {key: median(r[key] for r in rounds) for key in rounds[0]}
        label = f"{'closed, wrk' if closed else f'{args.rate:,.0f}/s open'} {name}"
        cpu = f"{100 * med['cpu']:>6.0f}%" if "cpu" in med else f"{'':>7}"
        per_hit = f"{med['cpu_ms_per_hit']:>11.3f}" if "cpu_ms_per_hit" in med else f"{'':>11}"
        drain = f"{med['drain']:>8.2f}" if "drain" in med else f"{'':>8}"
        print(f"{label:<30}{med['rate']:>9,.0f}{med['p50']:>8.2f}{med['p99']:>8.2f}{cpu}{per_hit}"
              f"{drain}{sum(r['bad'] for r in rounds):>7.0f}  {memory[name]:.0f} MiB")  # fmt: skip
    one, two = (median(r["cpu_ms_per_hit"] for r in runs[(False, n)]) for n in NAMES)
    ratio = two / one
    print(f"CPU per hit, 2 workers / 1 worker at {args.rate:,.0f} hits/s: {ratio:.2f}"
          f" [target <= 1.15: {ratio <= 1.15}]")  # fmt: skip
    if (True, NAMES[0]) in runs:
        a, b = (median(r["rate"] for r in runs[(True, n)]) for n in NAMES)
        print(f"closed-loop hits/s, 2 workers / 1 worker: {b / a:.2f}")


if __name__ == "__main__":
    main()
