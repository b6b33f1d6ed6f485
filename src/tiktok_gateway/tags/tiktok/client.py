"""Posting one batch to the Events API: the bytes in, TikTok's raw answer out.

Two ways to post, one answer (``TrackReply``):

- ``AiohttpPoster``, for the network (TikTok, or a stand-in at a URL): an aiohttp session of the
  destination's own. A batch of up to 1000 events is one request, and httpx spent about 1.2 ms
  more CPU on each (a 400 KB body, answered at once by a local server, 4 at a time: 1,700
  against 500 us per request, both including the server's reading; docs/performance.md).
- ``post_batch``, through the runtime's httpx client, which answers the built-in sandbox in
  process (tags without a token) and which ``check --send-test`` uses.

Neither raises for a network failure, and neither interprets the answer: a ``TrackReply`` goes to
``classify.classify``, so every decision about statuses and codes stays in the classifier. The
request is the same either way: ``POST {api_url}/open_api/v1.3/event/track/`` with the body,
``Content-Type: application/json`` and the ``Access-Token`` header (left out when the tag has no
token: such tags post to the built-in sandbox). The token is never logged.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import httpx

from tiktok_gateway.delivery.outcome import Outcome
from tiktok_gateway.tags.tiktok.classify import classify
from tiktok_gateway.tags.tiktok.payload import TRACK_PATH


@dataclass(frozen=True, slots=True)
class TrackReply:
    """The raw answer: ``status``, ``body`` and the Retry-After header of the response, or the
    ``error`` when there was none (``httpx.RequestError``, ``aiohttp.ClientError`` or
    ``TimeoutError``: a timeout, a refused or broken connection)."""

    status: int | None = None
    body: bytes | None = None
    retry_after: str | None = None
    error: Exception | None = None

    def classify(self, now: float) -> Outcome:
        """The outcome of this answer (``classify.classify``) at clock time ``now``."""
        return classify(
            self.status, self.body, error=self.error, retry_after=self.retry_after, now=now
        )


def _headers(token: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Access-Token"] = token
    return headers


async def post_batch(
    client: httpx.AsyncClient, api_url: str, token: str | None, body: bytes, timeout: float
) -> TrackReply:
    """``POST {api_url}/open_api/v1.3/event/track/`` with ``body`` (JSON bytes), through httpx.

    Raises nothing but cancellation: a failed request comes back as ``TrackReply(error=...)``.
    """
    try:
        response = await client.post(
            api_url.rstrip("/") + TRACK_PATH, content=body, headers=_headers(token), timeout=timeout
        )
    except httpx.RequestError as error:
        return TrackReply(error=error)
    return TrackReply(response.status_code, response.content, response.headers.get("Retry-After"))


def env_proxy(url: str) -> str | None:
    """The proxy ``HTTPS_PROXY``/``HTTP_PROXY`` (any case) name for ``url``, unless ``NO_PROXY``
    exempts its host: what the httpx client honoured."""
    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class AiohttpPoster:
    """Posts batches with an aiohttp session of its own, made on first use (inside the event
    loop), keeping at most ``connections`` connections open. aiohttp's default ``User-Agent``,
    ``Accept`` and ``Accept-Encoding`` stay: TikTok's API is no browser endpoint.

    The proxy the environment names is read once per URL (``env_proxy``): aiohttp's own
    ``trust_env`` reads the environment and ``~/.netrc`` in a thread on every request, which took
    1.8 us of CPU per event (per 1000-event request, 1.8 ms) in bench/delivery.py.
    """

    def __init__(self, connections: int) -> None:
        self._connections = max(connections, 1)
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, str | None] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._connections)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def post(
        self, api_url: str, token: str | None, body: bytes, timeout: float
    ) -> TrackReply:
        """As ``post_batch``; raises nothing but cancellation."""
        session = self._open()
        if api_url not in self._proxies:
            self._proxies[api_url] = env_proxy(api_url)
        try:
            async with session.post(
                api_url.rstrip("/") + TRACK_PATH,
                data=body,
                headers=_headers(token),
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
                proxy=self._proxies[api_url],
            ) as response:
                content = await response.read()
                return TrackReply(response.status, content, response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as error:
            return TrackReply(error=error)

    async def aclose(self) -> None:
        """Close the session's connections (at shutdown)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
