"""``serve --workers N``: N processes serve both listeners, and a supervisor keeps them.

The parent binds the public and admin sockets once, checks the queue once (then closes it), and
starts N worker processes (multiprocessing's ``spawn``: a fresh interpreter each, nothing copied
from the parent but the configuration, the connection limits and the two sockets). Each worker
runs the whole gateway (``serving.run_server``): its own queue connection, ingest, delivery
lanes, ``/debug`` recorder; the kernel hands each new connection to whichever worker accepts it
first. What they share is the queue (SQLite's file or Redis), whose lease is atomic across
processes, so an item is delivered by one process at a time, and a folder of metrics files
(``telemetry/metrics.py``).

The supervisor (``Supervisor.run``, the parent's whole life):

- A worker that exits while the server runs (kill -9, a crash) is replaced at once; one whose
  replacements keep failing to start is retried after 0.5, 1, 2 ... 30 s. What it had leased
  returns to the queue when its leases expire (``GATEWAY_LEASE_SECONDS``) and is delivered by the
  others; what it acknowledged was committed before its 2xx. Its live gauges are dropped
  (``mark_process_dead``); its counts stay.
- A worker of the first start that exits before it serves (a queue it cannot open, the app
  failing its start) stops the whole server: exit 1, as ``serve`` in one process would.
- SIGTERM or SIGINT: every worker gets SIGTERM and stops as ``serve`` does (refuse hits, finish
  or release its deliveries, close the queue); after ``GATEWAY_SHUTDOWN_SECONDS`` + 10 s the
  ones still running are killed. Exit 0 when every worker stopped by itself.
- A hung worker (alive, its event loop stuck: an endless loop, a blocking call, SIGSTOP) is
  killed (SIGKILL) and replaced as an exited one is, with one warning line (``worker_hung``: its
  PID and how long it was silent). Each worker's loop beats every second once it serves
  (``cli/heartbeats.py``); one silent for ``GATEWAY_WORKER_TIMEOUT_SECONDS`` (30) is hung. A
  worker still starting has ``max(60 s, the timeout)`` to start beating; a first-start worker
  that does not stops the whole server, as a failed one does. Without the supervisor (one
  process) nothing watches the loop: liveness probes (``/healthz``) are the orchestrator's.
- A worker whose parent dies (kill -9 of the supervisor) notices (its end of a pipe reads EOF)
  and stops gracefully, so no worker outlives its supervisor.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import shutil
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

import structlog
import uvicorn.config
from prometheus_client import multiprocess

from tiktok_gateway.cli.heartbeats import Counter, Heartbeats, beat_in_running_loop
from tiktok_gateway.cli.serving import run_server
from tiktok_gateway.config import Config, available_cpus
from tiktok_gateway.endpoints.limits import HttpLimits
from tiktok_gateway.telemetry.logs import configure_from_environment

log = structlog.get_logger("tiktok_gateway.workers")

STOP_MARGIN_SECONDS = 10.0  # past GATEWAY_SHUTDOWN_SECONDS (+1 for uvicorn) before SIGKILL
RESTART_DELAY_MAX = 30.0
_POLL_SECONDS = 0.25  # how often the supervisor looks at its signals when nothing happens
_SPAWN = multiprocessing.get_context("spawn")


def workers_line(config: Config) -> str:
    """How many processes serve, for ``serve``'s start-up lines and ``check``."""
    setting = config.gateway.workers
    count = config.gateway.resolved_workers
    if count == 1:
        hint = (
            ""
            if setting == "auto"
            else f"; GATEWAY_WORKERS=auto: one per CPU, {available_cpus()} here"
        )
        return f"workers: 1 process{' (auto: 1 CPU available)' if setting == 'auto' else ''}{hint}"
    why = f" (auto: {count} CPUs available)" if setting == "auto" else ""
    return f"workers: {count} processes{why} sharing both listeners and the queue"


