"""The SQLite queue's CPU per delivered item: lease and ack, as a delivery lane drains a backlog.

Each round (a fresh process, so ``--compare`` can import another tree) puts ``--items`` items of
the delivery bench's size (500-byte payloads, one group) into a new queue file, then drains it as
a lane does (``lease(1000, only_groups=(group,))``, then ``ack`` of what it got) and prints the
CPU time per item of the queue's thread (the SQL, the rows made into ``LeasedItem``s) and of the
event loop's thread (the ids, the hops). ``--compare DIR`` alternates rounds with the tree at
``DIR`` (its ``src`` first on ``PYTHONPATH``); the MEDIANs of each side and their ratio close the
run. The file goes to a temporary directory under ``--dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median


async def _round(items: int, folder: str) -> tuple[float, float]:
    from tiktok_gateway.queue.base import NewItem
    from tiktok_gateway.queue.sqlite import SQLiteQueue

    rng = random.Random(20261203)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        queue = await SQLiteQueue.open(Path(tmp) / "queue.db")
        for start in range(0, items, 1000):
            count = min(1000, items - start)
            await queue.put(
                [NewItem("shop", rng.randbytes(250).hex().encode()) for _ in range(count)]
            )
        loop = asyncio.get_running_loop()
        executor = queue._executor  # the queue's one thread: ask it for its own CPU time
        queue_before = await loop.run_in_executor(executor, time.thread_time)
        loop_before = time.thread_time()
        drained = 0
        while leased := await queue.lease(1000, 60.0, only_groups=("shop",)):
            await queue.ack([item.id for item in leased])
            drained += len(leased)
        loop_cpu = time.thread_time() - loop_before
        queue_cpu = await loop.run_in_executor(executor, time.thread_time) - queue_before
        await queue.close()
    assert drained == items, (drained, items)
    return 1e6 * queue_cpu / items, 1e6 * loop_cpu / items


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=8, help="per side")
    parser.add_argument("--compare", type=Path, help="another tree (its src is imported)")
    parser.add_argument("--dir", default=None, help="where the queue files go")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a round, printed
    args = parser.parse_args()
    if args.one:
        print(*asyncio.run(_round(args.items, args.dir)))
        return
    sides = {"this": os.environ.get("PYTHONPATH", "")}
    if args.compare:
        sides["other"] = str(args.compare.resolve() / "src")
        print(f"other: {sides['other']}")
    results: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
    command = [sys.executable, __file__, "--one", "--items", str(args.items)]
    command += ["--dir", args.dir] if args.dir else []
    for n in range(args.rounds):
        for side, path in sides.items():
            env = dict(os.environ, PYTHONPATH=path) if path else dict(os.environ)
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            queue_us, loop_us = map(float, out.stdout.split())
            results[side].append((queue_us, loop_us))
            print(f"round {n + 1} {side}: queue thread {queue_us:.2f} us/item, loop {loop_us:.2f}")
    print(f"\nMEDIANs of {args.rounds} rounds, {args.items:,} items each (CPU per item)")
    meds = {
        side: tuple(median(r[i] for r in rounds) for i in (0, 1))
        for side, rounds in results.items()
    }
    for side, (queue_us, loop_us) in meds.items():
        print(f"  {side:6} queue thread {queue_us:6.2f} us, event loop {loop_us:5.2f} us")
    if "other" in meds:
        total = {side: sum(values) for side, values in meds.items()}
        print(f"  this / other (both threads): {total['this'] / total['other']:.2f}")


if __name__ == "__main__":
    main()
