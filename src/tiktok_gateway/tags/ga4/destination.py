"""GA4 forwarding as a delivery destination (``delivery/destination.py``): one hit per request.

Named ``ga4`` (``config.GA4_DESTINATION``). A forward is sent as ``POST {base}{path}?{query}``
with the queued body and the browser's allow-listed headers (``forward.py``), by a ``Sender``
(``sender.py``: ``http1.py`` to the network; the gateway's httpx client for the built-in sandbox, in
process). Its only other headers are ``Host``, ``Content-Length`` and, with a body,
``Content-Type`` (``text/plain;charset=UTF-8``, as ``navigator.sendBeacon`` sends it;
``application/json`` for the Measurement Protocol).
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Final, cast

import httpx

from tiktok_gateway.delivery.destination import Batch, Limits
from tiktok_gateway.delivery.outcome import Outcome
from tiktok_gateway.tags.ga4.classify import classify
from tiktok_gateway.tags.ga4.forward import MP_PATH, Forward
from tiktok_gateway.tags.ga4.payload import QueuedForward
from tiktok_gateway.tags.ga4.sender import Headers, HttpxSender, Sender
from tiktok_gateway.tags.ga4.settings import GA4Settings

KIND: Final = "ga4"
CONTENT_TYPES: Final = {MP_PATH: "application/json"}
WEB_CONTENT_TYPE: Final = "text/plain;charset=UTF-8"
# Forwards failing in a row before GA4 forwarding backs off as a whole: a real outage fails
# every request (32 at once by default), a stray 503 one in thousands.
HOLD_AFTER: Final = 5


def request_of(base_url: str, forward: Forward) -> tuple[str, Headers]:
    """The URL and headers that carry ``forward`` to ``base_url`` (module docstring)."""
    url = base_url + forward.path + (f"?{forward.query}" if forward.query else "")
    headers = list(forward.headers)
    if forward.body:
        headers.append(("content-type", CONTENT_TYPES.get(forward.path, WEB_CONTENT_TYPE)))
    return url, headers


class GA4Destination:
    """Forwards queued hits to Google Analytics (or the stand-in the settings name).

    ``network`` sends to a real address; without one (``endpoint = sandbox``) the httpx client
    the lane passes to ``send`` is used: it answers the built-in sandbox in process."""

    kind = KIND

    def __init__(
        self,
        name: str,
        settings: GA4Settings,
        sandbox_url: str,
        limits: Limits,
        network: Sender | None = None,
    ) -> None:
        self._name = name
        self.settings = settings
        self._sandbox_url = sandbox_url
        self._limits = limits
        self._network = network

    @property
    def name(self) -> str:
        return self._name

    @property
    def limits(self) -> Limits:
        return self._limits

    def unit(self, payload: bytes) -> QueuedForward:
        return QueuedForward.from_bytes(payload)

    def overhead(self, route: Hashable) -> int:
        return 0  # one hit per request: nothing is spliced

    def base_url(self, forward: Forward) -> str:
        """Where ``forward`` goes (``GA4Settings.base_url``)."""
        return self.settings.base_url(forward.region1, self._sandbox_url)

    async def send(self, client: httpx.AsyncClient, batch: Batch) -> Outcome:
        # Limits.max_events is 1: a batch is one forward, a unit made by unit() above.
        (unit,) = cast(tuple[QueuedForward, ...], batch.units)
        forward = unit.forward
        url, headers = request_of(self.base_url(forward), forward)
        sender = self._network or HttpxSender(client)
        answer = await sender.post(url, headers, forward.body, self._limits.timeout)
        return classify(
            answer.status, error=answer.error, retry_after=answer.retry_after, now=time.time()
        )

    async def aclose(self) -> None:
        if self._network is not None:
            await self._network.aclose()


def ga4_limits(settings: GA4Settings, timeout: float) -> Limits:
    """One hit per request, ``max_in_flight`` at once, dead-lettered after ``max_age_hours``,
    backing off as a whole after ``HOLD_AFTER`` failures in a row."""
    return Limits(
        max_events=1,
        max_bytes=2**31,
        max_in_flight=settings.max_in_flight,
        max_age=settings.max_age_hours * 3600,
        timeout=timeout,
        hold_after=HOLD_AFTER,
    )
