"""The network sender of GA4 forwards: HTTP/1.1 over asyncio, keep-alive connections per origin,
each answer parsed by httptools (llhttp, the parser uvicorn serves the gateway's own requests
with).

Why not a general client: a forward is one request per hit, so the client's CPU per request is
paid once per hit. aiohttp costs about 85 us of CPU per request at 32 at once on the benchmark
machine (httpx 600-1,500 us), as much as parsing and mapping the hit; what a forward needs costs
a fifth of that here (``bench/forward_client.py`` measures both). What it needs is little:

- ``POST`` of a body with the forward's headers, and ``Host`` and ``Content-Length``: nothing
  of the client's own (Google drops hits whose user agent looks like a bot).
- The answer's status and ``Retry-After``; its body is read and dropped (``Content-Length``,
  chunked, or up to the connection's end), at most ``MAX_RESPONSE_BYTES`` of it: past that the
  status stands and the connection is closed.
- ``http`` and ``https`` (TLS with the system's trust store and the host's name checked); no
  proxies, redirects (a 3xx is an answer, as the classifier wants), cookies or compression.
- A deadline for the whole exchange, connecting included. A connection goes back to the pool
  only after a complete answer that allows keep-alive; one idle for ``IDLE_SECONDS`` is closed
  rather than reused (servers close idle connections, and a request on one they closed fails).
  A kept connection that turns out closed before any byte of its answer came is replaced once
  by a new one: the server never read that request.
- At most ``connections`` exchanges at once (so at most that many connections per origin).

Nothing raises but cancellation: a failure is an ``Answer.error`` (``OSError`` for connecting
and closed connections, ``TimeoutError``, ``ssl.SSLError``, ``httptools.HttpParserError`` for
an answer that is no HTTP, ``ValueError`` for a URL or header that cannot be sent).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import Final, cast
from urllib.parse import urlsplit

import httptools

from tiktok_gateway.tags.ga4.sender import Answer, Headers

IDLE_SECONDS: Final = 30.0
MAX_RESPONSE_BYTES: Final = 1 << 20
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

Origin = tuple[str, str, int]  # scheme, host, port


class ConnectionClosed(ConnectionError):
    """The server closed the connection before its answer was complete."""


class _Connection(asyncio.Protocol):
    """One connection, one exchange at a time; the parser keeps its state across answers."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Answer] | None = None
        self._status: int | None = None
        self._retry_after: str | None = None
        self._received = 0
        self.answered_bytes = False  # some byte of the current answer arrived
        self.reusable = False
        self.closed = False
        self.idle_since = 0.0

    async def exchange(self, request: bytes) -> Answer:
        """Send ``request`` and wait for the complete answer (its status, Retry-After)."""
        if self._transport is None or self.closed:
            raise ConnectionClosed("the connection is closed")
        self._answer = self._loop.create_future()
        self._status = self._retry_after = None
        self._received = 0
        self.answered_bytes = self.reusable = False
        self._transport.write(request)
        try:
            return await self._answer
        finally:
            self._answer = None

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not subclasses of asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():  # bytes nobody asked for: not reusable
            self.close()
            return
        self.answered_bytes = True
        self._received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(error)
            return
        if self._received > MAX_RESPONSE_BYTES and not self._answer.done():
            if self._status is None:  # not even a head in a megabyte
                self._fail(httptools.HttpParserError("the answer's head is too long"))
            else:
                self._answer.set_result(Answer(self._status, self._retry_after))
                self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._status is not None:  # a body that ends with the connection: the status stands
            answer.set_result(Answer(self._status, self._retry_after))
        else:
            answer.set_exception(ConnectionClosed("the server closed the connection"))

    # httptools --------------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self._retry_after = value.decode("latin-1").strip()

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_message_complete(self) -> None:
        if self._status is not None and self._status < 200:  # 1xx: the answer is still to come
            self._status = self._retry_after = None
            return
        if self._answer is not None and not self._answer.done():
            self.reusable = self._parser.should_keep_alive()
            self._answer.set_result(Answer(self._status, self._retry_after))

    def _fail(self, error: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self.close()


def _request(target: str, host: str, headers: Headers, body: bytes) -> bytes:
    """The request's bytes; ``ValueError`` for a header that cannot go on the wire as given."""
    head = [f"POST {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} holds a line break")
        head.append(f"{name}: {value}")
    head.append(f"Content-Length: {len(body)}\r\n\r\n")
    return "\r\n".join(head).encode("ascii") + body  # UnicodeEncodeError is a ValueError


def _split(url: str) -> tuple[Origin, str, str]:
    """(origin, request target, Host header) of an ``http``/``https`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        raise ValueError(f"not an http(s) URL without credentials: {parts.scheme}://...")
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, port), target, parts.netloc


class Http1Sender:
    """Posts forwards over kept-alive HTTP/1.1 connections (the module docstring says how).

    ``ssl_context``: for ``https`` (default: the system's trust store, host names checked).
    Make and use it inside one event loop."""

    def __init__(self, connections: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._slots = asyncio.Semaphore(max(connections, 1))
        self._ssl = ssl_context
        self._idle: dict[Origin, deque[_Connection]] = {}

    async def post(self, url: str, headers: Headers, body: bytes, timeout: float) -> Answer:
        try:
            origin, target, host = _split(url)
            request = _request(target, host, headers, body)
            async with self._slots, asyncio.timeout(timeout):
                return await self._send(origin, request)
        except (OSError, TimeoutError, ValueError, httptools.HttpParserError) as error:
            return Answer(error=error)  # ssl.SSLError and ConnectionClosed are OSErrors

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def _send(self, origin: Origin, request: bytes) -> Answer:
        kept = self._kept(origin)
        if kept is not None:
            try:
                return await self._exchange(origin, kept, request)
            except ConnectionClosed:
                if kept.answered_bytes:
                    raise
                # The server had closed the kept connection and never read this request.
        return await self._exchange(origin, await self._connect(origin), request)

    def _kept(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the likeliest to be open
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        _, connection = await loop.create_connection(
            lambda: _Connection(loop), host, port, ssl=tls, server_hostname=host if tls else None
        )
        return connection

    async def _exchange(self, origin: Origin, connection: _Connection, request: bytes) -> Answer:
        try:
            answer = await connection.exchange(request)
        except BaseException:  # a failure, the deadline or a cancellation mid-answer
            connection.close()
            raise
        if connection.reusable and not connection.closed:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(origin, deque()).append(connection)
        else:
            connection.close()
        return answer
