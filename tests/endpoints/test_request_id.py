"""Request ids: 16 hex digits, never repeated in a process, a new random start per process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading

import pytest

from tiktok_gateway.endpoints import request_id
from tiktok_gateway.endpoints.request_id import new_request_id

HEX16 = re.compile(r"[0-9a-f]{16}")


def test_ids_are_16_hex_digits_and_never_repeat() -> None:
    ids = [new_request_id() for _ in range(100_000)]
    assert all(HEX16.fullmatch(one) for one in ids)
    assert len(set(ids)) == len(ids)


def test_threads_never_get_the_same_id() -> None:
    found: list[list[str]] = [[] for _ in range(4)]

    def draw(into: list[str]) -> None:
        into.extend(new_request_id() for _ in range(20_000))

    threads = [threading.Thread(target=draw, args=(into,)) for into in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [one for into in found for one in into]
    assert len(set(ids)) == len(ids) == 80_000


def test_the_count_wraps_within_16_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request_id, "_counter", iter([2**64 - 1, 2**64]))
    assert [new_request_id(), new_request_id()] == ["f" * 16, "0" * 16]


def _ids_of_a_new_process() -> list[str]:
    code = "from tiktok_gateway.endpoints.request_id import new_request_id as n; print(n(), n())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_each_process_starts_somewhere_else() -> None:
    first, second = _ids_of_a_new_process(), _ids_of_a_new_process()
    assert int(first[1], 16) - int(first[0], 16) == 1
    assert set(first).isdisjoint(second)
    assert set(first).isdisjoint({new_request_id()})


def test_a_forked_child_does_not_continue_its_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id, then leave without pytest's clean-up
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    mine = new_request_id()
    assert HEX16.fullmatch(child)
    # Without the re-seed the child would have drawn the very id the parent draws next.
    assert abs(int(mine, 16) - int(child, 16)) > 1_000_000
