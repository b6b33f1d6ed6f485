"""Posting one batch to the Events API: the bytes in, TikTok's raw answer out.

``post_batch`` never raises for a network failure and never interprets the answer: it returns
a ``TrackReply`` that ``classify.classify`` turns into an outcome, so every decision about
statuses and codes stays in the classifier. The access token goes into the ``Access-Token``
header only; it is never logged, and it is left out when the tag has none (the gateway points
such tags at its built-in sandbox).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from tiktok_gateway.delivery.outcome import Outcome
from tiktok_gateway.tags.tiktok.classify import classify
from tiktok_gateway.tags.tiktok.payload import TRACK_PATH


@dataclass(frozen=True, slots=True)
class TrackReply:
    """The raw answer: ``status``, ``body`` and the Retry-After header of the response, or the
    ``error`` (``httpx.RequestError``: timeout, connection, protocol) when there was none."""

    status: int | None = None
    body: bytes | None = None
    retry_after: str | None = None
    error: httpx.RequestError | None = None

    def classify(self, now: float) -> Outcome:
        """The outcome of this answer (``classify.classify``) at clock time ``now``."""
        return classify(
            self.status, self.body, error=self.error, retry_after=self.retry_after, now=now
        )


async def post_batch(
    client: httpx.AsyncClient, api_url: str, token: str | None, body: bytes, timeout: float
) -> TrackReply:
    """``POST {api_url}/open_api/v1.3/event/track/`` with ``body`` (JSON bytes).

    Raises nothing but cancellation: a failed request comes back as ``TrackReply(error=...)``.
    """
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Access-Token"] = token
    try:
        response = await client.post(
            api_url.rstrip("/") + TRACK_PATH, content=body, headers=headers, timeout=timeout
        )
    except httpx.RequestError as error:
        return TrackReply(error=error)
    return TrackReply(response.status_code, response.content, response.headers.get("Retry-After"))
