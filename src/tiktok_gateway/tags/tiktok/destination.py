"""A TikTok tag as a delivery destination (``delivery/destination.py``): the Events API.

Each tag is one destination, named as the tag. Its queued payloads are ``envelope`` layouts;
events of one pixel and test code share a request (``RawEnvelope.route``), at most
``MAX_BATCH_EVENTS`` of them and under ``MAX_BYTES``. A request body is its head and the
events' JSON bytes joined by commas, exactly the bytes ``wire_json.dumps`` would write for the
whole body, so the byte budget counts exactly those bytes. The access token is read from the
tag's settings when a batch is sent (never queued), so a rotated token applies to queued events.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from functools import lru_cache
from typing import cast

import httpx

from tiktok_gateway import wire_json
from tiktok_gateway.delivery.destination import Batch, Limits
from tiktok_gateway.delivery.outcome import Outcome
from tiktok_gateway.tags.tiktok.client import post_batch
from tiktok_gateway.tags.tiktok.envelope import RawEnvelope
from tiktok_gateway.tags.tiktok.mapping import KIND
from tiktok_gateway.tags.tiktok.payload import MAX_BATCH_EVENTS, request_body
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings

# Under TikTok's (undocumented) 1 MB limit on a request (SPEC 7).
MAX_BYTES = 900_000


@lru_cache(maxsize=256)
def open_body(pixel_code: str, test_event_code: str | None) -> bytes:
    """A request body without events, cut open after the ``[`` of its ``data`` list.

    Cached: a gateway has a few (pixel, test code) routes, and every request and every bisection
    step of one starts with the same bytes.
    """
    empty = wire_json.dumps(request_body(pixel_code, [], test_event_code))
    if not empty.endswith(b"[]}"):  # "data" must stay the last member for the splice
        raise ValueError(f"request_body does not end with its data list: {empty[-40:]!r}")
    return empty[:-2]


def batch_body(envelopes: tuple[RawEnvelope, ...]) -> bytes:
    """The request body of events of one route (``payload.request_body``), spliced together."""
    first = envelopes[0]
    events = b",".join(envelope.event_json for envelope in envelopes)
    return open_body(first.pixel_code, first.test_event_code) + events + b"]}"


class TikTokDestination:
    """Delivers one tag's events to ``api_url`` (the tag's, or the built-in sandbox's)."""

    kind = KIND

    def __init__(self, settings: TikTokTagSettings, api_url: str, limits: Limits) -> None:
        self.settings = settings
        self.api_url = api_url
        self._limits = limits
        self._token = settings.access_token.get_secret_value() if settings.access_token else None

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def limits(self) -> Limits:
        return self._limits

    def unit(self, payload: bytes) -> RawEnvelope:
        return RawEnvelope.from_bytes(payload)

    def overhead(self, route: Hashable) -> int:
        pixel_code, test_event_code = cast(tuple[str, str | None], route)
        return len(open_body(pixel_code, test_event_code)) + 2  # and the "]}" that closes it

    async def send(self, client: httpx.AsyncClient, batch: Batch) -> Outcome:
        # The units of a batch come from this destination's unit(): RawEnvelopes.
        envelopes = cast(tuple[RawEnvelope, ...], batch.units)
        reply = await post_batch(
            client, self.api_url, self._token, batch_body(envelopes), self._limits.timeout
        )
        return reply.classify(time.time())  # turns an HTTP-date Retry-After into seconds

    async def aclose(self) -> None:
        return None  # the runtime's client is closed by the runtime


def tiktok_limits(max_in_flight: int, max_age: float, timeout: float) -> Limits:
    """A tag's limits: TikTok's batch maximum, a body under 1 MB, and the gateway's settings."""
    return Limits(MAX_BATCH_EVENTS, MAX_BYTES, max_in_flight, max_age, timeout)
