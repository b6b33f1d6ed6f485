"""Bounded request heads, head-read deadlines and a cap on open connections (SPEC 13).

The gateway runs uvicorn with httptools (llhttp). Neither bounds what a client may send before
its head is complete:

- llhttp has no maximum head size, and httptools joins every header name and value from its
  pieces in memory (uvicorn joins the URL the same way): 300 connections each sending a 4 MB
  ``Host`` grew the process from 65 MB to 3.5 GB.
- uvicorn has no head-read deadline: its keep-alive timer is reset by every byte received, so a
  head trickled a byte at a time holds its connection (and file descriptor) forever; 21,000
  idle connections were never closed, and near 20,000 open files ``/healthz`` stopped answering.

``limited_protocol`` makes a subclass of uvicorn's ``HttpToolsProtocol`` that adds:

- A head limit (``head_bytes``, 16 KiB). The parser is fed only as many bytes as the current head
  may still take; a head that is not complete within them is answered
  ``431 {"error": "request_head_too_large"}`` and the connection closed, so no more than the limit
  is ever kept. The count starts again with each request of a keep-alive connection. Outside the
  head the same bound applies to what is neither body nor head (chunk-size lines with their
  extensions, trailers, which httptools also joins in memory).
- A head-read deadline (``head_timeout_seconds``): armed when the connection opens and when a
  response completes, cancelled only when a head is complete (not by each byte received). On
  expiry the connection is closed without an answer. uvicorn's keep-alive timer stays; whichever
  fires first closes the connection.
- A cap on open connections (``max_connections``), counted over every listener of the server
  (they share uvicorn's ``ServerState``): past it a new connection is answered
  ``503 {"error": "too_many_connections"}`` at once, before it sends anything, and closed, so the
  process keeps descriptors for its queue, its logs and its outbound requests.

uvicorn's own ``limit_concurrency`` is not used for the cap: it answers only once a head has
arrived (an idle socket keeps its descriptor meanwhile, which is the attack), and it logs a warning
for every request it refuses.

A refused head is answered, the sending side shut (``write_eof``), and what the client still sends
read and dropped for ``linger_seconds`` before the socket is closed: closing a socket with unread
data sends a reset, and the client would see a reset instead of the answer.

Bounds that hold with slack (open points): the bytes that follow a complete head within the same
read (a pipelined next head, chunk lines) are not counted, so such a head may take up to twice the
limit; a slow body after a complete head is bounded by ``GATEWAY_MAX_BODY_BYTES``, not by time.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

HEAD_BYTES = 16384  # SPEC 13: request heads over 16 KiB are refused
_TIMER_SLACK = 0.005  # seconds: loop timers may fire this much before their time (libuv: ms)


@dataclass(frozen=True)
class HttpLimits:
    """What one connection may hold: ``head_bytes`` of head, ``head_timeout_seconds`` to send it,
    and at most ``max_connections`` open at once over all listeners."""

    max_connections: int
    head_timeout_seconds: float = 10.0
    head_bytes: int = HEAD_BYTES
    linger_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.head_bytes < 1:
            raise ValueError("max_connections and head_bytes must be at least 1")
        if self.head_timeout_seconds <= 0 or self.linger_seconds < 0:
            raise ValueError("head_timeout_seconds must be above 0, linger_seconds not below")


def _refusal(
    status: int, error: str, detail: str | None, defaults: list[tuple[bytes, bytes]]
) -> bytes:
    body = json.dumps({"error": error, "detail": detail}).encode()
    lines = [STATUS_LINE[status]]
    lines.extend(name + b": " + value + b"\r\n" for name, value in defaults)
    lines.append(b"content-type: application/json\r\n")
    lines.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
    return b"".join(lines) + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of ``limits`` (set by ``limited_protocol``)."""

    limits: HttpLimits

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._in_head = True  # waiting for (the rest of) a head, not in a body
        self._head_used = 0  # bytes of the current head fed to the parser
        self._other_used = 0  # bytes since the head that were neither body nor a chunk boundary
        self._heads_done = 0  # heads completed, to tell whether one completed within a feed
        self._body_seen = 0  # body bytes within the current feed
        self._boundary = False  # a chunk line or a message ended within the current feed
        self._refused = False  # answered and lingering: what arrives is dropped
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_deadline: float | None = None  # loop time; None: no head is awaited

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            # Not added to the open connections: the refusal is not counted against the cap.
            # Closed at once, not after a linger: a lingering refusal would hold a descriptor
            # past the cap. It has sent nothing yet, so the close sends no reset.
            self._refused = True
            self.transport = transport
            transport.write(
                _refusal(503, "too_many_connections", None, self.server_state.default_headers)
            )
            transport.close()
            return
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_deadline = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._refused and self.flow is None:  # refused at connection_made: nothing else set up
            return
        super().connection_lost(exc)

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()
        return None

    # Reading

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if len(data) <= self._room():  # the usual read: one feed, nothing copied
            self._feed(data)
            return
        view = memoryview(data)
        while view:
            room = self._room()
            if not self._feed(view[:room]):
                return
            view = view[room:]

    def _room(self) -> int:
        """How many bytes the parser may take in one feed."""
        limit = self.limits.head_bytes
        return limit - self._head_used if self._in_head else limit

    def _feed(self, piece: bytes | memoryview) -> bool:
        """Feed ``piece`` to the parser and count it; False once the connection is done."""
        in_head, heads_done = self._in_head, self._heads_done
        self._body_seen = 0
        self._boundary = False
        super().data_received(piece)  # type: ignore[arg-type]  # httptools takes any buffer
        if self.parser is None or self.transport.is_closing() or self._refused:
            return False
        if self._heads_done != heads_done or self._boundary:
            # A head completed or a message or chunk line ended within the piece: where is not
            # known, so what followed it in the piece is not counted (see the module's notes).
            self._other_used = 0
            return True
        limit = self.limits.head_bytes
        if in_head:
            self._head_used += len(piece)
            if self._head_used >= limit:  # the whole limit and still no complete head
                self._refuse(431, "request_head_too_large", f"at most {limit} bytes")
                return False
        else:
            self._other_used += len(piece) - self._body_seen
            if self._other_used > limit:  # chunk lines or trailers, joined in memory
                self._refuse(431, "request_head_too_large", f"at most {limit} bytes")
                return False
        return True

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_used = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._other_used = 0
        self._heads_done += 1
        self._stop_head_clock()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_seen += len(body)
        super().on_body(body)

    def on_chunk_header(self) -> None:
        self._boundary = True

    def on_chunk_complete(self) -> None:
        self._boundary = True

    def on_message_complete(self) -> None:
        self._boundary = True
        self._in_head = True  # what comes next is the next request's head
        self._head_used = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # a complete head is waiting: it starts now
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm_head_timer()

    # Head deadline: one timer per connection at most, not one per request. Arming moves the
    # deadline, stopping clears it; the timer, when it fires, closes the connection only if the
    # deadline it finds has passed, and otherwise waits for it again (or ends).

    def _arm_head_timer(self) -> None:
        timeout = self.limits.head_timeout_seconds
        self._head_deadline = self.loop.time() + timeout
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(timeout, self._head_timer_fired)

    def _stop_head_clock(self) -> None:
        self._head_deadline = None

    def _head_timer_fired(self) -> None:
        self._head_timer = None
        deadline = self._head_deadline
        if deadline is None:
            return
        if self.loop.time() < deadline - _TIMER_SLACK:
            self._head_timer = self.loop.call_at(deadline, self._head_timer_fired)
            return
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    # Refusals

    def _refuse(self, status: int, error: str, detail: str | None) -> None:
        """Answer ``status`` with the JSON error, stop sending, drop what still arrives, and close
        after ``linger_seconds`` (or when the client closes first)."""
        self._refused = True
        self._stop_head_clock()
        if self.cycle is not None and not self.cycle.response_complete:
            # The application must not write into the refusal; it sees a disconnect.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            if self.cycle.response_started:  # an answer is under way: no second one
                self.transport.close()
                return
        self.transport.write(_refusal(status, error, detail, self.server_state.default_headers))
        try:
            self.transport.write_eof()
        except (NotImplementedError, RuntimeError, OSError):  # TLS cannot half-close
            self.transport.close()
            return
        self.loop.call_later(self.limits.linger_seconds, self.transport.close)


def limited_protocol(limits: HttpLimits) -> type[LimitedHttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` bounded by ``limits``. uvicorn makes
    each connection's protocol itself, so the limits ride on the class."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
