"""Real gateway and sandbox processes on loopback for system tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "tiktok_gateway"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Poll ``url`` until it answers; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(url)


def start(
    args: list[str], env: Mapping[str, str], log: Path, wrapper: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """The CLI with ``args`` and ``env`` (none of this process's TIKTOK_/GATEWAY_ settings). A
    ``serve`` gets a free admin port unless ``env`` names one: the default, the public port + 1,
    may be another test process's port. ``wrapper``: a command that runs the CLI (it ``exec``s
    the arguments appended to it, so the process is the CLI's)."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TIKTOK_", "GATEWAY_"))
    }
    if args[:1] == ["serve"]:
        environment["GATEWAY_ADMIN_PORT"] = str(free_port())
    environment.update(env)
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*wrapper, *CLI, *args], env=environment, stdout=handle, stderr=handle
        )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout=timeout)


def start_sandbox(port: int, token: str, log: Path) -> subprocess.Popen[bytes]:
    """The standalone sandbox on ``port``, accepting only ``token``; returns once it answers."""
    args = ["sandbox", "--port", str(port), "--access-token-env", "SANDBOX_TOKEN"]
    sandbox = start(args, {"SANDBOX_TOKEN": token}, log)
    wait_until_up(f"http://127.0.0.1:{port}/sandbox/", sandbox)
    return sandbox


def delivering_to(sandbox_url: str, token: str, pixel: str) -> dict[str, str]:
    """A gateway's environment: deliver TikTok events and forward GA4 hits to the standalone
    sandbox at ``sandbox_url``, with short batches, retries and leases (what a killed process
    had leased comes back after 2 s)."""
    return {
        "TIKTOK_PIXEL_CODE": pixel,
        "TIKTOK_ACCESS_TOKEN": token,
        "TIKTOK_API_URL": sandbox_url,
        "GATEWAY_GA4_ENDPOINT": sandbox_url,
        "GATEWAY_BATCH_MAX_WAIT_MS": "20",
        "GATEWAY_RETRY_BASE_SECONDS": "0.05",
        "GATEWAY_RETRY_MAX_SECONDS": "0.5",
        "GATEWAY_LEASE_SECONDS": "2",
    }


def purchase_hit(index: int) -> str:
    """The query of a GA4 purchase hit whose TikTok event id is ``order-<index>``."""
    return f"v=2&tid=G-1&cid=1.2&en=purchase&ep.transaction_id=order-{index}"


def forwarded_orders(sandbox_url: str) -> set[str]:
    """The ``ep.transaction_id`` of every GA4 hit the sandbox's Google side received."""
    listing = httpx.get(f"{sandbox_url}/sandbox/ga4/hits", params={"limit": 10_000}).json()
    return {
        value
        for hit in listing["hits"]
        for name, value in hit["params"]
        if name == "ep.transaction_id"
    }


def missing_forwards(sandbox_url: str, wanted: set[str], timeout: float = 30.0) -> set[str]:
    """Poll the sandbox until a GA4 hit of every order in ``wanted`` arrived; returns those
    that did not."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while not wanted <= seen and time.monotonic() < deadline:
        seen = forwarded_orders(sandbox_url)
        time.sleep(0.1)
    return wanted - seen


def missing_event_ids(sandbox_url: str, wanted: set[str], timeout: float = 30.0) -> set[str]:
    """Poll the sandbox until every id in ``wanted`` was accepted; returns those that were not."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while not wanted <= seen and time.monotonic() < deadline:
        listing = httpx.get(f"{sandbox_url}/sandbox/events", params={"limit": 10_000}).json()
        seen = {stored["event"]["event_id"] for stored in listing["events"]}
        time.sleep(0.1)
    return wanted - seen


@dataclass
class Pair:
    """A gateway delivering to the standalone sandbox, both running (``gateway_with_sandbox``)."""

    gateway_url: str
    sandbox_url: str
    gateway: subprocess.Popen[bytes]
    admin_url: str  # the gateway's admin listener


@contextmanager
def gateway_with_sandbox(
    tmp_path: Path, token: str, pixel: str, sandbox_args: list[str] | None = None, **extra: str
) -> Iterator[Pair]:
    """The standalone sandbox (``sandbox_args`` added to its command) and a gateway delivering
    to it (``delivering_to``, plus ``extra`` settings), both up; killed on the way out if they
    are still running."""
    sandbox_port, gateway_port, admin_port = free_port(), free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    log = tmp_path / "processes.log"
    args = ["sandbox", "--port", str(sandbox_port), "--access-token-env", "SANDBOX_TOKEN"]
    processes = [start([*args, *(sandbox_args or [])], {"SANDBOX_TOKEN": token}, log)]
    try:
        wait_until_up(f"{sandbox_url}/sandbox/", processes[0])
        env = delivering_to(sandbox_url, token, pixel) | extra
        env |= {"GATEWAY_PORT": str(gateway_port), "GATEWAY_DATA_DIR": str(tmp_path / "data")}
        env |= {"GATEWAY_ADMIN_PORT": str(admin_port)}
        processes.append(start(["serve"], env, log))
        wait_until_up(f"{gateway_url}/healthz", processes[1])
        yield Pair(gateway_url, sandbox_url, processes[1], f"http://127.0.0.1:{admin_port}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
