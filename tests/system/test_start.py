"""``serve`` started on a large backlog while TikTok is unreachable (issue 13 item 4): it answers
``/healthz`` and ``/readyz`` whatever is queued, and its memory does not grow with the queue.

bench/million.py measures the start time with 1,000,000 items (the issue's 1 s); a test does not
time it (a shared machine's load decides a wall-clock bound). What would make the start grow with
the backlog, ``open`` reading items, is tested by the bytes it reads in tests/queue/test_sqlite.py.
Here as many items as are put in a few seconds, from real payloads (the app's own collectors made
them), the file dropped from the page cache first, as after a reboot.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx

from tests.harness import config_of, running
from tests.system.processes import free_port, start, stop
from tiktok_gateway.queue.base import NewItem
from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.queue.sqlite import SQLiteQueue

ITEMS = 200_000
PIXEL = "CSTART"
# A purchase with five items, e-mail and phone, a product view and a page view: ~600-900
# bytes of payload each, as bench/ingest.py's mix makes them.
HITS = [
    "v=2&tid=G-1&cid=1.2&_p=1&_s=1&en=purchase&cu=EUR&ep.transaction_id=T-{n}&epn.value=59.9"
    "&ep.user_data.email_address=buyer{n}%40example.com&ep.user_data.phone_number=%2B4915112345"
    + "".join(f"&pr{i}=idSKU-{i}~nmStan%20and%20Friends%20Tee~pr19.95~qt{i}" for i in range(1, 6))
    + "&dl=https%3A%2F%2Fshop.example.com%2Fthanks%3Fttclid%3DE.C.P.abc",
    "v=2&tid=G-1&cid=1.2&_p=2&_s=2&en=view_item&cu=EUR&epn.value=19.95&pr1=idSKU-{n}~nmCap~pr19.95"
    "&dl=https%3A%2F%2Fshop.example.com%2Fp%2F{n}",
    "v=2&tid=G-1&cid=1.2&_p=3&_s=3&en=page_view&dl=https%3A%2F%2Fshop.example.com%2Fc%2F{n}",
]


async def _payloads() -> list[NewItem]:
    """The queue items 30 hits make, through the app in process."""
    queue = MemoryQueue()
    async with running(config_of({"TIKTOK_PIXEL_CODE": PIXEL}), queue=queue) as gateway:
        for n in range(30):
            answer = await gateway.client.get(f"/g/collect?{HITS[n % len(HITS)].format(n=n)}")
            assert answer.status_code == 204
        leased = await queue.lease(1000, 60)
    assert len(leased) == 30
    return [NewItem(item.group, item.payload) for item in leased]


async def _fill(path: Path) -> None:
    sample = await _payloads()
    queue = await SQLiteQueue.open(path)
    for start_at in range(0, ITEMS, 20_000):
        await queue.put([sample[n % len(sample)] for n in range(start_at, start_at + 20_000)])
    await queue.close()


def _evict(path: Path) -> None:
    """Out of the page cache: the start reads the file from the disk, as after a reboot."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _memory_mib(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM (the peak), MiB."""
    words = Path(f"/proc/{pid}/status").read_text().split()
    rss, peak = (int(words[words.index(key) + 1]) / 1024 for key in ("VmRSS:", "VmHWM:"))
    return rss, peak


def _healthz(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_answers_on_a_large_cold_backlog_and_its_memory_does_not_grow_with_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    asyncio.run(_fill(data / "queue.db"))
    _evict(data / "queue.db")
    port, closed = free_port(), free_port()  # nothing listens on `closed`: TikTok's outage
    env = {
        "GATEWAY_DATA_DIR": str(data),
        "TIKTOK_PIXEL_CODE": PIXEL,
        "TIKTOK_ACCESS_TOKEN": "start-token",
        "TIKTOK_API_URL": f"http://127.0.0.1:{closed}",
        "GATEWAY_GA4_FORWARD": "false",
        "GATEWAY_LOG_LEVEL": "warning",
    }
    began = time.monotonic()
    gateway = start(["serve", "--port", str(port)], env, tmp_path / "gateway.log")
    try:
        while not _healthz(port):
            assert gateway.poll() is None, (tmp_path / "gateway.log").read_text()
            assert time.monotonic() - began < 30, "no /healthz answer in 30 s"
            time.sleep(0.005)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200  # a backlog is no reason to leave a load balancer
        time.sleep(3)  # the outage: TikTok refused, the tag held back and probed
        rss, peak = _memory_mib(gateway.pid)
        assert peak < 150, (rss, peak)
        assert rss < 150, (rss, peak)
    finally:
        stop(gateway)
    assert "Traceback" not in (tmp_path / "gateway.log").read_text()
