"""A real full disk under a real ``serve`` (SPEC 13): its SQLite queue on a small tmpfs of its
own (a private mount namespace: ``unshare``), filled and emptied from outside through
``/proc/<pid>/root``. Hits get 503 queue_unavailable (no 500, no traceback), /readyz 503, and
once space returns they are accepted by themselves; every hit that got a 204 is delivered. A
``serve`` started on a full disk exits 1 with one line."""

from __future__ import annotations

import errno
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest

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

TOKEN = "full-disk-token"
MOUNT = "/mnt/gateway-queue"  # inside the gateway's own mount namespace only


def tmpfs_wrapper(size: str, fill_first: bool = False) -> list[str]:
    """A command that mounts a tmpfs of ``size`` at ``MOUNT`` in a new mount namespace (and,
    with ``fill_first``, fills it), then execs its arguments there."""
    fill = (
        f' && (head -c 64M /dev/zero > "{MOUNT}/ballast" 2>/dev/null; true)' if fill_first else ""
    )
    script = f'mkdir -p {MOUNT} && mount -t tmpfs -o size={size} tmpfs {MOUNT}{fill} && exec "$@"'
    return ["unshare", "-rm", "sh", "-c", script, "tmpfs"]


@pytest.fixture(scope="module", autouse=True)
def _tmpfs_possible() -> None:
    probe = subprocess.run([*tmpfs_wrapper("64k"), "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a private namespace: {probe.stderr.decode()[:200]}")


def fill(folder: Path) -> Path:
    """Write a ballast file into ``folder`` until the disk is full; returns its path."""
    ballast = folder / "ballast"
    # Unbuffered: a buffered file flushes what is left when it closes, on a full disk an error.
    with ballast.open("wb", buffering=0) as handle:
        assert _write_until_refused(handle) == errno.ENOSPC
    return ballast


def _write_until_refused(handle: BinaryIO) -> int | None:
    """The errno of the write that failed."""
    try:
        while True:
            handle.write(b"\0" * 65536)
    except OSError as error:
        return error.errno


@contextmanager
def gateway_on_tmpfs(tmp_path: Path, size: str) -> Iterator[tuple[str, str, str, Path]]:
    """The standalone sandbox and a gateway whose queue is on a tmpfs of ``size``: (gateway
    URL, admin URL, sandbox URL, the tmpfs as this process sees it)."""
    sandbox_port, port, admin_port = free_port(), free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    sandbox = start_sandbox(sandbox_port, TOKEN, tmp_path / "sandbox.log")
    env = delivering_to(sandbox_url, TOKEN, "CFULL") | {
        "GATEWAY_PORT": str(port),
        "GATEWAY_ADMIN_PORT": str(admin_port),
        "GATEWAY_DATA_DIR": f"{MOUNT}/data",
        "GATEWAY_GA4_FORWARD": "false",
        "GATEWAY_LOG_FORMAT": "json",
    }
    gateway = start(["serve"], env, tmp_path / "gateway.log", tmpfs_wrapper(size))
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", gateway)
        yield (
            f"http://127.0.0.1:{port}",
            f"http://127.0.0.1:{admin_port}",
            sandbox_url,
            Path(f"/proc/{gateway.pid}/root{MOUNT}"),
        )
        stop(gateway)
    finally:
        for process in (gateway, sandbox):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_full_disk_answers_503_and_recovers_by_itself(tmp_path: Path) -> None:
    with gateway_on_tmpfs(tmp_path, "4m") as (url, admin_url, sandbox_url, disk):
        accepted: set[str] = set()
        index = 0
        with httpx.Client(base_url=url, timeout=10) as client:

            def hit() -> httpx.Response:
                nonlocal index
                answer = client.get(f"/g/collect?{purchase_hit(index)}&ep.pad={'x' * 800}")
                assert answer.status_code in (204, 503), answer.text  # never a 500
                if answer.status_code == 204:
                    accepted.add(f"order-{index}")
                index += 1
                return answer

            for _ in range(10):
                assert hit().status_code == 204
            ballast = fill(disk)
            while (answer := hit()).status_code == 204:
                assert index < 3000, "the disk never filled"
            assert answer.json()["error"] == "queue_unavailable"
            assert client.get("/readyz").status_code == 503
            problems = httpx.get(f"{admin_url}/readyz").json()["problems"]
            assert any("database or disk is full" in p for p in problems), problems
            for _ in range(20):  # still refused, none of them a 500
                assert hit().status_code == 503
                time.sleep(0.01)

            ballast.unlink()
            deadline = time.monotonic() + 15
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "no recovery"
                time.sleep(0.1)
            for _ in range(10):
                assert hit().status_code == 204
        assert missing_event_ids(sandbox_url, accepted) == set()
    log = (tmp_path / "gateway.log").read_text()
    assert "Traceback" not in log
    assert log.count("the queue cannot be written") == 1
    assert log.count("the queue takes writes again") == 1


def test_serve_on_a_full_disk_exits_1_with_one_line(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    env = {"GATEWAY_PORT": str(free_port()), "GATEWAY_DATA_DIR": f"{MOUNT}/data"}
    process = start(["serve"], env, log, tmpfs_wrapper("256k", fill_first=True))
    assert process.wait(timeout=30) == 1
    (line,) = log.read_text().splitlines()
    assert line.startswith("error: queue cannot be written: SQLite: database or disk is full")
