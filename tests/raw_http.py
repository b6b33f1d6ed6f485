"""Raw HTTP/1.1 over sockets, for what an HTTP client library will not send: oversized or
trickled heads, idle connections, chunk lines and trailers of any size."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

PAD = "X-Pad"


def head_of(size: int, path: str = "/", host: str = "shop.example.com", extra: str = "") -> bytes:
    """A ``GET`` head of exactly ``size`` bytes (blank line included), padded with ``X-Pad``."""
    start = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}{PAD}: "
    fill = size - len(start) - len("\r\n\r\n")
    if fill < 0:
        raise ValueError(f"a head of {size} bytes cannot hold {start!r}")
    return (start + "a" * fill + "\r\n\r\n").encode()


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (a reset ends it too); raises
    ``TimeoutError`` if it is still open after ``timeout``."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def seconds_until_closed(sock: socket.socket, timeout: float) -> float:
    """How long until the server closes ``sock`` (what it sends is dropped); ``TimeoutError``
    if it does not within ``timeout``."""
    started = time.monotonic()
    read_until_closed(sock, timeout)
    return time.monotonic() - started


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_responses(raw: bytes) -> list[Response]:
    """The complete responses at the start of ``raw`` (bodies with Content-Length only, as the
    gateway sends them); an incomplete one at the end is left out."""
    responses = []
    while b"\r\n\r\n" in raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            break
        responses.append(Response(status, headers, rest[:length]))
        raw = rest[length:]
    return responses


def read_responses(sock: socket.socket, count: int, timeout: float = 5.0) -> list[Response]:
    """The next ``count`` responses on ``sock`` (fewer if the server closes first)."""
    sock.settimeout(timeout)
    raw = b""
    while len(responses := parse_responses(raw)) < count:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        raw += chunk
    return responses


def exchange(port: int, data: bytes, count: int = 1, timeout: float = 5.0) -> list[Response]:
    """Send ``data`` on a new connection and read ``count`` responses (fewer if it closes)."""
    with connect(port, timeout) as sock:
        send_ignoring_reset(sock, data)
        return read_responses(sock, count, timeout)


def send_ignoring_reset(sock: socket.socket, data: bytes) -> None:
    """Send ``data``; a server that answered and closed before reading it all ends the sending."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)