def metrics_dir_of(config: Config) -> Path:
    """The folder the workers' metrics are counted in: in the data folder, one per public port
    (two servers sharing a data folder do not mix their counts)."""
    return config.gateway.data_dir / f"metrics-{config.gateway.port}"


def prepare_metrics_dir(path: Path) -> None:
    """Empty ``path`` (counts of an earlier run would add up) and tell the workers about it:
    prometheus_client reads ``PROMETHEUS_MULTIPROC_DIR`` when a worker imports it."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker process is given (pickled): it loads nothing itself, so all run the
    configuration the parent validated and described."""

    config: Config
    limits: HttpLimits
    metrics_dir: Path


def worker_main(
    spec: WorkerSpec, sockets: list[socket.socket], link: Connection, beats: Counter
) -> None:
    """A worker process: log set-up, then the gateway on the parent's ``sockets``. ``link``
    tells the parent once the server listens, and reads EOF when the parent is gone; once it
    listens, the server's loop increments ``beats`` every second (``cli/heartbeats.py``)."""

    def started() -> None:
        link.send(True)
        beat_in_running_loop(beats)  # called in the server's loop: the beats are that loop's

    def watch_parent() -> None:
        with contextlib.suppress(EOFError, OSError):
            link.recv()  # the parent never sends: this returns when it is gone
        os.kill(os.getpid(), signal.SIGTERM)  # a graceful stop, as from the parent

    configure_from_environment()  # the parent checked the variables
    structlog.contextvars.bind_contextvars(worker=os.getpid())  # on every line of this process
    threading.Thread(target=watch_parent, name="supervisor-link", daemon=True).start()
    run_server(
        spec.config,
        spec.limits,
        sockets=sockets,
        failure_code=uvicorn.config.STARTUP_FAILURE,  # the exit of a server that could not start
        metrics_dir=spec.metrics_dir,
        on_started=started,
    )


@dataclass
class _Slot:
    """One of the N places a worker runs in, and its current process."""

    index: int
    beats: Counter  # the shared counter its processes beat on, one after the other
    process: BaseProcess | None = None
    link: Connection | None = None  # the parent's end of the pipe to the process
    started: bool = False  # the current process serves
    replacement: bool = False  # the current process replaces one that exited
    failures: int = 0  # processes in a row that exited before they served
    restart_at: float = 0.0  # monotonic time the next process may start
    silent: float | None = None  # seconds the current process was silent when killed as hung


