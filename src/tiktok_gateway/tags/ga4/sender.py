"""How a forward goes on the wire: one POST, and Google's status (or the error instead).

Two senders with one contract (``Sender``):

- ``Http1Sender`` (``http1.py``), for the network (Google, or a stand-in at a base URL):
  HTTP/1.1 over asyncio with httptools parsing the answers. A GA4 forward is one request per
  hit, so the client's cost is paid once per hit: httpx's would cost more than the rest of the
  hit (600-1,500 us of CPU per request, 32 at once), aiohttp's about as much as parsing and
  mapping it (85-140 us); this one 37-41 us (``bench/forward_client.py``).
- ``HttpxSender``, in process: the gateway's httpx client, which answers the built-in sandbox
  through its ASGI transport (``GATEWAY_GA4_ENDPOINT=sandbox``, as ``make run`` does), and tests.
  httpx's default ``User-Agent``, ``Accept`` and ``Accept-Encoding`` are taken off the request.

Either way the request carries exactly the forward's headers plus ``Host``, ``Content-Length``
(and what the transport adds to manage the connection).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import httpx

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
