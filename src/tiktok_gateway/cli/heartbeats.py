"""Hung-worker detection for ``serve --workers N``: each worker's event loop beats, the
supervisor notices one that stopped (``cli/workers.py`` kills and replaces it).

The channel is one shared counter per worker slot (``multiprocessing.RawValue``, 8 bytes of
shared memory) that the worker's loop increments every ``BEAT_SECONDS``; the supervisor reads
it in the rounds it already makes (every 0.25 s) and notes, on its own clock, when it last
changed. Why this and not the pipe each worker already has: a beat is one store to memory, no
system call on either side and no wake-up of the supervisor (a pipe would wake it for every
beat of every worker, need draining, and a full pipe would block the loop that writes it);
why a counter and not a timestamp: only the supervisor's clock is read, so nothing depends on
two processes reading the same monotonic clock. No lock: one process writes, the other only
compares for a change (a torn read, impossible for an aligned word anyway, would look like
a beat, never like a silence).

The beats come from the loop itself (``beat_in_running_loop``: a timer callback that
re-arms itself), not from a thread: a loop stuck in an endless callback, a blocking system
call or stopped by SIGSTOP stops beating, where a thread would go on beating for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

BEAT_SECONDS = 1.0
# A worker beats once it serves: start-up (spawning a fresh interpreter, imports, opening the
# queue) takes about a second but blocks its loop in places, and on a loaded machine may take
# many times that. Until its first beat a worker has this long, or the timeout if longer.
START_ALLOWANCE_SECONDS = 60.0


class Counter(Protocol):
    """A shared integer: ``multiprocessing.RawValue(ctypes.c_uint64)``."""

    value: int


def beat_in_running_loop(beats: Counter) -> None:
    """Increment ``beats`` now and every ``BEAT_SECONDS`` after, from the running event loop,
    for as long as it runs: one timer and one increment a second."""
    loop = asyncio.get_running_loop()

    def beat() -> None:
        beats.value += 1
        loop.call_later(BEAT_SECONDS, beat)

    beat()


@dataclass
class _Pulse:
    beats: int  # the counter as last read
    since: float  # the supervisor's clock when it last changed (or when watching began)
    beating: bool = False  # it changed at least once: the worker serves


@dataclass
class Heartbeats:
    """The supervisor's bookkeeping: which watched workers have been silent too long.

    A worker is overdue once its counter has not changed for ``timeout`` seconds, or, before
    its first beat, for ``max(timeout, start_allowance)`` since ``watch``. A round of the
    supervisor that comes more than ``timeout / 2`` after the previous one (the supervisor
    itself was stopped, or the whole process group: Ctrl+Z, ``docker pause``) proves nothing
    about the workers, which were most likely stopped with it: every worker then gets a fresh
    period from that round instead of being killed for a silence nobody watched.
    """

    timeout: float
    start_allowance: float = START_ALLOWANCE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _pulses: dict[int, _Pulse] = field(default_factory=dict, init=False)
    _last_round: float | None = field(default=None, init=False)

    def watch(self, key: int, beats: int) -> None:
        """Start watching the process in slot ``key`` (just started), its counter at ``beats``."""
        self._pulses[key] = _Pulse(beats, self.clock())

    def forget(self, key: int) -> None:
        """Stop watching slot ``key`` (its process is gone)."""
        self._pulses.pop(key, None)

    def overdue(self, readings: Mapping[int, int]) -> dict[int, float]:
        """One round: ``readings`` are the watched counters now (a slot not in it is left
        alone); returns the slots overdue, each with the seconds it has been silent."""
        now = self.clock()
        paused = self._last_round is not None and now - self._last_round > self.timeout / 2
        self._last_round = now
        silent: dict[int, float] = {}
        for key, pulse in self._pulses.items():
            if key not in readings:
                continue
            beats = readings[key]
            if beats != pulse.beats:
                pulse.beats, pulse.since, pulse.beating = beats, now, True
            elif paused:
                pulse.since = now
            limit = self.timeout if pulse.beating else max(self.timeout, self.start_allowance)
            if now - pulse.since > limit:
                silent[key] = now - pulse.since
        return silent
