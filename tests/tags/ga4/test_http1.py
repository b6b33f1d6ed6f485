"""The GA4 forwards' HTTP/1.1 sender against real servers on loopback (plain TCP and TLS), each
answering as a test needs: the bytes sent, keep-alive, closed and stale connections, body
framings, 1xx, deadlines, garbage, the connection bound."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httptools
import pytest
import uvloop

from tiktok_gateway.tags.ga4.http1 import MAX_RESPONSE_BYTES, Http1Sender
from tiktok_gateway.tags.ga4.sender import Answer

T = TypeVar("T")
Handler = Callable[["Server", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
HEADERS = [("user-agent", "Mozilla/5.0 (X11) Chrome/136"), ("accept-language", "de-DE")]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """On uvloop, as ``serve`` runs the gateway."""
    return uvloop.run(coroutine)


class Server:
    """A loopback server running ``handler`` per connection; counts connections and requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext | None = None) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One whole request (head and Content-Length body), or None at the connection's end."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self.handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


def answering(*answers: bytes) -> Handler:
    """Answers the requests of each connection with ``answers`` in turn (the last repeats)."""

    async def handler(
        server: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> None:
        index = 0
        while await server.read_request(reader) is not None:
            w.write(answers[min(index, len(answers) - 1)])
            await w.drain()
            index += 1

    return handler


async def posting(
    handler: Handler, count: int = 1, *, timeout: float = 5.0, connections: int = 4
) -> tuple[Server, list[Answer]]:
    server = await Server(handler).start()
    sender = Http1Sender(connections)
    url = f"http://127.0.0.1:{server.port}/g/collect?v=2&tid=G-1"
    try:
        answers = [await sender.post(url, HEADERS, b"en=a", timeout) for _ in range(count)]
    finally:
        await sender.aclose()
        await server.stop()
    return server, answers


def test_the_request_is_the_forward_alone_and_the_answer_is_read() -> None:
    answer = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After:  7 \r\nContent-Length: 2\r\n\r\nno"
    server, answers = run(posting(answering(answer)))
    assert answers == [Answer(429, "7")]
    assert server.requests == [
        b"POST /g/collect?v=2&tid=G-1 HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{server.port}\r\n".encode()
        + b"user-agent: Mozilla/5.0 (X11) Chrome/136\r\naccept-language: de-DE\r\n"
        + b"Content-Length: 4\r\n\r\nen=a"
    ]


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_one_connection_carries_every_request_while_the_server_keeps_it(loop: str) -> None:
    runner = run if loop == "uvloop" else asyncio.run
    server, answers = runner(posting(answering(NO_CONTENT), 5))
    assert answers == [Answer(204)] * 5
    assert server.connections == 1


def test_chunked_answers_keep_the_connection_and_close_delimited_ones_end_it() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    server, answers = run(posting(answering(chunked), 3))
    assert (answers, server.connections) == ([Answer(200)] * 3, 1)

    async def until_close(
        server: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> None:
        await server.read_request(reader)
        w.write(b"HTTP/1.0 200 OK\r\n\r\nthe body ends with the connection")
        await w.drain()

    server, answers = run(posting(until_close, 3))
    assert (answers, server.connections) == ([Answer(200)] * 3, 3)


def test_a_kept_connection_the_server_dropped_is_replaced_and_the_request_sent_again() -> None:
    async def drops_the_second(
        server: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> None:
        await server.read_request(reader)
        w.write(NO_CONTENT)
        await w.drain()
        if server.connections == 1:  # the first connection: gone without an answer
            await server.read_request(reader)
            return
        while await server.read_request(reader) is not None:
            w.write(NO_CONTENT)
            await w.drain()

    server, answers = run(posting(drops_the_second, 3))
    assert answers == [Answer(204)] * 3
    assert (server.connections, len(server.requests)) == (2, 4)


def test_interim_answers_are_skipped() -> None:
    _, answers = run(posting(answering(b"HTTP/1.1 100 Continue\r\n\r\n" + NO_CONTENT)))
    assert answers == [Answer(204)]


def test_no_answer_within_the_deadline_is_a_timeout_and_the_connection_is_not_kept() -> None:
    async def silent_once(
        server: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> None:
        if server.connections == 1:
            await server.read_request(reader)
            await asyncio.sleep(10)
        await answering(NO_CONTENT)(server, reader, w)

    began = time.monotonic()
    server, answers = run(posting(silent_once, 2, timeout=0.3))
    assert isinstance(answers[0].error, TimeoutError)
    assert answers[1] == Answer(204)
    assert server.connections == 2
    assert time.monotonic() - began < 3


def test_failures_are_answers_with_the_error() -> None:
    async def scenario() -> list[Answer]:
        sender = Http1Sender(2)
        garbage = await Server(answering(b"NOT HTTP AT ALL\r\n\r\n")).start()
        closed = await Server(answering(NO_CONTENT)).start()
        await closed.stop()
        await asyncio.sleep(0.05)
        answers = [
            await sender.post(f"http://127.0.0.1:{garbage.port}/g/collect", [], b"", 2),
            await sender.post(f"http://127.0.0.1:{closed.port}/g/collect", [], b"", 2),
            await sender.post("ftp://127.0.0.1/g/collect", [], b"", 2),
            await sender.post("http://user:pw@127.0.0.1/g/collect", [], b"", 2),
        ]
        await garbage.stop()
        return answers

    garbage, refused, scheme, credentials = run(scenario())
    assert isinstance(garbage.error, httptools.HttpParserError)
    assert isinstance(refused.error, ConnectionRefusedError)
    assert isinstance(scheme.error, ValueError)
    assert isinstance(credentials.error, ValueError)


@pytest.mark.parametrize(
    "headers",
    [[("user-agent", "a\r\nX-Injected: 1")], [("x\ny", "1")], [("user-agent", "caf\u00e9")]],
)
def test_a_header_that_cannot_go_on_the_wire_sends_nothing(headers: list[tuple[str, str]]) -> None:
    async def scenario() -> tuple[Server, Answer]:
        server = await Server(answering(NO_CONTENT)).start()
        sender = Http1Sender(1)
        answer = await sender.post(f"http://127.0.0.1:{server.port}/", headers, b"", 2)
        await server.stop()
        return server, answer

    server, answer = run(scenario())
    assert isinstance(answer.error, ValueError)
    assert server.connections == 0


def test_an_endless_answer_is_cut_after_its_bound_with_its_status() -> None:
    async def endless(
        server: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> None:
        await server.read_request(reader)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(2 * MAX_RESPONSE_BYTES // len(chunk)):
            w.write(chunk)
            await w.drain()
        await asyncio.sleep(10)

    server, answers = run(posting(endless, 2, timeout=5))
    assert answers == [Answer(200)] * 2
    assert server.connections == 2  # a cut answer's connection is not used again


def test_no_more_connections_than_allowed_however_many_wait() -> None:
    async def slow(server: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while await server.read_request(reader) is not None:
            await asyncio.sleep(0.05)
            w.write(NO_CONTENT)
            await w.drain()

    async def scenario() -> tuple[Server, list[Answer]]:
        server = await Server(slow).start()
        sender = Http1Sender(2)
        url = f"http://127.0.0.1:{server.port}/g/collect"
        answers = await asyncio.gather(*(sender.post(url, [], b"", 5) for _ in range(8)))
        await sender.aclose()
        await server.stop()
        return server, list(answers)

    server, answers = run(scenario())
    assert answers == [Answer(204)] * 8
    assert server.most_open == 2


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_checks_the_certificate_and_the_host_name(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def scenario() -> list[Answer]:
        server = await Server(answering(NO_CONTENT)).start(tls=serving)
        answers = []
        for host, context in [
            ("localhost", trusting),
            ("127.0.0.1", trusting),
            ("localhost", None),
        ]:
            sender = Http1Sender(1, context)
            answers.append(await sender.post(f"https://{host}:{server.port}/", [], b"x", 5))
            await sender.aclose()
        await server.stop()
        return answers

    trusted, wrong_name, unknown_issuer = run(scenario())
    assert trusted == Answer(204)
    assert isinstance(wrong_name.error, ssl.SSLCertVerificationError)
    assert isinstance(unknown_issuer.error, ssl.SSLCertVerificationError)
