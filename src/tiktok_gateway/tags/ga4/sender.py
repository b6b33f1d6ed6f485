"""How a forward goes on the wire: one POST, and Google's status (or the error instead).

Two senders with one contract (``Sender``):

- ``AiohttpSender``, for the network (Google, or a stand-in at a base URL): aiohttp, whose
  client costs about a tenth of httpx's per request (measured on this machine, 32 requests at
  once: 85 us of CPU per request against 600-1500 us for httpx and 360-1100 us for httpcore; the
  bytes alone, a hand-written client, 14 us). A GA4 forward is one request per hit, so the
  client's cost is paid once per hit: with httpx it would cost more than the rest of the hit.
  Nothing of aiohttp's own goes out: its default ``User-Agent`` (Google drops bot-looking
  agents), ``Accept``, ``Accept-Encoding`` and ``Content-Type`` are skipped, and the URL is sent
  as built (``encoded=True``: yarl re-encodes nothing).
- ``HttpxSender``, in process: the gateway's httpx client, which answers the built-in sandbox
  through its ASGI transport (``GATEWAY_GA4_ENDPOINT=sandbox``, as ``make run`` does), and tests.
  httpx's default ``User-Agent``, ``Accept`` and ``Accept-Encoding`` are taken off the request.

Either way the request carries exactly the forward's headers plus ``Host``, ``Content-Length``
(and what the transport adds to manage the connection).

aiohttp is imported by the first ``AiohttpSender.post``, in a thread, not with this module: its
import took 130 ms of the 0.8 s ``serve`` needed to answer ``/healthz`` (bench/million.py); in
the event loop, a backlog of forwards at start would have had the first post hold up ``/healthz``
as long. A gateway that forwards nothing, or only to the sandbox, never imports it.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

import httpx

if TYPE_CHECKING:
    import aiohttp
    import yarl

Headers = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Answer:
    """``status`` and the Retry-After header of the response; or the ``error`` (a timeout, a
    refused connection) when there was none."""

    status: int | None = None
    retry_after: str | None = None
    error: Exception | None = None


class Sender(Protocol):
    """Posts one forward; raises nothing but cancellation (a failure is an ``Answer.error``)."""

    async def post(self, url: str, headers: Headers, body: bytes, timeout: float) -> Answer: ...

    async def aclose(self) -> None:
        """Release the connections (at shutdown)."""


# The client libraries' own default headers: a forward carries the browser's, or none.
_HTTPX_DEFAULTS: Final = ("user-agent", "accept", "accept-encoding")
_AIOHTTP_SKIPPED: Final = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})


class HttpxSender:
    """Sends through an httpx client it does not own (the runtime's, with the sandbox mount)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def post(self, url: str, headers: Headers, body: bytes, timeout: float) -> Answer:
        request = self._client.build_request(
            "POST", url, content=body, headers=list(headers), timeout=timeout
        )
        ours = {name.lower() for name, _ in headers}
        for name in _HTTPX_DEFAULTS:
            if name not in ours and name in request.headers:
                del request.headers[name]
        try:
            response = await self._client.send(request)
        except httpx.RequestError as error:
            return Answer(error=error)
        return Answer(response.status_code, response.headers.get("retry-after"))

    async def aclose(self) -> None:
        return None  # the runtime closes its client


@dataclass(frozen=True, slots=True)
class _Session:
    """An aiohttp session and what ``post`` uses of aiohttp and yarl, imported with it."""

    session: aiohttp.ClientSession
    url: type[yarl.URL]
    timeout: type[aiohttp.ClientTimeout]
    errors: tuple[type[Exception], ...]


class AiohttpSender:
    """Sends with an aiohttp session of its own, made on first use (inside the event loop),
    keeping at most ``connections`` connections open."""

    def __init__(self, connections: int) -> None:
        self._connections = connections
        self._session: _Session | None = None
        self._importing: asyncio.Future[None] | None = None  # the first post's, shared

    async def _open(self) -> _Session:
        if self._session is None:
            if self._importing is None:  # the import runs in a thread: the loop goes on
                self._importing = asyncio.ensure_future(asyncio.to_thread(_import_aiohttp))
            await asyncio.shield(self._importing)
        if self._session is None:
            import aiohttp  # imported by the thread: a look-up in sys.modules
            import yarl

            connector = aiohttp.TCPConnector(limit=self._connections)
            session = aiohttp.ClientSession(
                connector=connector, skip_auto_headers=_AIOHTTP_SKIPPED, trust_env=False
            )
            errors = (aiohttp.ClientError, TimeoutError)
            self._session = _Session(session, yarl.URL, aiohttp.ClientTimeout, errors)
        return self._session

    async def post(self, url: str, headers: Headers, body: bytes, timeout: float) -> Answer:
        opened = await self._open()
        try:
            async with opened.session.post(
                opened.url(url, encoded=True),
                data=body,
                headers=list(headers),
                timeout=opened.timeout(total=timeout),
                allow_redirects=False,
            ) as response:
                await response.read()
                return Answer(response.status, response.headers.get("Retry-After"))
        except opened.errors as error:
            return Answer(error=error)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.session.close()
            self._session = None


def _import_aiohttp() -> None:
    """aiohttp and yarl into ``sys.modules`` (run in a thread: see the module docstring)."""
    importlib.import_module("aiohttp")
    importlib.import_module("yarl")
