"""Bytes a queued item takes in the SQLite queue, with GA4 forwarding off and on: what the
defaults of GATEWAY_QUEUE_MAX_EVENTS and GATEWAY_QUEUE_MAX_BYTES are sized from.

The hits are bench/ingest.py's mix (per 16: 7 page_view, 3 view_item, 2 add_to_cart, 1 purchase
with 5 items, e-mail and phone, 3 batched POSTs of 3 events), with a browser's headers, sent
through the gateway app in process (its real collectors and SQLite queue, no delivery) to a
fresh queue. Printed per configuration: hits, items queued, the queue's pages in use
(``Queue.stored_bytes``), bytes per item and per hit, and the file size with its WAL. Then the
same items moved to the dead letters (a dead letter keeps its payload and TikTok's answer).

    .venv/bin/python bench/queue_bytes.py [--hits 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

import ingest  # bench/ingest.py: the hit mix (this folder is on the path, as for the others)
from tiktok_gateway.app import create_app
from tiktok_gateway.config import Config, load_config
from tiktok_gateway.queue.base import DeadLetter, Queue
from tiktok_gateway.queue.sqlite import SQLiteQueue


def _request(raw: bytes) -> tuple[str, str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    method, target, _ = lines[0].split(" ")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    headers.pop("Content-Length", None)
    return method, target, headers, body


@asynccontextmanager
async def mix_sent(config: Config, queue: Queue, hits: int) -> AsyncIterator[None]:
    """``hits`` hits of bench/ingest.py's mix, each answered 204, sent through the gateway app
    in process (no delivery) into ``queue``, open until the block ends (the app's end closes
    it)."""
    app = create_app(config, queue=queue, run_worker=False)
    rng = random.Random(7)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="https://sst.shop.example.de") as client,
    ):
        for n in range(hits):
            method, target, headers, body = _request(
                ingest._hit(ingest.ORDER[n % len(ingest.ORDER)], rng, n)
            )
            answer = await client.request(method, target, headers=headers, content=body)
            assert answer.status_code == 204, answer.text
        yield


async def measure(hits: int, ga4: bool, folder: Path) -> dict[str, float]:
    environ = {
        "TIKTOK_PIXEL_CODE": "CBYTES",
        "GATEWAY_GA4_FORWARD": "true" if ga4 else "false",
        "GATEWAY_GA4_ENDPOINT": "sandbox",
    }
    config = load_config(None, environ)
    path = folder / f"queue-{'ga4' if ga4 else 'tiktok'}.db"
    queue = await SQLiteQueue.open(path)
    async with mix_sent(config, queue, hits):
        stats = await queue.stats()
        stored = await queue.stored_bytes() or 0
        files = sum(p.stat().st_size for p in folder.glob(f"{path.name}*"))
        leased = await queue.lease(stats.depth, 60)
        await queue.dead_letter(
            [DeadLetter(item.id, "rejected", 40002, "Invalid value for field") for item in leased]
        )
        dead_stored = await queue.stored_bytes() or 0
    return {
        "hits": hits,
        "items": stats.depth,
        "stored": stored,
        "per_item": stored / stats.depth,
        "per_hit": stored / hits,
        "files": files,
        "dead_per_item": dead_stored / stats.depth,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hits", type=int, default=4000)
    args = parser.parse_args()
    os.environ.pop("GATEWAY_GA4_FORWARD", None)
    print(
        f"{'GA4 forwarding':<15}{'hits':>7}{'items':>8}{'pages in use':>14}"
        f"{'B/item':>8}{'B/hit':>8}{'file+WAL':>11}{'B/dead item':>13}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for ga4 in (False, True):
            row = asyncio.run(measure(args.hits, ga4, Path(folder)))
            print(
                f"{'on' if ga4 else 'off':<15}{row['hits']:>7.0f}{row['items']:>8.0f}"
                f"{row['stored']:>14,.0f}{row['per_item']:>8.0f}{row['per_hit']:>8.0f}"
                f"{row['files']:>11,.0f}{row['dead_per_item']:>13.0f}"
            )


if __name__ == "__main__":
    main()
