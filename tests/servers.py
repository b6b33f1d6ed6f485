"""A real uvicorn server in a background thread, on a free loopback port, for tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import uvicorn
from starlette.types import ASGIApp

App = TypeVar("App", bound=ASGIApp)


def loopback_socket() -> socket.socket:
    """A TCP socket bound to a free port of 127.0.0.1 (not listening yet): its port is known
    before the server starts, so it is never raced for."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def served_in_thread(
    app: App,
    config_for: Callable[[App, int], uvicorn.Config],
    sockets: list[socket.socket] | None = None,
) -> Iterator[str]:
    """Serve ``app`` with ``config_for(app, port)`` until the block ends, on ``sockets`` (one
    new ``loopback_socket`` when not given; all of them are closed at the end); yields the base
    URL of the first."""
    sockets = sockets or [loopback_socket()]
    port = sockets[0].getsockname()[1]
    server = uvicorn.Server(config_for(app, port))
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "the server thread died"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        for sock in sockets:
            sock.close()
    assert not thread.is_alive()
