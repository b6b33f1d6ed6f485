"""The real Redis server the Redis queue tests use (loopback; `.ci/run` starts it when down).

Each test gets its own key prefix and deletes its keys afterwards, so tests never see each
other's data and a developer's own keys in the same database are left alone.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.system.processes import free_port

# Database 15, not 0: the tests write and delete keys, a developer's data usually lives in 0.
URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
START = (
    "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no"
    " (or: .ci/ensure-redis)"
)


def new_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


def require() -> None:
    """Fail the test with the command to run when no Redis answers at ``URL``."""
    client = redis.Redis.from_url(URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        raise AssertionError(f"no Redis at {URL} ({error}); start one: {START}") from error
    finally:
        client.close()


def delete_prefix(prefix: str) -> None:
    """Delete every key of the queue with key prefix ``prefix``."""
    client = redis.Redis.from_url(URL)
    try:
        keys = list(client.scan_iter(match=f"{{{prefix}}}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@dataclass
class PrivateRedis:
    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def private_server(
    directory: Path, *, port: int = 0, append_only: bool = False
) -> Iterator[PrivateRedis]:
    """A Redis server of the test's own (``redis-server`` on loopback), stopped afterwards: for
    tests that stop the server or need its settings. ``append_only``: ``appendonly yes`` with
    ``appendfsync always`` in ``directory``, the settings that make a queue survive a crash."""
    port = port or free_port()
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    args += ["--dir", str(directory), "--appendonly", "yes" if append_only else "no"]
    args += ["--appendfsync", "always"] if append_only else []
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()
        yield PrivateRedis(url, process)
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)
