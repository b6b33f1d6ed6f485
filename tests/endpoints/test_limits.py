"""The bounded httptools protocol (endpoints/limits.py) in a real uvicorn server on loopback:
16 KiB heads, the head-read deadline, the connection cap (SPEC 13)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.raw_http import (
    connect,
    exchange,
    head_of,
    parse_responses,
    read_responses,
    read_until_closed,
    seconds_until_closed,
    send_ignoring_reset,
)
from tests.servers import served_in_thread
from tiktok_gateway.endpoints.limits import HEAD_BYTES, HttpLimits, limited_protocol

TIMEOUT = 0.5  # the head-read deadline of these servers


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 200 with the number of body bytes it read."""
    assert scope["type"] == "http"
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = json.dumps({"body": size}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(limits: HttpLimits) -> Iterator[int]:
    def config(app: ASGIApp, port: int) -> uvicorn.Config:
        return uvicorn.Config(
            app,
            loop="uvloop",
            http=limited_protocol(limits),
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            timeout_keep_alive=60,  # the head deadline, not uvicorn's keep-alive, closes here
        )

    with served_in_thread(echo_app, config) as url:
        yield int(url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    yield from serve(HttpLimits(max_connections=1000, head_timeout_seconds=TIMEOUT))


def assert_head_refused(answer: object) -> None:
    assert isinstance(answer, list)
    assert len(answer) == 1
    refusal = answer[0]
    assert refusal.status == 431
    assert refusal.headers["content-type"] == "application/json"
    assert refusal.headers["connection"] == "close"
    assert refusal.json() == {"error": "request_head_too_large", "detail": "at most 16384 bytes"}


def test_a_head_of_exactly_16_kib_is_served_one_byte_more_is_refused(port: int) -> None:
    [served] = exchange(port, head_of(HEAD_BYTES))
    assert served.status == 200
    with connect(port) as sock:
        sock.sendall(head_of(HEAD_BYTES + 1))
        assert_head_refused(parse_responses(read_until_closed(sock)))


def test_a_huge_head_is_answered_431_while_the_client_still_sends(port: int) -> None:
    bomb = b"GET / HTTP/1.1\r\nHost: " + b"h" * 4_000_000 + b"\r\n\r\n"
    with connect(port) as sock:
        send_ignoring_reset(sock, bomb)  # the server reads and drops the rest: no reset
        assert_head_refused(parse_responses(read_until_closed(sock)))


def test_a_long_url_counts_as_head(port: int) -> None:
    request = b"GET /" + b"u" * 20_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    assert_head_refused(exchange(port, request))


def test_each_request_of_a_keep_alive_connection_gets_the_whole_limit(port: int) -> None:
    with connect(port) as sock:
        for _ in range(3):
            sock.sendall(head_of(HEAD_BYTES))
            [served] = read_responses(sock, 1)
            assert served.status == 200
        sock.sendall(head_of(HEAD_BYTES + 1))
        assert_head_refused(parse_responses(read_until_closed(sock)))


def test_bodies_are_not_counted_as_head(port: int) -> None:
    body = b"b" * 200_000
    request = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    [served] = exchange(port, request)
    assert served.status == 200
    assert served.json() == {"body": len(body)}


def test_chunked_bodies_are_served_but_huge_chunk_lines_and_trailers_refused(port: int) -> None:
    chunks = b"".join(b"%x\r\n%s\r\n" % (1000, b"c" * 1000) for _ in range(100))
    start = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    [served] = exchange(port, start + chunks + b"0\r\n\r\n")
    assert served.status == 200
    assert served.json() == {"body": 100_000}
    trailer = start + b"5\r\nhello\r\n0\r\nX-Trailer: " + b"t" * 1_000_000 + b"\r\n\r\n"
    assert_head_refused(exchange(port, trailer))
    extension = start + b"5;" + b"e" * 1_000_000 + b"\r\nhello\r\n0\r\n\r\n"
    assert_head_refused(exchange(port, extension))


def test_pipelined_requests_are_all_served(port: int) -> None:
    answers = exchange(port, head_of(1000) * 5, count=5)
    assert [answer.status for answer in answers] == [200] * 5


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.integers(HEAD_BYTES - 64, HEAD_BYTES + 64) | st.integers(100, 3 * HEAD_BYTES),
    cuts=st.lists(st.integers(1, 3 * HEAD_BYTES), max_size=6),
)
def test_the_limit_holds_however_the_head_is_split(port: int, size: int, cuts: list[int]) -> None:
    head = head_of(size)
    with connect(port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        offset = 0
        for cut in sorted(set(cuts)):
            if offset < cut < len(head):
                send_ignoring_reset(sock, head[offset:cut])
                offset = cut
                time.sleep(0.001)  # separate reads on the server
        send_ignoring_reset(sock, head[offset:])
        [answer] = read_responses(sock, 1)
    assert answer.status == (200 if size <= HEAD_BYTES else 431)


def test_a_trickled_head_is_closed_at_the_deadline(port: int) -> None:
    with connect(port) as sock:
        started = time.monotonic()
        sock.settimeout(0.05)
        for byte in b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"s" * 100:
            try:
                sock.send(bytes([byte]))
                if sock.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        else:
            pytest.fail("still open after 5 s of trickling")
        elapsed = time.monotonic() - started
    assert TIMEOUT - 0.05 <= elapsed <= TIMEOUT + 0.5


def test_a_silent_connection_is_closed_at_the_deadline_without_an_answer(port: int) -> None:
    with connect(port) as sock:
        started = time.monotonic()
        assert read_until_closed(sock, timeout=5) == b""
        assert TIMEOUT - 0.05 <= time.monotonic() - started <= TIMEOUT + 0.5


def test_an_idle_keep_alive_connection_is_closed_at_the_deadline(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(head_of(200))
        [served] = read_responses(sock, 1)
        assert served.status == 200
        assert TIMEOUT - 0.05 <= seconds_until_closed(sock, 5) <= TIMEOUT + 0.5


def test_past_the_cap_a_connection_is_answered_503_at_once() -> None:
    for port in serve(HttpLimits(max_connections=3, head_timeout_seconds=5)):
        held = [connect(port) for _ in range(3)]
        time.sleep(0.1)  # accepted by the server
        with connect(port) as extra:  # sends nothing
            started = time.monotonic()
            [refused] = parse_responses(read_until_closed(extra, timeout=2))
            assert time.monotonic() - started < 0.5
        assert refused.status == 503
        assert refused.headers["connection"] == "close"
        assert refused.json() == {"error": "too_many_connections", "detail": None}
        held.pop().close()
        time.sleep(0.1)
        [served] = exchange(port, head_of(100))  # room again
        assert served.status == 200
        for sock in held:
            sock.close()
