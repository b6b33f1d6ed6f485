"""Ingest throughput and latency of ``/g/collect``: the gateway against a bare 204 app.

Servers, one process each on CPU 0, uvicorn with uvloop + httptools, no access log: (a) the
gateway (durable SQLite queue: WAL, synchronous=FULL, group commit; it delivers to the standalone
sandbox, on CPU 1, as TikTok); (b) a bare Starlette app that reads the body and answers 204. Load
comes from another process on CPU 1: ``wrk`` (closed loop; a Lua script replays the mix; needs
``apt-get install wrk``) and this file's asyncio raw-socket client (open loop at ``--rate``; latency
counts from each request's scheduled time, so a stalled server cannot hide). Rounds alternate
gateway and bare. The mix, modelled on tests/fixtures/ga4/real-hits.txt, per 16 hits: 7 page_view,
3 view_item, 2 add_to_cart (3 items), 1 purchase (5 items, e-mail, phone), 3 batched CRLF POSTs.

Sustained throughput (issue 13): after each closed-loop round of a gateway the benchmark waits
until the gateway's queue has drained (every TikTok event and GA4 forward delivered to the
sandbox, read from its admin ``/readyz``), and counts the round's 2xx hits over the time from the
first hit until then, and over the gateway's CPU seconds in that time: work deferred past the
answer is paid for. That rate over the bare app's is the target ratio (>= 0.35).

Reading it: MEDIANs over the rounds. "srv CPU": the server's CPU share (all threads); "others":
what other processes took of CPU 0 meanwhile (noise; trust "hits/CPU-s" and its ratio then).
"gen CPU" well under 100% and a small send lag: the generator is not the limit. RSS: VmRSS (VmHWM).

``--stages`` adds, to the closed loop only, the apps of ``bench/stages.py``: the gateway's path cut
after parsing, after mapping and after the queue's commit, each against the same bare app.
``--compare KEY=VALUE`` adds a second gateway with other settings to every round, for an A/B that
this machine's drift cannot fake (whole runs one after the other can differ by 2x here). Both
deliver to the one sandbox, so each gateway's last second of delivery falls into the other's round.
``--ga4`` is the A/B of GA4 forwarding: the gateway with it off, gateway-b with it on (every hit
forwarded to the sandbox's Google side, on CPU 1), and the CPU per hit of one over the other.
Gateways forward to the sandbox unless told otherwise (``GATEWAY_GA4_FORWARD=false``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from urllib.parse import quote

import httpx
import uvloop

import servers
import stages

KINDS = {"P": "page_view", "V": "view_item", "C": "add_to_cart", "$": "purchase", "B": "batch"}
ORDER = [KINDS[letter] for letter in "PVBPCPVBPPC$PBVP"]  # one cycle of 16 hits
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko)"
UAFVL = "Chromium%3B136.0.7103.114%7CGoogle%2520Chrome%3B136.0.7103.114%7CNot.A%252FBrand%3B99"
SERVER_CPU, LOAD_CPU = 0, 1
COMPARED = "gateway-b"  # the second gateway of --compare
Round = dict[str, float]
SUSTAINED = ("sustained", "sustained_per_cpu")  # a gateway's closed-loop rounds have these too


def _hit(kind: str, rng: random.Random, session: int) -> bytes:  # a raw HTTP/1.1 request
    click = f"&ttclid=E.C.P.{rng.getrandbits(64):x}" if session % 2 else ""
    page = f"https://shop.example.de/p/{session}?utm_source=tiktok&utm_medium=paid{click}"
    query = (
        "v=2&tid=G-F9XM71K45T&gtm=45he5641v9184715813z89184708445za204zb9184708445"
        f"&_p={1749196701069 + session}&gcs=G111&gcd=13r3r3r2r5l1&npa=0&dma_cps=syphamo&dma=1"
        "&tag_exp=101509157~103116026~103200004~103233427~103351869~104653070~104661466"
        f"&cid={rng.randint(10**8, 10**9)}.1746564151&ecid={rng.randint(10**9, 2**31)}&ul=de-de"
        f"&sr=1728x1117&lps=1&_fplc=0&ur=DE&uaa=arm&uab=64&uafvl={UAFVL}&uamb=0&uam=&uap=macOS"
        "&uapv=15.5.0&uaw=0&are=1&frm=0&pscdl=noapi&_eu=AAAAAAQ&sst.etld=google.de&sst.adr=1"
        f"&sst.rnd={rng.randint(10**8, 10**9)}.1749196701&sst.navt=n&sst.ude=1&_s={session % 9}"
        f"&sid={1749196701 + session}&sct=3&seg=1&dl={quote(page, safe='')}"
        "&dr=https%3A%2F%2Fwww.tiktok.com%2F&dt=Sommer-Kollektion%20%E2%80%93%20Shop"
    )
    body = b""
    if kind == "batch":
        body = b"en=page_view&_ee=1\r\nen=scroll&epn.percent_scrolled=90&_et=8\r\n"
        body += f"en=user_engagement&_et={rng.randint(1000, 60000)}".encode()
    elif kind == "page_view":
        query += f"&en=page_view&_et={rng.randint(5, 20000)}&tfd={rng.randint(300, 9000)}"
    else:
        count = {"view_item": 1, "add_to_cart": 3, "purchase": 5}[kind]
        query += f"&en={kind}&_c=1&cu=EUR&epn.value={rng.randint(1000, 50000) / 100}" + "".join(
            f"&pr{n}=idSKU_{rng.randint(10000, 99999)}~nmStan%20and%20Friends%20Tee~brGoogle"
            f"~caApparel~vagreen~lnRelated%20Products~lp{n}~pr{rng.randint(500, 9999) / 100}~qt1"
            for n in range(1, count + 1)
        )
    if kind == "purchase":
        query += (
            f"&ep.transaction_id=T-{session}-{rng.getrandbits(40):x}&epn.tax=4.75&ec_mode=c"
            f"&ep.user_data.email_address=buyer.{session}.{rng.getrandbits(32):x}%40example.com"
            f"&ep.user_data.phone_number=%2B49151{rng.randint(10**7, 10**8 - 1)}"
            "&em=tv.1~em.4x8WFpkYUiISoDaC9zQnW4M-xxMNPal-E3vq2kbfQCI~co0.NO"  # fixture hit 10
        )
    head = (
        f"{'POST' if body else 'GET'} /g/collect?{query} HTTP/1.1\r\nHost: sst.shop.example.de\r\n"
        f"User-Agent: {UA} Chrome/136.0.0.0 Safari/537.36\r\nAccept: */*\r\n"
        "Origin: https://shop.example.de\r\nReferer: https://shop.example.de/\r\n"
        f"Cookie: _ga=GA1.1.5843359.1746564151; _ttp=2vgirvNDbQMPl9JQw4vvX1JlGkz{session % 97}\r\n"
    )
    if body:
        head += f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


LUA = """local f, reqs, i = assert(io.open("%s", "rb")), {}, 0
for r in string.gmatch(f:read("*a"), "([^%%z]*)%%z") do reqs[#reqs + 1] = r end
request = function() i = i %% #reqs + 1; return reqs[i] end
done = function(s, lat, r) local e = s.errors; io.write("WRK ", s.requests, " ", s.duration, " ",
  e.status + e.connect + e.read + e.write + e.timeout, " ", lat:percentile(50), " ",
  lat:percentile(99), "\\n") end
"""


async def _open_loop(port: int, reqs: list[bytes], rate: float, secs: float, conns: int) -> Round:
    """``rate``/s over ``conns`` connections; ``lag``: how late the client itself sent them."""
    todo: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    latencies: list[float] = []
    lags: list[float] = []
    bad: list[bytes] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (job := await todo.get()) is not None:
            writer.write(job[1])
            head = await reader.readuntil(b"\r\n\r\n")
            bad.extend([] if head[9:10] == b"2" else [head[9:12]])
            for line in head.lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    await reader.readexactly(int(line[15:]))
            latencies.append(time.perf_counter() - job[0])
        writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(conns)]
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter() + 0.1
    for n in range(int(rate * secs)):
        due = start + n / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        lags.append(time.perf_counter() - due)
        todo.put_nowait((due, reqs[n % len(reqs)]))
    for _ in workers:
        todo.put_nowait(None)
    async with asyncio.timeout(secs + 30):
        await asyncio.gather(*workers)
    wall, used = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()
    p50, p99 = (1000 * latencies[int(len(latencies) * q)] for q in (0.5, 0.99))
    result = {"rate": len(latencies) / wall, "p50": p50, "p99": p99, "bad": len(bad)}
    result["lag99"] = 1000 * sorted(lags)[int(len(lags) * 0.99)]
    return result | {"gen_cpu": (sum(used[:2]) - sum(cpu[:2])) / wall}


def _cpu_seconds(pid: int) -> tuple[float, float]:  # the process (all threads), SERVER_CPU busy
    return servers.process_cpu(pid), servers.cpu_busy(SERVER_CPU)


def _memory(pid: int) -> str:
    rss, peak = servers.memory(pid)
    return f"{rss:.0f} MiB (peak {peak:.0f})"


def _drained(admin_port: int, timeout: float = 300.0) -> None:
    """Wait until the gateway's queue holds nothing undelivered (its admin ``/readyz``)."""
    url, deadline = f"http://127.0.0.1:{admin_port}/readyz", time.monotonic() + timeout
    while httpx.get(url, timeout=5).json()["queue"]["depth"] > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the queue did not drain within {timeout} s")
        time.sleep(0.02)


def _round(
    closed: bool,
    port: int,
    pid: int,
    seconds: float,
    args: argparse.Namespace,
    admin_port: int | None = None,
) -> Round:
    """One load round from a generator process on LOAD_CPU, with the server's CPU share.

    ``admin_port`` (a gateway's): the round also waits until everything it queued is delivered
    and reports ``sustained``, hits per second from the first hit until then, and
    ``sustained_per_cpu``, per CPU second of the gateway over that time."""
    if closed:
        cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{max(1, round(seconds))}s"]
        cmd += ["--timeout", "5s", "-s", str(args.lua), f"http://127.0.0.1:{port}/"]
    else:
        cmd = [sys.executable, __file__, "_gen", str(port), str(args.reqfile), str(args.rate)]
        cmd += [str(seconds), str(args.connections)]
    (cpu, busy), began = _cpu_seconds(pid), time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 60, check=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {LOAD_CPU}),
    ).stdout  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    (cpu_after, busy_after), wall = _cpu_seconds(pid), time.perf_counter() - began
    drained: dict[str, float] = {}
    if admin_port is not None:
        _drained(admin_port)
        span = time.perf_counter() - began
        drained = {"sustained": span, "sustained_cpu": _cpu_seconds(pid)[0] - cpu}
    server, others = (cpu_after - cpu) / wall, (busy_after - busy - cpu_after + cpu) / wall
    if closed:
        count, micros, bad, p50, p99 = map(int, out.split("WRK ", 1)[1].split())
        result = {"rate": count / micros * 1e6, "p50": p50 / 1000, "p99": p99 / 1000, "bad": bad}
        result["gen_cpu"] = (sum(after[:2]) - sum(before[:2])) / micros * 1e6
    else:
        result = json.loads(out)
    result |= {"srv_cpu": server, "others": others}
    if drained and closed:  # the hits answered 2xx, all delivered by the end of the span
        hits = count - bad
        result |= {
            "sustained": hits / drained["sustained"],
            "sustained_per_cpu": hits / max(drained["sustained_cpu"], 1e-9),
        }
    return result | {"per_cpu": result["rate"] / max(server, 1e-9)}


