"""GA4 forwarding as a delivery destination (``delivery/destination.py``): one hit per request.

Named ``ga4`` (``config.GA4_DESTINATION``). A forward is sent as ``POST {base}{path}?{query}``
with the queued body and the browser's allow-listed headers (``forward.py``), and nothing of the
HTTP client's own: httpx's default ``User-Agent`` (Google drops hits whose agent looks like a
bot), ``Accept`` and ``Accept-Encoding`` are taken off the request. Its only other headers are
``Host``, ``Content-Length`` and, with a body, ``Content-Type`` (``text/plain;charset=UTF-8``, as
``navigator.sendBeacon`` sends it; ``application/json`` for the Measurement Protocol).
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
from tiktok_gateway.tags.ga4.settings import GA4Settings

KIND: Final = "ga4"
CONTENT_TYPES: Final = {MP_PATH: "application/json"}
WEB_CONTENT_TYPE: Final = "text/plain;charset=UTF-8"
# Headers httpx adds to every request by default; a forward carries the browser's, or none.
_CLIENT_DEFAULTS: Final = ("user-agent", "accept", "accept-encoding")


def forward_request(
    client: httpx.AsyncClient, base_url: str, forward: Forward, timeout: float
) -> httpx.Request:
    """The request that carries ``forward`` to ``base_url`` (module docstring)."""
    url = base_url + forward.path + (f"?{forward.query}" if forward.query else "")
    headers = list(forward.headers)
    if forward.body:
        headers.append(("content-type", CONTENT_TYPES.get(forward.path, WEB_CONTENT_TYPE)))
    request = client.build_request(
        "POST", url, content=forward.body, headers=headers, timeout=timeout
    )
    ours = {name for name, _ in forward.headers}
    for name in _CLIENT_DEFAULTS:
        if name not in ours and name in request.headers:
            del request.headers[name]
    return request


class GA4Destination:
    """Forwards queued hits to Google Analytics (or the stand-in the settings name)."""

    kind = KIND

    def __init__(self, name: str, settings: GA4Settings, sandbox_url: str, limits: Limits) -> None:
        self._name = name
        self.settings = settings
        self._sandbox_url = sandbox_url
        self._limits = limits

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
        request = forward_request(client, self.base_url(forward), forward, self._limits.timeout)
        try:
            response = await client.send(request)
        except httpx.RequestError as error:
            return classify(None, error=error, now=time.time())
        retry_after = response.headers.get("retry-after")
        return classify(response.status_code, retry_after=retry_after, now=time.time())


# Forwards failing in a row before GA4 forwarding backs off as a whole: a real outage fails
# every request (32 at once by default), a stray 503 one in thousands.
HOLD_AFTER: Final = 5


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
