"""``serve --workers 2``, real processes: one port answered by two worker processes; kill -9 of
one under load loses no acknowledged event, and no event is delivered by two processes at once;
the supervisor replaces it; /metrics adds up over the workers; SIGTERM stops all with exit 0.
With the SQLite queue and with Redis."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests import redis_server
from tests.system.processes import (
    delivering_to,
    free_port,
    missing_event_ids,
    missing_forwards,
    purchase_hit,
    start,
    start_sandbox,
    stop,
    wait_until_up,
)
from tiktok_gateway.cli.heartbeats import BEAT_SECONDS

TOKEN = "workers-test-token"
LEASE_SECONDS = 2.0  # delivering_to's: what a killed worker leased returns after this


def worker_pids(parent: int) -> set[int]:
    """The supervisor's worker processes (multiprocessing's spawn children; not its resource
    tracker)."""
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except FileNotFoundError:
        return set()
    pids = set()
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in command:
            pids.add(int(child))
    return pids


def wait_for_workers(parent: int, count: int, *, not_in: set[int] = set()) -> set[int]:  # noqa: B006
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = worker_pids(parent)
        if len(pids) == count and not pids & not_in:
            return pids
        time.sleep(0.1)
    raise TimeoutError(f"{count} workers of {parent} (not {not_in}): {worker_pids(parent)}")


def written_lines(log: Path) -> list[str]:
    """The lines of ``log`` written in full: a process may be writing the last one."""
    return log.read_text().split("\n")[:-1]


def answering_pids(log: Path) -> Counter[int]:
    """Hits answered, by the worker process that logged them (its ``worker`` key)."""
    pids: Counter[int] = Counter()
    for line in written_lines(log):
        if line.startswith("{") and '"event": "hit"' in line:
            pids[json.loads(line)["worker"]] += 1
    return pids


def accepted_hits(admin_url: str) -> float:
    text = httpx.get(f"{admin_url}/metrics").text
    found = re.search(r'^gateway_hits_total\{outcome="accepted",source="ga4"\} (\S+)$', text, re.M)
    assert found, text
    return float(found[1])


def send(gateway_url: str, indexes: range, acknowledged: list[int], threads: int = 4) -> None:
    """A hit per index, each on a new connection (so any worker may take it); ``acknowledged``
    gets the indexes answered 2xx."""
    fresh = httpx.Limits(max_keepalive_connections=0)  # a new connection for every hit
    local = threading.local()
    clients: list[httpx.Client] = []

    def one(index: int) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=gateway_url, limits=fresh, timeout=10)
            clients.append(local.client)
        try:
            answer = local.client.get(f"/g/collect?{purchase_hit(index)}")
        except httpx.TransportError:  # the worker holding the connection was killed
            return
        if answer.is_success:
            acknowledged.append(index)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, indexes))
    for client in clients:
        client.close()


@pytest.fixture(params=["sqlite", "redis"])
def queue_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"GATEWAY_DATA_DIR": str(tmp_path / "data")}
        return
    redis_server.require()
    prefix = redis_server.new_prefix()
    yield {
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_QUEUE_URL": f"{redis_server.URL}?key_prefix={prefix}",
    }
    redis_server.delete_prefix(prefix)


def test_two_workers_share_a_port_survive_a_kill_and_stop_together(
    tmp_path: Path, queue_env: dict[str, str]
) -> None:
    sandbox_port, gateway_port, admin_port = free_port(), free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    admin_url = f"http://127.0.0.1:{admin_port}"
    log = tmp_path / "processes.log"
    sandbox = start_sandbox(sandbox_port, TOKEN, log)
    env = delivering_to(sandbox_url, TOKEN, "CWORKERS") | queue_env
    env |= {"GATEWAY_PORT": str(gateway_port), "GATEWAY_ADMIN_PORT": str(admin_port)}
    env |= {"GATEWAY_LOG_FORMAT": "json"}
    gateway = start(["serve", "--workers", "2"], env, log)
    try:
        first = wait_for_workers(gateway.pid, 2)
        wait_until_up(f"{gateway_url}/healthz", gateway)
        assert "workers: 2 processes sharing both listeners and the queue" in log.read_text()

        # One port, two processes: hits on new connections are answered by both.
        warm: list[int] = []
        send(gateway_url, range(200), warm)
        assert sorted(warm) == list(range(200))
        assert set(answering_pids(log)) == first, answering_pids(log)
        assert accepted_hits(admin_url) == 200  # whichever worker answers counts both

        # Kill -9 one worker while hits arrive.
        acknowledged: list[int] = []
        sender = threading.Thread(target=send, args=(gateway_url, range(200, 1200), acknowledged))
        sender.start()
        while len(acknowledged) < 300 and sender.is_alive():
            time.sleep(0.01)
        victim = min(first)
        killed_at = time.time()
        os.kill(victim, signal.SIGKILL)
        killed_during = len(acknowledged)
        sender.join(timeout=120)
        assert killed_during < 900  # under load: most hits were still to come
        assert not sender.is_alive()
        replaced = wait_for_workers(gateway.pid, 2, not_in={victim})
        assert len(replaced & first) == 1  # the survivor, and a new one

        orders = {f"order-{index}" for index in [*warm, *acknowledged]}
        assert len(acknowledged) > 900  # the kill cost at most the hits the victim held
        lost = missing_event_ids(sandbox_url, orders, timeout=60)
        assert lost == set(), f"lost {len(lost)}: {sorted(lost)[:10]}"
        assert missing_forwards(sandbox_url, orders, timeout=60) == set()

        # One process at a time: an event delivered twice was sent first by the victim before
        # it died, then again after its lease ran out, never twice in a moment.
        listing = httpx.get(f"{sandbox_url}/sandbox/events", params={"limit": 10_000}).json()
        times: dict[str, list[float]] = {}
        for stored in listing["events"]:
            times.setdefault(stored["event"]["event_id"], []).append(stored["received_at"])
        twice = {event_id: sorted(seen) for event_id, seen in times.items() if len(seen) > 1}
        for event_id, seen in twice.items():
            assert len(seen) == 2, (event_id, seen)
            assert seen[0] <= killed_at + 0.05, (event_id, seen, killed_at)
            assert seen[1] - seen[0] >= LEASE_SECONDS / 2, (event_id, seen)

        # /metrics adds up over every worker, the killed one included: the hits answered 2xx
        # are all counted (the victim may have counted a few whose answer it never sent).
        total = accepted_hits(admin_url)
        assert 200 + len(acknowledged) <= total <= 1200
        more: list[int] = []
        send(gateway_url, range(1200, 1300), more)
        assert len(more) == 100
        assert accepted_hits(admin_url) == total + 100
        # The queue's gauges are the answering worker's reading: one series, not one a worker.
        text = httpx.get(f"{admin_url}/metrics").text
        assert len(re.findall(r"^gateway_queue_depth ", text, re.M)) == 1

        assert stop(gateway, timeout=30) == 0
        assert all(not Path(f"/proc/{pid}").exists() for pid in replaced)
    finally:
        for process in (gateway, sandbox):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    """No worker outlives the parent: each reads EOF on its pipe and stops gracefully."""
    port, admin_port = free_port(), free_port()
    env = {"GATEWAY_PORT": str(port), "GATEWAY_ADMIN_PORT": str(admin_port)}
    env |= {"GATEWAY_DATA_DIR": str(tmp_path / "data"), "TIKTOK_PIXEL_CODE": "CWORKERS"}
    gateway = start(["serve", "--workers", "2"], env, tmp_path / "processes.log")
    try:
        workers = wait_for_workers(gateway.pid, 2)
        wait_until_up(f"http://127.0.0.1:{port}/healthz", gateway)
        assert stop(gateway, signal.SIGKILL) == -signal.SIGKILL
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in workers):
            assert time.monotonic() < deadline, "a worker outlived its supervisor"
            time.sleep(0.1)
        with socket.socket() as again:  # nothing holds the port any more
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", port))
            again.listen()
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()


def supervisor_lines(log: Path, event: str) -> list[dict[str, object]]:
    """The JSON lines of ``event`` in ``log``."""
    return [
        json.loads(line)
        for line in written_lines(log)
        if line.startswith("{") and f'"event": "{event}"' in line
    ]


def wait_for_line(log: Path, event: str, worker: int, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in supervisor_lines(log, event):
            if line.get("worker") == worker:
                return line
        time.sleep(0.1)
    raise TimeoutError(f"no {event} line for worker {worker}")


HUNG_TIMEOUT = 3.0  # GATEWAY_WORKER_TIMEOUT_SECONDS of the test: detection, not a bound on it


def answered_by(log: Path, answer: httpx.Response) -> int:
    """The worker process that logged the hit of ``answer`` (by its ``X-Request-ID``)."""
    request_id = answer.headers["X-Request-ID"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in supervisor_lines(log, "hit"):
            if line["request_id"] == request_id:
                worker = line["worker"]
                assert isinstance(worker, int)
                return worker
        time.sleep(0.1)
    raise TimeoutError(f"no hit line for {request_id}")


def test_a_hung_worker_is_killed_and_replaced(tmp_path: Path) -> None:
    """SIGSTOP one worker (its loop stops, the process lives on): the supervisor kills it once
    it has been silent for the timeout, says so in one line and starts another; the other
    worker, idle but beating, is left alone; a hit on a keep-alive connection the stopped
    worker held fails instead of hanging for good; hits are answered 2xx afterwards."""
    gateway_port, admin_port = free_port(), free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    log = tmp_path / "processes.log"
    env = {"GATEWAY_PORT": str(gateway_port), "GATEWAY_ADMIN_PORT": str(admin_port)}
    env |= {"GATEWAY_DATA_DIR": str(tmp_path / "data"), "TIKTOK_PIXEL_CODE": "CWORKERS"}
    env |= {"GATEWAY_GA4_ENDPOINT": "sandbox", "GATEWAY_LOG_FORMAT": "json"}
    env |= {"GATEWAY_WORKER_TIMEOUT_SECONDS": str(HUNG_TIMEOUT)}
    gateway = start(["serve", "--workers", "2"], env, log)
    victim = 0
    clients: list[httpx.Client] = []
    try:
        first = wait_for_workers(gateway.pid, 2)
        wait_until_up(f"{gateway_url}/healthz", gateway)
        for pid in first:  # serving, so past the start allowance: its silence counts at once
            wait_for_line(log, "worker_started", pid)

        # A keep-alive connection of each worker (as a reverse proxy keeps them): new
        # connections go to whichever worker accepts, a stopped one accepts none, but the
        # connections it holds are its own.
        pinned: dict[int, httpx.Client] = {}
        for index in range(100):
            client = httpx.Client(base_url=gateway_url, timeout=60)
            clients.append(client)
            answer = client.get(f"/g/collect?{purchase_hit(index)}")
            assert answer.is_success
            pinned.setdefault(answered_by(log, answer), client)
            if len(pinned) == 2:
                break
        assert set(pinned) == first

        victim, survivor = sorted(first)
        os.kill(victim, signal.SIGSTOP)
        stopped_at = time.monotonic()
        with pytest.raises(httpx.TransportError) as failed:
            pinned[victim].get(f"/g/collect?{purchase_hit(100)}")
        assert not isinstance(failed.value, httpx.TimeoutException)  # the kill closed it
        replaced = wait_for_workers(gateway.pid, 2, not_in={victim})
        detected_after = time.monotonic() - stopped_at
        assert survivor in replaced  # the beating worker was not taken for a hung one
        (newcomer,) = replaced - {survivor}
        # Not before its silence reached the timeout: the last beat came about a beat before
        # the stop (half a second more allowed for a loop that a loaded machine delayed).
        assert detected_after >= HUNG_TIMEOUT - BEAT_SECONDS - 0.5
        assert not Path(f"/proc/{victim}").exists()  # killed and reaped

        wait_for_line(log, "worker_hung", victim)  # a thread writes the supervisor's lines
        hung = supervisor_lines(log, "worker_hung")
        assert len(hung) == 1, hung
        assert hung[0]["worker"] == victim
        assert hung[0]["level"] == "warning"
        silent = hung[0]["silent_seconds"]
        assert isinstance(silent, float)
        assert HUNG_TIMEOUT <= silent <= detected_after + BEAT_SECONDS + 0.5  # as above
        assert supervisor_lines(log, "worker_exited") == []  # one line, not two

        wait_for_line(log, "worker_started", newcomer)
        assert pinned[survivor].get(f"/g/collect?{purchase_hit(101)}").is_success
        after: list[int] = []
        send(gateway_url, range(200, 400), after)
        assert sorted(after) == list(range(200, 400))  # every hit answered 2xx
        assert answering_pids(log)[newcomer] > 0, answering_pids(log)  # the replacement serves
        assert survivor in wait_for_workers(gateway.pid, 2)  # still no false alarm
        for client in clients:
            client.close()
        assert stop(gateway, timeout=30) == 0
    finally:
        for client in clients:
            client.close()
        if victim and Path(f"/proc/{victim}").exists():  # without the supervisor's kill
            os.kill(victim, signal.SIGKILL)
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()