def _ratio(
    runs: dict[tuple[bool, str], list[Round]], name: str, base: str = "bare", closed: bool = True
) -> tuple[float, float]:
    """``name``'s median hits/s and hits per CPU second, each over ``base``'s (same loop)."""
    a, b = runs[(closed, name)], runs[(closed, base)]
    rate, per_cpu = (median(r[k] for r in a) / median(r[k] for r in b) for k in ("rate", "per_cpu"))
    return rate, per_cpu


def _report(
    runs: dict[tuple[bool, str], list[Round]], memory: dict[str, str], rate: str, ga4: bool
) -> None:
    print(f"\nMEDIANs; servers on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}")
    print(f"{'run':<24}{'hits/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'srv CPU':>8}{'others':>7}"
          f"{'hits/CPU-s':>11}{'gen CPU':>8}{'non2xx':>7}  server RSS")  # fmt: skip
    for (closed, name), rounds in runs.items():
        med = {key: median(r[key] for r in rounds) for key in rounds[0]}
        label = f"{'closed, wrk' if closed else f'{rate}/s, asyncio'} {name}"
        print(f"{label:<24}{med['rate']:>8,.0f}{med['p50']:>8.2f}{med['p99']:>8.2f}"
              f"{100 * med['srv_cpu']:>7.0f}%{100 * med['others']:>6.0f}%{med['per_cpu']:>11,.0f}"
              f"{100 * med['gen_cpu']:>7.0f}%"
              f"{sum(r['bad'] for r in rounds):>7.0f}  {memory[name]}")  # fmt: skip
    if (True, "gateway") in runs:
        ratios = zip(("hits/s", "hits per server CPU second"), _ratio(runs, "gateway"), strict=True)
        for what, ratio in ratios:
            print(f"answered / bare, {what}: {ratio:.2f}")
        bare = runs[(True, "bare")]
        for name in ("gateway", COMPARED):
            if (True, name) not in runs:
                continue
            rounds = runs[(True, name)]
            speed, per_cpu = (median(r[k] for r in rounds) for k in SUSTAINED)
            ratio = speed / median(r["rate"] for r in bare)
            thrift = per_cpu / median(r["per_cpu"] for r in bare)
            print(f"{name} sustained (2xx hits / time until all delivered): {speed:,.0f} hits/s,"
                  f" {per_cpu:,.0f} per CPU second; / bare: {ratio:.2f} and {thrift:.2f}"
                  f" [target >= 0.35: {ratio >= 0.35}]")  # fmt: skip
        shares = [(name, _ratio(runs, name)) for name in stages.STAGES if (True, name) in runs]
        if shares:
            print("stage / bare, hits/s (hits per CPU second): " + ", ".join(
                f"{name} {rate:.2f} ({per_cpu:.2f})" for name, (rate, per_cpu) in shares
            ))  # fmt: skip
    if (False, COMPARED) in runs:
        speed = _ratio(runs, COMPARED, "gateway")[0] if (True, COMPARED) in runs else float("nan")
        thrift = _ratio(runs, COMPARED, "gateway", closed=False)[1]
        print(f"{COMPARED} / gateway: hits/s (closed loop) {speed:.2f}, "
              f"hits per CPU second at {rate}/s {thrift:.2f}")  # fmt: skip
    p99 = median(r["p99"] for r in runs[(False, "gateway")])
    lag = max(r["lag99"] for name in ("gateway", "bare") for r in runs[(False, name)])
    print(f"gateway p99 at {rate} hits/s: {p99:.2f} ms [target <= 10 ms: {p99 <= 10}]"
          f"; generator send lag p99 <= {lag:.2f} ms")  # fmt: skip
    if ga4 and (False, COMPARED) in runs:
        for closed in (False, True):
            if (closed, COMPARED) in runs:
                cost = 1 / _ratio(runs, COMPARED, "gateway", closed=closed)[1]
                loop = "closed loop" if closed else f"{rate}/s"
                print(f"CPU per hit, GA4 forwarding on / off ({loop}): {cost:.2f}"
                      f" [target <= 1.5: {cost <= 1.5}]")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="closed-loop round length")
    parser.add_argument("--connections", type=int, default=64, help="closed loop (wrk)")
    parser.add_argument("--rate", type=float, default=1000.0, help="open loop, hits/s")
    parser.add_argument("--open-seconds", type=float, default=10.0, help="open-loop round")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the gateway")
    parser.add_argument(
        "--stages", action="store_true", help="also the stage apps of bench/stages.py (closed loop)"
    )
    parser.add_argument(
        "--ga4",
        action="store_true",
        help=f"A/B of GA4 forwarding: the gateway without, {COMPARED} with (as --compare)",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"also a second gateway ({COMPARED}) with these settings on top of --env, in every "
        "round: an A/B of a setting (PYTHONPATH=DIR: of another source tree)",
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {LOAD_CPU})
    print(f"machine: {servers.machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    args.reqfile, args.lua, log = tmp / "requests.bin", tmp / "mix.lua", tmp / "servers.log"
    reqs = [_hit(k, rng, s) for rng in [random.Random(20250606)] for s in range(512) for k in ORDER]
    args.reqfile.write_bytes(b"\0".join(reqs) + b"\0")
    args.lua.write_text(LUA % args.reqfile)
    cli, ports = [sys.executable, "-m", "tiktok_gateway"], servers.free_ports(9)
    env = {"TIKTOK_PIXEL_CODE": "CBENCHINGEST", "TIKTOK_ACCESS_TOKEN": "bench-token"}
    env |= {"TIKTOK_API_URL": f"http://127.0.0.1:{ports[2]}", "GATEWAY_DATA_DIR": str(tmp / "q")}
    env |= {"GATEWAY_GA4_ENDPOINT": f"http://127.0.0.1:{ports[2]}"}  # the sandbox's Google side
    if args.ga4:
        env["GATEWAY_GA4_FORWARD"] = "false"
        args.compare.append("GATEWAY_GA4_FORWARD=true")
    env |= dict(kv.split("=", 1) for kv in args.env)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    targets = {"gateway": ports[0], "bare": ports[1]}  # then gateway-b and the stages
    # Admin listeners on ports of their own: the default, the public port + 1, may be taken.
    admins = {"gateway": ports[7], COMPARED: ports[8]}
    runs: dict[tuple[bool, str], list[Round]] = {}
    modes = [True, False] if shutil.which("wrk") else [False]  # closed loop, open loop
    print("" if True in modes else "wrk is not installed: no closed loop (apt-get install wrk)")
    try:
        sandbox = [*cli, "sandbox", "--access-token-env", "TOKEN", "--port", str(ports[2])]
        procs["tiktok"] = servers.start(sandbox, {"TOKEN": "bench-token"}, LOAD_CPU, log)
        gateway = [*cli, "serve", "--host", "127.0.0.1", "--port", str(ports[0])]
        admin = {"GATEWAY_ADMIN_PORT": str(admins["gateway"])}
        procs["gateway"] = servers.start(gateway, env | admin, SERVER_CPU, log)
        if args.compare:
            other = env | {"GATEWAY_DATA_DIR": str(tmp / "q-b")}
            other["GATEWAY_ADMIN_PORT"] = str(admins[COMPARED])
            other |= dict(kv.split("=", 1) for kv in args.compare)
            procs[COMPARED] = servers.start([*gateway[:-1], str(ports[6])], other, SERVER_CPU, log)
            targets[COMPARED] = ports[6]
            print(f"{COMPARED}: the gateway with {args.compare}")
        bare = ["uvicorn", "--app-dir", str(Path(__file__).parent), "bare:BARE", "--loop"]
        bare += ["uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
        bare += ["--ws", "none", "--port", str(ports[1])]  # the gateway's settings
        procs["bare"] = servers.start([sys.executable, "-m", *bare], {}, SERVER_CPU, log)
        for n, stage in enumerate(stages.STAGES if args.stages else ()):
            app = [*bare[:3], f"stages:{stage.upper()}", *bare[4:-1], str(ports[3 + n])]
            queue = {"GATEWAY_DATA_DIR": str(tmp / f"q-{stage}")}
            procs[stage] = servers.start([sys.executable, "-m", *app], env | queue, SERVER_CPU, log)
            targets[stage] = ports[3 + n]
        print(f"{len(reqs)} requests, 22 events per 16 hits; env: {env}")
        for closed in modes:
            for n in range(args.rounds + 1):  # round 0 (1 s) warms up and is not counted
                for name, port in targets.items():
                    if not closed and name in stages.STAGES:  # the stages: throughput only
                        continue
                    seconds = (args.seconds if closed else args.open_seconds) if n else 1.0
                    delivers = name in ("gateway", COMPARED)
                    drain = admins[name] if closed and delivers else None
                    result = _round(closed, port, procs[name].pid, seconds, args, drain)
                    if delivers and not closed:  # its deliveries must not run into the next round
                        _drained(admins[name])
                    if n:
                        runs.setdefault((closed, name), []).append(result)
                        shown = " ".join(f"{k}={v:,.2f}" for k, v in result.items())
                        print(f"  {['open', 'closed'][closed]} {n} {name}: {shown}", flush=True)
        memory = {name: _memory(procs[name].pid) for name in targets}
        for name in ("gateway", COMPARED):
            if name in targets:
                url = f"http://127.0.0.1:{admins[name]}/readyz"
                print(f"{name} queue at the end: {httpx.get(url, timeout=5).json()['queue']}")
    finally:
        servers.stop(procs.values(), timeout=15)
    shutil.rmtree(tmp, ignore_errors=True)  # kept with the servers' log when a run fails
    _report(runs, memory, f"{args.rate:,.0f}", args.ga4)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_gen"]:
        port, reqfile, rate, seconds, conns = sys.argv[2:7]
        uvloop.install()
        reqs = Path(reqfile).read_bytes().split(b"\0")[:-1]
        result = asyncio.run(_open_loop(int(port), reqs, float(rate), float(seconds), int(conns)))
        print(json.dumps(result))
    else:
        main()
