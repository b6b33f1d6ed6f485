"""What ``tiktok-gateway inspect`` does, apart from the command line: input -> request bodies.

It runs the same sources, triggers and mapping as the server, on one input given by hand, and
reports the Events API request bodies the gateway would send plus human-readable notes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tiktok_gateway.config import Config
from tiktok_gateway.errors import InputError
from tiktok_gateway.event_data import ParsedInput, RequestContext
from tiktok_gateway.sources.events_api import parse_events
from tiktok_gateway.sources.ga4_web import parse_hit
from tiktok_gateway.sources.measurement_protocol import parse_mp
from tiktok_gateway.tags.tiktok.collector import ttclid_cookie_of
from tiktok_gateway.tags.tiktok.mapping import DroppedEvent, MappedEvent
from tiktok_gateway.tags.tiktok.payload import request_body
from tiktok_gateway.tags.tiktok.router import group_requests, route


@dataclass(frozen=True, slots=True)
class InspectInput:
    """One input given by hand. ``hit`` is a GA4 hit URL or query string (for ``mp``: its URL)."""

    hit: str = ""
    body: bytes = b""
    mp: bytes | None = None
    events: bytes | None = None
    cookies: Mapping[str, str] = field(default_factory=dict)
    user_agent: str | None = None
    ip: str | None = None


@dataclass(slots=True)
class InspectReport:
    """Request bodies, notes for stderr, per-part errors, and a fatal reason if nothing parsed."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    explanations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fatal: str | None = None


def query_of(hit: str) -> str:
    """The query string of a hit given as a full URL, a ``?query`` or a bare query string."""
    hit = hit.strip()
    if "://" in hit or hit.startswith("/"):
        try:
            return urlsplit(hit).query
        except ValueError:
            return hit.partition("?")[2]
    return hit.removeprefix("?")


def _parse(request: InspectInput, ctx: RequestContext) -> ParsedInput:
    query = query_of(request.hit)
    if request.events is not None:
        return parse_events(request.events, ctx)
    if request.mp is not None:
        params = parse_qs(query)
        return parse_mp(
            request.mp,
            ctx,
            measurement_id=params.get("measurement_id", [None])[0],
            api_secret=params.get("api_secret", [None])[0],
            secrets=None,  # inspect sends nothing: no secret to check
        )
    return parse_hit(query, request.body, ctx)


def _explain(mapped: MappedEvent) -> list[str]:
    width = max((len(path) for path in mapped.explain), default=0)
    lines = [f"explain: tag {mapped.tag}, {mapped.event['event']} {mapped.event['event_id']}"]
    lines += [f"  {path:<{width}}  <- {key}" for path, key in sorted(mapped.explain.items())]
    return lines


def run_inspect(request: InspectInput, config: Config, *, explain: bool = False) -> InspectReport:
    """Parse, route and map ``request`` with ``config``'s tags; never raises for bad input."""
    report = InspectReport()
    ctx = RequestContext(
        received_at=time.time(),
        user_agent=request.user_agent,
        ip=request.ip,
        cookies=dict(request.cookies),
    )
    try:
        parsed = _parse(request, ctx)
    except InputError as exc:
        report.fatal = str(exc)
        return report
    report.errors = [f"event {error.line}: {error}" for error in parsed.errors]
    mapped: list[MappedEvent] = []
    for data in parsed.events:
        outcomes = route(data, config.tags, explain=explain)
        if not outcomes:
            report.notes.append(f"skipped: {data.get('event_name')!s}: no tag's trigger fires")
        for outcome in outcomes:
            if isinstance(outcome, DroppedEvent):
                report.notes.append(
                    f"dropped: {outcome.event_name or '(no name)'} for tag {outcome.tag}: "
                    f"{outcome.reason}"
                )
                continue
            mapped.append(outcome)
            for warning in outcome.warnings:
                report.notes.append(f"warning: {outcome.event['event']}: {warning}")
            if explain:
                report.explanations += _explain(outcome)
        if cookie := ttclid_cookie_of(outcomes):
            report.notes.append(f"cookie: the answer would set ttclid={cookie}")
    report.bodies = [
        request_body(pixel, [m.event for m in events], test_code)
        for (_, pixel, test_code), events in group_requests(mapped).items()
    ]
    return report
