"""Mapping throughput on one core: GA4 hit -> parse -> trigger/map -> JSON, as the server does it.

Per hit: RequestContext, ``parse_hit``, ``route`` (one TikTok tag, consent "respect") and compact
``queue_item(mapped)`` of each mapped event (what ingest queues, once per event).
One cycle of the mix, modelled on real gtag.js hits to a server container (gcs, gcd, tag_exp,
client hints, sst.*, dl with utm params), is 15 hits, 19 events: 6 page_view, 3 view_item (1 item),
2 add_to_cart (3 items), 1 purchase (5 items, e-mail and phone in ep.user_data.*, em), 2 batched
hits (page_view, scroll, user_engagement), 1 page_view with ad_storage denied. Purchases cycle
through ``--users`` buyers (default 8192, above the phone cache's 4096; 1: the cached best case).

Reading it: events/s counts every parsed event, also those dropped for consent and user_engagement
ones the default trigger skips ("not fired"). Compare MEDIANs on one machine only; "CPU" under 100%
means another process took the core: trust "events per CPU second" then. Per kind: median time per
event and per hit. ``--profile``: one 5x longer round under pyinstrument (it slows call-heavy code:
read shares, not speeds): functions by self time, then the call tree. The header says whether the
hot path runs compiled (``make install``) or as plain Python (``make pure``); pyinstrument cannot
see inside compiled functions, so profile the compiled build with ``py-spy record --native``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import os
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from statistics import median
from urllib.parse import quote

from pyinstrument import Profiler

import servers
from tiktok_gateway.event_data import RequestContext
from tiktok_gateway.sources import ga4_web
from tiktok_gateway.sources.ga4_web import parse_hit
from tiktok_gateway.tags.tiktok.envelope import queue_item
from tiktok_gateway.tags.tiktok.mapping import MappedEvent
from tiktok_gateway.tags.tiktok.router import route
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings

ORDER = (
    "page_view", "view_item", "page_view", "add_to_cart", "batch", "page_view", "view_item",
    "denied", "page_view", "add_to_cart", "purchase", "batch", "page_view", "view_item",
    "page_view",
)  # fmt: skip
KINDS = tuple(dict.fromkeys(ORDER))
USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/136.0.0.0 Safari/537.36"
)
IP = "203.0.113.57"
COOKIES = {"_ttp": "2vgirvNDbQMPl9JQw4vvX1JlGkz", "ttclid": "E.C.P.CscBq9bWgKzO7ZQx", "_ga": "x"}
TAGS = (TikTokTagSettings(pixel_code="CBENCH0PIXEL0CODE", consent="respect"),)
TAG_EXP = "101509157~103116026~103200004~103233427~103351869~103351871~104653070~104661466"
UAFVL = (
    "Chromium%3B136.0.7103.114%7CGoogle%2520Chrome%3B136.0.7103.114%7CNot.A%252FBrand%3B99.0.0.0"
)
SHOP = "https://shop.example.de"
TITLE = quote("Sommer-Kollektion \u2013 T-Shirts | Shop")
GRANTED, DENIED = "gcs=G111&gcd=13r3r3r2r5l1", "gcs=G100&gcd=13p3p3p2p5l1"  # ad_storage
Hit = tuple[str, str, bytes]  # kind, query, body


@dataclass(slots=True)
class Round:
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)  # mapped, dropped (why), not_fired
    # kind -> [seconds, events, hits]
    kinds: dict[str, list[float]] = field(default_factory=lambda: {k: [0, 0, 0] for k in KINDS})

    def total(self, column: int) -> float:
        return sum(stats[column] for stats in self.kinds.values())


def _shared(rng: random.Random, session: int, count: int, consent: str) -> str:
    page_id = 1749196701069 + session * 7919
    ttclid = f"&ttclid=E.C.P.{rng.getrandbits(64):x}" if session % 2 else ""  # half from ads
    landing = (
        f"{SHOP}/p/{session}?utm_source=tiktok&utm_medium=paid&utm_campaign=summer_{session}"
        f"&utm_content=video{rng.randint(1, 9)}{ttclid}"
    )
    return (
        f"v=2&tid=G-F9XM71K45T&gtm=45he5641v9184715813z89184708445za204zb9184708445"
        f"&_p={page_id}&{consent}&npa=0&dma_cps=syphamo&dma=1&tag_exp={TAG_EXP}"
        f"&cid={rng.randint(10**8, 10**9)}.{1746564151 + session}&ecid={rng.randint(10**9, 2**31)}"
        f"&ul=de-de&sr=1728x1117&lps=1&_fplc=0&ur=DE&uaa=arm&uab=64&uafvl={UAFVL}&uamb=0&uam="
        f"&uap=macOS&uapv=15.5.0&uaw=0&are=1&frm=0&pscdl=noapi&_eu=AAAAAAQ"
        f"&sst.rnd={rng.randint(10**8, 10**9)}.1749196701&sst.etld=google.de&sst.gcsub=region1"
        f"&sst.adr=1&sst.tft={page_id}&sst.lpc=253076363&sst.navt=n&sst.ude=1&sst.sw_exp=1"
        f"&_s={count}&sid={1749196701 + session}&sct={rng.randint(1, 40)}&seg=1"
        f"&dl={quote(landing, safe='')}&dr={quote('https://www.tiktok.com/', safe='')}"
        f"&dt={TITLE}&_tu=DA"
    )


def _hit(kind: str, rng: random.Random, session: int, count: int) -> Hit:
    tail = f"&_et={rng.randint(5, 20000)}&tfd={rng.randint(300, 400000)}&richsstsse"
    shared = _shared(rng, session, count, DENIED if kind == "denied" else GRANTED)
    if kind == "batch":
        body = "en=page_view&_ee=1\r\nen=scroll&epn.percent_scrolled=90&_et=8\r\n"
        body += f"en=user_engagement&_et={rng.randint(1000, 60000)}"
        return kind, shared + "&tfd=4880", body.encode()
    if kind in ("page_view", "denied"):
        return kind, shared + "&en=page_view" + tail, b""
    count_items = {"view_item": 1, "add_to_cart": 3, "purchase": 5}[kind]
    items = "".join(
        f"&pr{n}=idSKU_{rng.randint(10000, 99999)}~nmStan%20and%20Friends%20Tee~brGoogle~caApparel"
        f"~c2Adult~vagreen~lirelated_products~lnRelated%20Products~lp{n - 1}"
        f"~pr{rng.randint(500, 9999) / 100}~qt{rng.randint(1, 3)}"
        for n in range(1, count_items + 1)
    )
    money = f"&cu=EUR&epn.value={rng.randint(1000, 50000) / 100}"
    if kind != "purchase":
        return kind, f"{shared}&en={kind}&_c=1{money}{items}{tail}", b""
    email = f"buyer.{session}.{rng.getrandbits(32):x}@example.com"
    digest = base64.urlsafe_b64encode(hashlib.sha256(email.encode()).digest()).decode()
    user = (
        f"&ep.user_data.email_address={quote(email)}"
        f"&ep.user_data.phone_number={quote(f'+49 151 {rng.randint(10**7, 10**8 - 1)}')}"
        f"&ec_mode=c&em={quote('tv.1~em.' + digest.rstrip('='))}"
        f"&ep.transaction_id=T-{session}-{rng.getrandbits(40):x}&epn.tax=4.75&epn.shipping=4.90"
    )
    return kind, f"{shared}&en=purchase&_c=1{money}{user}{items}{tail}", b""


def process(query: str, body: bytes, tags: Sequence[TikTokTagSettings], tally: Round) -> int:
    """One hit as the server handles it, counted into ``tally``; returns its event count."""
    ctx = RequestContext(received_at=time.time(), user_agent=USER_AGENT, ip=IP, cookies=COOKIES)
    parsed = parse_hit(query, body, ctx)
    for data in parsed.events:
        outcomes = route(data, tags)
        tally.outcomes["not_fired"] += not outcomes
        for outcome in outcomes:
            if isinstance(outcome, MappedEvent):
                wire = queue_item(outcome)[1]
                tally.outcomes["bytes"] += len(wire)
                tally.outcomes["mapped"] += 1
            else:
                tally.outcomes[f"dropped ({outcome.reason})"] += 1
    return len(parsed.events)


def cycles(users: int) -> Iterator[list[Hit]]:
    """The mix, cycle after cycle: 256 sessions' hits, each cycle with the next buyer's purchase."""
    rng = random.Random(20250606)
    at = ORDER.index("purchase")
    sessions = [[_hit(k, rng, s, n) for n, k in enumerate(ORDER, 1)] for s in range(256)]
    purchases = [_hit("purchase", rng, u, at + 1) for u in range(users)]
    for n in itertools.count():
        hits = list(sessions[n % len(sessions)])
        hits[at] = purchases[n % users]
        yield hits


def run(mix: Iterator[list[Hit]], seconds: float) -> Round:
    """Whole cycles of the mix for about ``seconds``, each hit timed on its own."""
    tally = Round()
    clock = time.perf_counter
    start, cpu = clock(), time.process_time()
    while tally.seconds < seconds:
        for kind, query, body in next(mix):
            began = clock()
            events = process(query, body, TAGS, tally)
            stats = tally.kinds[kind]
            stats[:] = [stats[0] + clock() - began, stats[1] + events, stats[2] + 1]
        tally.seconds = clock() - start
    tally.cpu_seconds = time.process_time() - cpu
    return tally


def profile(mix: Iterator[list[Hit]], seconds: float, top: int = 25) -> None:
    """One long round under pyinstrument: functions by self time, then the call tree (>= 1%)."""
    profiler = Profiler()
    profiler.start()
    tally = run(mix, seconds)
    root = profiler.stop().root_frame()
    assert root is not None
    print(f"profiled: {tally.total(1) / tally.seconds:,.0f} events/s (slowed by the profiler)")
    selves: dict[str, float] = {}
    stack = [root]
    while stack:
        frame = stack.pop()
        stack.extend(frame.children)
        if not frame.is_synthetic:
            key = f"{frame.function}  {frame.file_path_short}:{frame.line_no}"
            selves[key] = selves.get(key, 0.0) + frame.total_self_time
    print(f"\ntop {top} functions by self time (% of the round):")
    for key, spent in sorted(selves.items(), key=lambda item: -item[1])[:top]:
        print(f"  {100 * spent / root.time:5.1f}%  {key}")
    print("\ncall tree (% of the round, nodes >= 1%):")
    options = {"filter_threshold": 0.01}
    print(profiler.output_text(time="percent_of_total", processor_options=options).strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one round")
    parser.add_argument("--users", type=int, default=8192, help="distinct purchase buyers")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: last)")
    parser.add_argument("--profile", action="store_true", help="profile one 5x longer round")
    args = parser.parse_args()
    cpu = max(os.sched_getaffinity(0)) if args.cpu is None else args.cpu
    os.sched_setaffinity(0, {cpu})  # Linux
    print(f"machine: {servers.machine()}")
    compiled = ga4_web.__file__.endswith(".so")
    print(f"hot path: {'compiled (mypyc)' if compiled else 'plain Python'}")
    print(f"pinned to CPU {cpu}; {len(ORDER)} hits per cycle; --users {args.users}")
    mix = cycles(max(1, args.users))
    run(mix, max(0.5, args.seconds / 2))  # warm-up
    if args.profile:
        profile(mix, args.seconds * 5)
        return
    rounds = [run(mix, args.seconds) for _ in range(args.rounds)]
    for n, r in enumerate(rounds, 1):
        print(
            f"round {n}: {r.total(1) / r.seconds:8,.0f} events/s {r.total(2) / r.seconds:7,.0f} "
            f"hits/s  ({r.total(1):.0f} events in {r.seconds:.2f} s, "
            f"CPU {100 * r.cpu_seconds / r.seconds:.0f}%)"
        )
    print(
        f"MEDIAN: {median(r.total(1) / r.seconds for r in rounds):,.0f} events/s, "
        f"{median(r.total(2) / r.seconds for r in rounds):,.0f} hits/s over {len(rounds)} rounds "
        f"({median(r.total(1) / r.cpu_seconds for r in rounds):,.0f} events per CPU second)"
    )
    out = sum((r.outcomes for r in rounds), Counter[str]())
    dropped = "".join(f"{n} {k} + " for k, n in sorted(out.items()) if k.startswith("dropped"))
    print(
        f"outcomes: {sum(r.total(1) for r in rounds):.0f} events = {out['mapped']} mapped + "
        f"{dropped}{out['not_fired']} not fired (trigger); "
        f"{out['bytes'] / max(1, out['mapped']):.0f} JSON bytes per mapped event"
    )
    print("per kind:        µs/event   µs/hit  events/hit")
    for kind in KINDS:
        event_us = median(1e6 * r.kinds[kind][0] / r.kinds[kind][1] for r in rounds)
        hit_us = median(1e6 * r.kinds[kind][0] / r.kinds[kind][2] for r in rounds)
        print(f"  {kind:<12} {event_us:9.1f} {hit_us:8.1f}  {hit_us / event_us:10.0f}")


if __name__ == "__main__":
    main()
