"""What the queue's admission check (queue/admission.py) costs a hit.

Per hit the ingest path calls ``Admission.refusal()`` (a flag and two comparisons) and puts
through ``Admission.put`` (a try around ``queue.put`` and the items' payload bytes summed). Timed
here against a queue whose ``put`` does nothing, so the numbers are the check's own: ns per hit
of the bare put, of the put through admission, of ``refusal()``, and the added cost, with a hit of
2 items (a TikTok event and its GA4 forward) and of 20. For scale, the last line is a whole
``/g/collect`` hit through the app in process (memory queue, no delivery). Medians of 7 rounds.

    .venv/bin/python bench/admission.py
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from statistics import median

import httpx

from tiktok_gateway.app import create_app
from tiktok_gateway.config import load_config
from tiktok_gateway.queue.admission import Admission
from tiktok_gateway.queue.base import NewItem
from tiktok_gateway.queue.memory import MemoryQueue

ROUNDS = 7
CALLS = 100_000
HIT = "v=2&tid=G-1&cid=1.2&_p=7&_s=1&en=page_view&dl=https%3A%2F%2Fshop.example.com%2F"


class NullQueue(MemoryQueue):
    """Takes every put and keeps nothing: only the caller's own cost is timed."""

    async def put(self, items: Sequence[NewItem]) -> None:
        return None


async def _per_call(put: object, items: list[NewItem]) -> float:
    call = put  # a bound coroutine function
    start = time.perf_counter()
    for _ in range(CALLS):
        await call(items)  # type: ignore[operator]
    return (time.perf_counter() - start) / CALLS * 1e9


def _refusal_ns(admission: Admission) -> float:
    check = admission.refusal
    start = time.perf_counter()
    for _ in range(CALLS):
        check()
    return (time.perf_counter() - start) / CALLS * 1e9


async def _hit_ns() -> float:
    config = load_config(None, {"TIKTOK_PIXEL_CODE": "CBENCH", "GATEWAY_GA4_FORWARD": "false"})
    app = create_app(config, queue=MemoryQueue(), run_worker=False)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="https://shop.example.com") as client,
    ):
        hits = 2000
        start = time.perf_counter()
        for _ in range(hits):
            await client.get(f"/g/collect?{HIT}")
        return (time.perf_counter() - start) / hits * 1e9


async def main() -> None:
    queue = NullQueue()
    admission = Admission(queue, max_items=10**9, max_bytes=10**12)
    rows: dict[str, list[float]] = {}
    for size in (2, 20):
        items = [NewItem("shop", b"x" * 1000) for _ in range(size)]
        for _ in range(ROUNDS):  # alternating, so drift falls on both alike
            rows.setdefault(f"bare put, {size} items", []).append(await _per_call(queue.put, items))
            rows.setdefault(f"admission.put, {size} items", []).append(
                await _per_call(admission.put, items)
            )
    rows["refusal()"] = [_refusal_ns(admission) for _ in range(ROUNDS)]
    rows["whole hit (in process)"] = [await _hit_ns() for _ in range(3)]
    for name, values in rows.items():
        print(f"{name:<28}{median(values):>10.0f} ns")
    hit = median(rows["whole hit (in process)"])
    for size in (2, 20):
        added = (
            median(rows[f"admission.put, {size} items"])
            - median(rows[f"bare put, {size} items"])
            + median(rows["refusal()"])
        )
        print(f"added per hit, {size} items:   {added:>8.0f} ns ({added / hit:.2%} of a hit)")


if __name__ == "__main__":
    asyncio.run(main())
