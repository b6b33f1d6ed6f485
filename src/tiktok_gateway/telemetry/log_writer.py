"""Log lines written by a thread, so the event loop never waits for a write to stderr.

A ``write`` to a file or pipe can block: on a full pipe (a slow log collector) or behind the
file system's journal while SQLite fsyncs the queue on the same disk (measured under load: the
per-hit line's ``write`` was ~12% of the CPU a hit's observers cost, with stalls of tens of ms).
``BackgroundWriter`` is the stream the log handler writes to: ``write`` only appends the text to
a queue; a daemon thread joins everything queued and writes it to the real stream in one call,
then flushes. Lines keep their order (one queue for every caller).

Bounds and losses, on purpose: at most ``max_pending`` writes wait; past that, new ones are
dropped and counted, and a line saying how many follows once the stream accepts writes again
(a stuck collector must not grow the gateway's memory without end). ``close`` (also at exit)
writes what is queued; a ``kill -9`` loses what was queued in that moment, at most the last few
milliseconds of lines. A failing target stream drops the text and reports the first failure on
the process's original stderr.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
from collections import deque
from typing import TextIO

MAX_PENDING = 100_000
# After each write the thread waits this long before the next, so lines arriving meanwhile go out
# together: a few wake-ups a second instead of one per line.
GATHER_SECONDS = 0.02


class BackgroundWriter:
    """A write-only text stream that hands its text to a thread writing to ``target``."""

    def __init__(
        self, target: TextIO, *, max_pending: int = MAX_PENDING, gather: float = GATHER_SECONDS
    ) -> None:
        self.target = target
        self._max_pending = max_pending
        self._gather = gather
        self._pending: deque[str] = deque()
        self._ready = threading.Event()
        self._closed = False
        self._dropped = 0
        self._failed = False
        self._lock = threading.Lock()  # one drain at a time: the thread's or close()'s
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def write(self, text: str) -> int:
        """Queue ``text``; never blocks, never raises (text past ``max_pending`` is dropped)."""
        if self._closed:
            return 0
        if len(self._pending) >= self._max_pending:
            self._dropped += 1
            return 0
        self._pending.append(text)
        if not self._ready.is_set():  # is_set takes no lock: cheap on the hot path
            self._ready.set()
        return len(text)

    def flush(self) -> None:
        """Nothing to do here: the thread flushes after every batch it writes."""

    def isatty(self) -> bool:
        return bool(getattr(self.target, "isatty", lambda: False)())

    def close(self) -> None:
        """Write what is queued, stop the thread; idempotent. Later writes are dropped."""
        if self._closed:
            return
        self._closed = True
        self._ready.set()
        self._thread.join(timeout=5.0)
        self._drain()  # whatever arrived after the thread's last drain (or if it hung)
        atexit.unregister(self.close)

    def _run(self) -> None:
        while not self._closed:
            self._ready.wait()
            # Cleared before draining: a write that comes after this either is drained now or
            # sets the event again, so nothing waits unseen.
            self._ready.clear()
            self._drain()
            if not self._closed:
                time.sleep(self._gather)

    def _drain(self) -> None:
        with self._lock:
            parts: list[str] = []
            while self._pending:
                parts.append(self._pending.popleft())
            if self._dropped:
                parts.append(f"[log writer: {self._dropped} lines dropped, the stream was stuck]\n")
                self._dropped = 0
            if parts:
                self._write("".join(parts))

    def _write(self, text: str) -> None:
        try:
            self.target.write(text)
            self.target.flush()
        except Exception as error:  # a closed or broken stream: the lines are lost
            if not self._failed and sys.__stderr__ is not None:
                self._failed = True
                print(f"log writer: cannot write logs: {error!r}", file=sys.__stderr__)
