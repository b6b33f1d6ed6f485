"""Instructions per ``/g/collect`` hit on the request path, counted by valgrind (callgrind):
the same number on a busy machine as on an idle one, so an A/B holds where timings do not.

The gateway's app runs in process (``create_app``, its lifespan, the SQLite queue in a temporary
folder, JSON logs to /dev/null, no delivery: TikTok and Google unreachable, the worker off) and is
driven through ASGI directly with ``bench/ingest.py``'s hit mix, 32 requests at once. Each tree
runs twice under callgrind, with ``--hits`` and with twice as many; the difference over
``--hits`` is the cost of one hit with start-up taken out. ``--compare DIR`` does the same for
another source tree (``PYTHONPATH=DIR/src``, its compiled modules as they are there).
Slow: about a minute per 500 hits under valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import ingest

CONCURRENCY = 32


def _requests() -> list[tuple[str, bytes, list[tuple[bytes, bytes]], bytes]]:
    """(method, query, headers, body) of the mix's first 4,096 hits."""
    parsed = []
    rng = random.Random(20250606)
    for session in range(256):
        for kind in ingest.ORDER:
            head, _, body = ingest._hit(kind, rng, session).partition(b"\r\n\r\n")
            first, *lines = head.split(b"\r\n")
            method, target, _ = first.split(b" ")
            headers = [
                (k.strip().lower(), v.strip()) for k, v in (ln.split(b":", 1) for ln in lines)
            ]
            parsed.append((method.decode(), target.partition(b"?")[2], headers, body))
    return parsed


async def _drive(hits: int) -> None:
    from tiktok_gateway.app import create_app
    from tiktok_gateway.config import load_config
    from tiktok_gateway.telemetry.logs import configure_logging

    with open(os.devnull, "w") as sink:
        configure_logging(json=True, stream=sink)
        config = load_config()
        app = create_app(config, run_worker=False)
        requests = _requests()
        answers: dict[int, int] = {}

        async def one(index: int) -> None:
            method, query, headers, body = requests[index % len(requests)]
            scope = {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "method": method, "scheme": "http", "path": "/g/collect",
                "raw_path": b"/g/collect", "query_string": query, "root_path": "",
                "headers": headers, "client": ("203.0.113.9", 40000),
                "server": ("127.0.0.1", config.gateway.port), "state": {},
            }  # fmt: skip
            sent = False

            async def receive() -> dict[str, object]:
                nonlocal sent
                if sent:
                    await asyncio.sleep(3600)
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status = int(str(message["status"]))
                    answers[status] = answers.get(status, 0) + 1

            await app(scope, receive, send)

        async def connection(first: int, count: int) -> None:
            for index in range(first, first + count):
                await one(index)

        async with app.router.lifespan_context(app.public):
            share = hits // CONCURRENCY
            await asyncio.gather(*(connection(n * share, share) for n in range(CONCURRENCY)))
        if set(answers) != {204}:
            raise SystemExit(f"answers other than 204: {answers}")


def _instructions(src: Path | None, hits: int, folder: Path) -> int:
    out = folder / f"callgrind.{hits}.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIKTOK_", "GATEWAY_"))}
    env |= {"TIKTOK_PIXEL_CODE": "CBENCH", "TIKTOK_ACCESS_TOKEN": "bench-token"}
    env |= {"TIKTOK_API_URL": "http://127.0.0.1:9", "GATEWAY_GA4_ENDPOINT": "http://127.0.0.1:9"}
    env |= {"GATEWAY_DATA_DIR": str(folder / f"q{hits}")}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    command += [sys.executable, __file__, "_drive", str(hits)]
    subprocess.run(command, env=env, check=True, capture_output=True)
    totals = next(ln for ln in out.read_text().splitlines() if ln.startswith("totals:"))
    return int(totals.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hits", type=int, default=512)
    parser.add_argument("--compare", type=Path, help="another source tree (its src/ is used)")
    args = parser.parse_args()
    trees: dict[str, Path | None] = {"this tree": None}
    if args.compare:
        trees[str(args.compare)] = args.compare / "src"
    per_hit = {}
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        for name, src in trees.items():
            small = _instructions(src, args.hits, Path(tmp))
            large = _instructions(src, 2 * args.hits, Path(tmp))
            per_hit[name] = (large - small) / args.hits
            print(f"{name}: {per_hit[name] / 1e6:.3f} M instructions per hit"
                  f" (start-up and {args.hits} hits: {small / 1e9:.2f} G)", flush=True)  # fmt: skip
    if args.compare:
        ratio = per_hit["this tree"] / per_hit[str(args.compare)]
        print(f"this tree / {args.compare}: {ratio:.3f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["_drive"]:
        import uvloop

        uvloop.install()
        asyncio.run(_drive(int(sys.argv[2])))
    else:
        main()