@dataclass
class Supervisor:
    """Starts ``count`` workers on ``sockets`` and keeps them (module docstring)."""

    spec: WorkerSpec
    sockets: list[socket.socket]
    count: int
    slots: list[_Slot] = field(init=False)
    heartbeats: Heartbeats = field(init=False)
    _signal: int | None = field(default=None, init=False)
    _failure: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.slots = [_Slot(index, _SPAWN.RawValue(ctypes.c_uint64)) for index in range(self.count)]
        self.heartbeats = Heartbeats(self.spec.config.gateway.worker_timeout_seconds)

    def run(self) -> int:
        """Supervise until a signal stops the server (exit 0) or a worker cannot start (1)."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for slot in self.slots:
                self._start(slot)
            while self._signal is None and not self._failure:
                self._watch(_POLL_SECONDS)
            clean = self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self._failure:
            log.error("workers_failed", reason=self._failure)
            return 1
        return 0 if clean else 1

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signal = sig

    def _start(self, slot: _Slot) -> None:
        ours, theirs = _SPAWN.Pipe()
        process = _SPAWN.Process(
            target=worker_main,
            args=(self.spec, self.sockets, theirs, slot.beats),
            name=f"tiktok-gateway-worker-{slot.index}",
        )
        process.start()
        theirs.close()  # the child has its copy; ours reads EOF when the child is gone
        slot.process, slot.link, slot.started, slot.silent = process, ours, False, None
        self.heartbeats.watch(slot.index, slot.beats.value)

    def _watch(self, timeout: float) -> None:
        """Wait up to ``timeout`` for a worker to start or exit; replace exited ones when due."""
        now = time.monotonic()
        due = [s.restart_at - now for s in self.slots if s.process is None]
        waiting: list[Connection | int] = []
        for slot in self.slots:
            if slot.process is not None:
                waiting.append(slot.process.sentinel)
                if not slot.started and slot.link is not None:
                    waiting.append(slot.link)
        wait(waiting, timeout=max(0.0, min([timeout, *due])))
        self._kill_hung()
        for slot in self.slots:
            self._check(slot)
            due_now = slot.process is None and slot.restart_at <= time.monotonic()
            if due_now and self._signal is None and not self._failure:
                self._start(slot)
                slot.replacement = True

    def _kill_hung(self) -> None:
        """SIGKILL the workers silent too long; ``_check`` then replaces them as exited ones."""
        running = {s.index: s.beats.value for s in self.slots if s.process is not None}
        for index, silent in self.heartbeats.overdue(running).items():
            slot = self.slots[index]
            if slot.process is not None and slot.process.is_alive():
                slot.silent = silent
                slot.process.kill()  # SIGKILL ends a stopped process too
                slot.process.join()

    def _check(self, slot: _Slot) -> None:
        process, link = slot.process, slot.link
        if process is None or link is None:
            return
        if not slot.started and link.poll():
            with contextlib.suppress(EOFError, OSError):
                slot.started = bool(link.recv())
            if slot.started:
                slot.failures = 0
                log.info("worker_started", worker=process.pid, slot=slot.index)
        if process.is_alive():
            return
        process.join()
        served, silent = slot.started, slot.silent
        self._gone(slot, process)
        if not served and not slot.replacement:  # the first start failed: so would all
            code = process.exitcode
            self._failure = (
                f"worker {slot.index} exited with {code} before it served"
                if silent is None
                else f"worker {slot.index} did not start within {silent:.0f} s (killed)"
            )
            return
        slot.failures = 0 if served else slot.failures + 1
        delay = (
            0.0 if slot.failures == 0 else min(RESTART_DELAY_MAX, 0.5 * 2 ** (slot.failures - 1))
        )
        slot.restart_at = time.monotonic() + delay
        if silent is not None:  # one line for the hang, its kill and its replacement
            log.warning(
                "worker_hung",
                worker=process.pid,
                slot=slot.index,
                silent_seconds=round(silent, 1),
                serving=served,
                restart_in_seconds=delay,
            )
            return
        log.warning(
            "worker_exited",
            worker=process.pid,
            slot=slot.index,
            exit_code=process.exitcode,
            restart_in_seconds=delay,
        )

    def _gone(self, slot: _Slot, process: BaseProcess) -> None:
        """Forget ``slot``'s exited process: its pipe, its live gauges."""
        if process.pid is not None:
            multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                process.pid, str(self.spec.metrics_dir)
            )
        if slot.link is not None:
            slot.link.close()
        self.heartbeats.forget(slot.index)
        slot.process, slot.link, slot.started = None, None, False

    def _stop_all(self) -> bool:
        """SIGTERM to every worker, then wait for them; True when all exited by themselves."""
        running = [s for s in self.slots if s.process is not None and s.process.is_alive()]
        if running:
            log.info("workers_stopping", workers=[s.process.pid for s in running if s.process])
        for slot in running:
            if slot.process is not None and slot.process.pid is not None:
                os.kill(slot.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.spec.config.gateway.shutdown_seconds + 1
        deadline += STOP_MARGIN_SECONDS
        clean = True
        for slot in self.slots:
            process = slot.process
            if process is None:
                continue
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker_killed", worker=process.pid, slot=slot.index)
                process.kill()
                process.join()
                clean = False
            elif process.exitcode not in (0, -signal.SIGTERM, -signal.SIGINT):
                clean = False
            self._gone(slot, process)
        return clean
