"""Hung-worker detection's parts (``cli/heartbeats.py``): the supervisor's bookkeeping on a
clock of the test's, and the beat from a real event loop. The kill and the replacement are
``tests/system/test_workers.py``'s, with real processes."""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import time

from tiktok_gateway.cli.heartbeats import BEAT_SECONDS, Heartbeats, beat_in_running_loop


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rounds(heartbeats: Heartbeats, clock: Clock, until: float, beats: dict[int, int]) -> None:
    """Supervisor rounds every 0.25 s up to ``until``, with ``beats`` unchanged; asserts none
    is overdue."""
    while clock.now + 0.25 <= until:
        clock.now += 0.25
        assert heartbeats.overdue(beats) == {}


def test_a_worker_that_stops_beating_is_overdue_after_the_timeout() -> None:
    clock = Clock()
    heartbeats = Heartbeats(timeout=10, start_allowance=60, clock=clock)
    heartbeats.watch(0, 7)
    heartbeats.watch(1, 0)
    beats = {0: 7, 1: 0}
    for _ in range(100):  # both beat for 100 s: nobody is overdue
        clock.now += BEAT_SECONDS
        beats = {key: count + 1 for key, count in beats.items()}
        assert heartbeats.overdue(beats) == {}
    last_beat = clock.now
    stalled = beats[0]
    for _ in range(40):  # slot 0 stops; slot 1 goes on
        clock.now += 0.25
        beats[1] += 1
        assert heartbeats.overdue({0: stalled, 1: beats[1]}) == {}
    rounds(heartbeats, clock, last_beat + 10, {0: stalled, 1: beats[1]})
    clock.now = last_beat + 10.25
    assert heartbeats.overdue({0: stalled, 1: beats[1] + 1}) == {0: 10.25}


def test_a_starting_worker_has_the_start_allowance_then_the_timeout() -> None:
    clock = Clock()
    heartbeats = Heartbeats(timeout=10, start_allowance=60, clock=clock)
    heartbeats.watch(0, 5)  # a replacement: the counter keeps its predecessor's beats
    heartbeats.watch(1, 0)
    rounds(heartbeats, clock, 1059, {0: 5, 1: 0})  # no beat yet: slow to start, not hung
    clock.now = 1059.5
    assert heartbeats.overdue({0: 6, 1: 0}) == {}  # slot 0 serves now
    clock.now = 1060.25
    assert heartbeats.overdue({0: 6, 1: 0}) == {1: 60.25}  # slot 1 never started
    rounds(heartbeats, clock, 1069.5, {0: 6})  # from its first beat, slot 0 has the timeout
    clock.now = 1069.75
    assert heartbeats.overdue({0: 6}) == {0: 10.25}


def test_a_timeout_longer_than_the_start_allowance_applies_at_start_too() -> None:
    clock = Clock()
    heartbeats = Heartbeats(timeout=120, start_allowance=60, clock=clock)
    heartbeats.watch(0, 0)
    rounds(heartbeats, clock, 1120, {0: 0})
    clock.now = 1120.25
    assert heartbeats.overdue({0: 0}) == {0: 120.25}


def test_a_pause_of_the_supervisor_gives_every_worker_a_fresh_period() -> None:
    """Ctrl+Z or ``docker pause`` stops the supervisor with its workers: the silence it finds
    when it runs again was nobody's fault."""
    clock = Clock()
    heartbeats = Heartbeats(timeout=10, start_allowance=60, clock=clock)
    heartbeats.watch(0, 0)
    clock.now += 1
    assert heartbeats.overdue({0: 1}) == {}
    clock.now += 300  # everything stopped for 5 minutes
    assert heartbeats.overdue({0: 1}) == {}
    rounds(heartbeats, clock, clock.now + 10, {0: 1})  # a fresh timeout from that round
    clock.now += 0.25
    assert heartbeats.overdue({0: 1}) == {0: 10.25}  # and then a silence counts again


def test_a_short_delay_of_the_supervisor_is_not_a_pause() -> None:
    """A round late by less than half the timeout (a loaded machine) still counts the
    silence: a hung worker is not spared by a supervisor that is merely slow."""
    clock = Clock()
    heartbeats = Heartbeats(timeout=10, start_allowance=60, clock=clock)
    heartbeats.watch(0, 0)
    clock.now += 1
    assert heartbeats.overdue({0: 1}) == {}
    for _ in range(2):
        clock.now += 4.5
        assert heartbeats.overdue({0: 1}) == {}
    clock.now += 4.5
    assert heartbeats.overdue({0: 1}) == {0: 13.5}


def test_forgotten_and_unread_slots_are_not_reported() -> None:
    clock = Clock()
    heartbeats = Heartbeats(timeout=10, start_allowance=60, clock=clock)
    heartbeats.watch(0, 0)
    heartbeats.watch(1, 0)
    clock.now += 0.25
    assert heartbeats.overdue({0: 1, 1: 1}) == {}  # both serve
    heartbeats.forget(0)  # its process exited
    rounds(heartbeats, clock, 1100, {0: 1})  # slot 0 forgotten, slot 1 not read: both left alone
    assert heartbeats.overdue({0: 1, 1: 1}) == {1: 99.75}  # read again: silent all along
    heartbeats.watch(0, 1)  # slot 0's replacement starts afresh, with the start allowance
    rounds(heartbeats, clock, 1160, {0: 1})
    clock.now += 0.25
    assert heartbeats.overdue({0: 1}) == {0: 60.25}


def test_the_loop_beats_and_a_blocked_loop_does_not() -> None:
    """The beat is a timer of the loop: nothing beats while a callback blocks the loop (as a
    thread would), and the loop beats again once it runs."""
    beats = multiprocessing.get_context("spawn").RawValue(ctypes.c_uint64)

    async def main() -> tuple[int, int, int]:
        beat_in_running_loop(beats)
        at_once = beats.value
        time.sleep(BEAT_SECONDS * 2.5)  # the loop is stuck in this callback
        after_block = beats.value
        async with asyncio.timeout(30):
            while beats.value == after_block:
                await asyncio.sleep(0.01)
        return at_once, after_block, beats.value

    assert asyncio.run(main()) == (1, 1, 2)
