"""A Redis queue that goes away under load: two real gateways on one Redis server (of the test's
own, append-only), hits flowing, the server killed (SIGKILL) for a few seconds and started
again on its files. Used by ``test_queue_outage.py`` and ``bench/queue_outage.py``.

What it measures: the gateways' warning and error log lines (and tracebacks) from the kill until
a second after the restart, their CPU over the outage, the hits answered 204 and 503, and which
acknowledged hits TikTok (the standalone sandbox) did not get in the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from tests import redis_server
from tests.system.processes import (
    delivering_to,
    free_port,
    missing_event_ids,
    purchase_hit,
    start,
    start_sandbox,
    stop,
    wait_until_up,
)

TOKEN = "queue-outage-token"


@dataclass
class OutageReport:
    """What one run saw; ``lines``/``tracebacks``/``cpu`` per gateway, over the outage window."""

    outage_seconds: float
    lines: list[int] = field(default_factory=list)
    tracebacks: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # share of one core
    accepted: int = 0
    refused: int = 0
    lost: set[str] = field(default_factory=set)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(map(int, fields[11:13])) / os.sysconf("SC_CLK_TCK")


def _log_lines(path: Path, since: float, until: float) -> tuple[int, int]:
    """(warning and error lines, tracebacks among them) a gateway logged between two unix
    times (its JSON lines carry ISO 8601 UTC timestamps)."""
    lines = tracebacks = 0
    for text in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            line = json.loads(text)
            when = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if since <= when <= until and line.get("level") in ("warning", "error", "critical"):
            lines += 1
            tracebacks += "exception" in line
    return lines, tracebacks


def _send(
    ports: list[int], stop_at: threading.Event, accepted: list[str], refused: list[int]
) -> None:
    """Hits to the gateways in turn until ``stop_at``: 204s noted by order id, others counted."""
    index = 0
    with httpx.Client(timeout=5) as client:
        while not stop_at.is_set():
            port = ports[index % len(ports)]
            try:
                answer = client.get(f"http://127.0.0.1:{port}/g/collect?{purchase_hit(index)}")
            except httpx.TransportError:
                refused.append(0)
            else:
                if answer.status_code == 204:
                    accepted.append(f"order-{index}")
                else:
                    refused.append(answer.status_code)
            index += 1
            time.sleep(0.002)


def run_outage(
    tmp_path: Path, outage: float = 3.0, env: dict[str, str] | None = None
) -> OutageReport:
    """Two gateways on one Redis, Redis killed for ``outage`` seconds under load (see above).
    ``env`` goes to the gateways on top of the scenario's (``PYTHONPATH`` for another tree)."""
    report = OutageReport(outage)
    sandbox_port, redis_port = free_port(), free_port()
    ports = [free_port(), free_port()]
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    logs = [tmp_path / f"gateway-{n}.log" for n in range(2)]
    processes: list[subprocess.Popen[bytes]] = []
    accepted: list[str] = []
    refused: list[int] = []
    done = threading.Event()
    sender = threading.Thread(target=_send, args=(ports, done, accepted, refused))
    try:
        processes.append(start_sandbox(sandbox_port, TOKEN, tmp_path / "sandbox.log"))
        with redis_server.private_server(redis_dir, port=redis_port, append_only=True) as first:
            env = delivering_to(sandbox_url, TOKEN, "COUTAGE") | {
                "GATEWAY_QUEUE_URL": first.url,
                "GATEWAY_LOG_FORMAT": "json",
                "GATEWAY_GA4_FORWARD": "false",
                **(env or {}),
            }
            gateways = [
                start(["serve"], env | {"GATEWAY_PORT": str(port)}, path)
                for port, path in zip(ports, logs, strict=True)
            ]
            processes += gateways
            for port, gateway in zip(ports, gateways, strict=True):
                wait_until_up(f"http://127.0.0.1:{port}/healthz", gateway)
            sender.start()
            time.sleep(1.5)
            before = [_cpu(gateway.pid) for gateway in gateways]
            killed_at = time.time()
            first.process.send_signal(signal.SIGKILL)
            first.process.wait()
        time.sleep(max(outage - (time.time() - killed_at), 0.0))
        report.cpu = [(_cpu(g.pid) - cpu) / outage for g, cpu in zip(gateways, before, strict=True)]
        with redis_server.private_server(redis_dir, port=redis_port, append_only=True):
            back_at = time.time()
            time.sleep(1.5)
            done.set()
            sender.join()
            for path in logs:
                lines, tracebacks = _log_lines(path, killed_at, back_at + 1.0)
                report.lines.append(lines)
                report.tracebacks.append(tracebacks)
            report.accepted, report.refused = len(accepted), len(refused)
            report.lost = missing_event_ids(sandbox_url, set(accepted), timeout=60)
            for gateway in gateways:
                stop(gateway)
    finally:
        done.set()
        if sender.is_alive():
            sender.join()
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return report
