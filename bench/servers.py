"""Server processes for the benchmarks: start pinned to a CPU, stop, read their costs from /proc;
free ports and the machine line every benchmark prints.

Shared by ``mapping.py``, ``ingest.py`` and ``delivery.py`` (each is run as
``python bench/<name>.py``, so this module is importable as ``servers``).
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path


def start(args: list[str], env: dict[str, str], cpu: int, log: Path) -> subprocess.Popen[bytes]:
    """Run ``args`` (its last argument is the port) on ``cpu`` until it listens (20 s at most).

    The benchmark's own TIKTOK_*/GATEWAY_* variables never leak into the server: only ``env``.
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TIKTOK_", "GATEWAY_"))}
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env={**clean, **env}, stdout=out, stderr=out)
    os.sched_setaffinity(proc.pid, {cpu})
    for _ in range(400):
        with socket.socket() as probe:
            if proc.poll() is not None or probe.connect_ex(("127.0.0.1", int(args[-1]))) == 0:
                break
        time.sleep(0.05)
    if proc.poll() is not None:
        raise RuntimeError(f"{args} exited with {proc.returncode}; see {log}")
    return proc


def stop(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 20.0) -> None:
    """SIGTERM all (a graceful stop), then SIGKILL whatever has not exited after ``timeout``."""
    procs = list(procs)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(map(int, fields[11:13])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) each thread of the process has used so far, by thread id."""
    seconds: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            continue
        seconds[int(task.name)] = sum(map(int, fields[11:13])) / os.sysconf("SC_CLK_TCK")
    return seconds


def thread_names(pid: int, py_spy: str) -> dict[int, str]:
    """Python's names of the process's threads by thread id, as ``py-spy dump`` shows them
    (CPython 3.11 does not give them to the OS); empty when py-spy is not there."""
    try:
        out = subprocess.run(
            [py_spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found = re.findall(r'^Thread (\d+) [^"\n]*"([^"]+)"', out, re.MULTILINE)
    return {int(tid): name for tid, name in found}


def cpu_busy(cpu: int) -> float:
    """Seconds CPU ``cpu`` has been busy (not idle, not waiting for I/O) so far, all processes."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split(f"cpu{cpu} ")[1].split()[:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> tuple[float, float]:
    """(resident, peak resident) MiB of the process: VmRSS and VmHWM."""
    words = Path(f"/proc/{pid}/status").read_text().split()
    rss, peak = (int(words[words.index(key) + 1]) / 1024 for key in ("VmRSS:", "VmHWM:"))
    return rss, peak


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports on 127.0.0.1 that were free a moment ago."""
    ports = []
    for _ in range(count):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
    return ports


def machine() -> str:
    """Platform, CPU count and model (``/proc/cpuinfo``), Python version: one line."""
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        cpu = next((ln.split(":", 1)[1].strip() for ln in info if "model name" in ln), "?")
    system = f"{platform.platform()} | {os.cpu_count()} CPUs"
    return f"{system} | {cpu} | Python {platform.python_version()}"
