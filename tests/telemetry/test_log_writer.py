"""The background log writer: order kept, callers never wait, bounded, failures contained."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time

import pytest
import structlog

from tiktok_gateway.telemetry import configure_logging
from tiktok_gateway.telemetry.log_writer import BackgroundWriter


class Gate(io.StringIO):
    """A stream whose writes block until ``opened`` is set (a stuck log collector)."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = threading.Event()
        self.entered = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.opened.wait(timeout=10)
        return super().write(text)


def test_lines_of_many_threads_arrive_whole_and_in_each_threads_order() -> None:
    target = io.StringIO()
    writer = BackgroundWriter(target)

    def emit(name: str) -> None:
        for n in range(500):
            writer.write(f"{name} {n}\n")

    threads = [threading.Thread(target=emit, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    lines = target.getvalue().splitlines()
    assert len(lines) == 2000
    for i in range(4):
        assert [line for line in lines if line.startswith(f"t{i} ")] == [
            f"t{i} {n}" for n in range(500)
        ]
    writer.close()  # idempotent
    assert writer.write("late\n") == 0
    assert "late" not in target.getvalue()


class Counting(io.StringIO):
    """Counts the writes it receives."""

    calls = 0

    def write(self, text: str) -> int:
        self.calls += 1
        return super().write(text)


@pytest.mark.parametrize(("gather", "most"), [(0.5, 3), (0.0, 20)])
def test_lines_a_moment_apart_go_out_together(gather: float, most: int) -> None:
    """After each write the thread waits ``gather`` seconds, so lines logged a millisecond apart
    reach the stream in a few writes (with no wait, nearly one write, and one wake-up of the
    thread, per line: the second case shows the first one can tell them apart)."""
    target = Counting()
    writer = BackgroundWriter(target, gather=gather)
    for n in range(20):
        writer.write(f"line {n}\n")
        time.sleep(0.002)
    writer.close()
    assert target.getvalue().count("\n") == 20
    assert target.calls <= most
    if gather == 0.0:
        assert target.calls > 3


def test_writes_return_at_once_while_the_stream_is_stuck_and_overflow_is_counted() -> None:
    target = Gate()
    writer = BackgroundWriter(target, max_pending=10)
    writer.write("first\n")
    assert target.entered.wait(timeout=5)  # the thread is now blocked inside the target
    accepted = sum(writer.write(f"line {n}\n") > 0 for n in range(25))  # none of these block
    assert accepted == 10
    target.opened.set()
    writer.close()
    text = target.getvalue()
    assert text.startswith("first\nline 0\n")
    assert "line 9\n" in text
    assert "line 10\n" not in text
    assert text.endswith("[log writer: 15 lines dropped, the stream was stuck]\n")


def test_a_failing_stream_is_reported_once_and_fails_no_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    original = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", original)
    writer = BackgroundWriter(Broken())
    for n in range(3):
        assert writer.write(f"line {n}\n") > 0
    writer.close()
    assert original.getvalue().count("cannot write logs") == 1
    assert "disk full" in original.getvalue()


def test_configured_in_the_background_structlog_and_stdlib_lines_keep_their_order() -> None:
    target = io.StringIO()
    configure_logging(json=True, level="info", stream=target, background=True)
    for n in range(50):
        structlog.get_logger("tiktok_gateway.telemetry").info("hit", n=n)
        logging.getLogger("tiktok_gateway.delivery.worker").warning("stdlib %d", n)
    configure_logging(json=True, level="info", stream=io.StringIO())  # replaces: writes out
    lines = [json.loads(line) for line in target.getvalue().splitlines()]
    expected = [x for n in range(50) for x in (f"hit {n}", f"stdlib {n}")]
    assert [f"{ln['event']} {ln['n']}" if "n" in ln else ln["event"] for ln in lines] == expected
