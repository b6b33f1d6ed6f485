"""The ingest endpoints: ``/g/collect`` (GA4 web), ``/mp/collect`` (Measurement Protocol) and
``/events`` (generic JSON), answering as SPEC 10.1 says.

Every answer to client input is 2xx or 4xx: parse errors are 400 with a JSON reason (the valid
events of the same request are still accepted), oversized bodies 413, wrong secrets 401/403. A
2xx is sent only after the accepted events are committed to the queue; a queue past its caps or
whose storage refuses writes gets 503 ``queue_full`` / ``queue_unavailable`` with ``Retry-After``
(``queue/admission.py``), and nothing of that request is queued. Each request gets an id
(``X-Request-ID`` in the answer) and one ``HitRecord`` for the observers (metrics, logs, /debug).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from tiktok_gateway.endpoints.access import bearer_matches, runtime_of
from tiktok_gateway.endpoints.body import BodyTooLarge, error_response, read_body
from tiktok_gateway.endpoints.cookies import set_cookie
from tiktok_gateway.endpoints.cors import apply_cors
from tiktok_gateway.endpoints.request_id import new_request_id
from tiktok_gateway.errors import AuthError, InputError
from tiktok_gateway.event_data import ParsedInput, RequestContext
from tiktok_gateway.ingest import Arrival, IngestResult
from tiktok_gateway.observe import HitRecord
from tiktok_gateway.queue.admission import UNAVAILABLE
from tiktok_gateway.queue.base import QueueUnavailable
from tiktok_gateway.runtime import Runtime
from tiktok_gateway.sources.events_api import parse_events
from tiktok_gateway.sources.ga4_web import parse_hit
from tiktok_gateway.sources.measurement_protocol import parse_mp
from tiktok_gateway.sources.request_context import Network, build_context, header_map

Parser = Callable[[Request, bytes, RequestContext, Runtime], ParsedInput]


@dataclass(slots=True)
class _Exchange:
    """One ingest request in progress: what it read, parsed and answered."""

    request: Request
    runtime: Runtime
    source: str
    request_id: str
    started: float
    received_at: float
    body: bytes = b""
    parsed: ParsedInput | None = None
    result: IngestResult | None = None

    def finish(self, response: Response, outcome: str, error: str = "") -> Response:
        """Tag the answer with the request id and tell the observers."""
        response.headers["X-Request-ID"] = self.request_id
        parsed, result = self.parsed, self.result
        self.runtime.observers.on_hit(
            HitRecord(
                request_id=self.request_id,
                source=self.source,
                received_at=self.received_at,
                status=response.status_code,
                outcome=outcome,
                query=query_of(self.request),
                body=self.body,
                events=parsed.events if parsed else (),
                outcomes=result.outcomes if result else (),
                forwards=result.forwards if result else (),
                errors=parsed.errors if parsed else (),
                error=error,
                duration_seconds=time.perf_counter() - self.started,
                queued=result.queued if result else 0,
                dropped=result.dropped if result else {},
                unrouted=result.unrouted if result else 0,
            )
        )
        return response


def raw_query(request: Request) -> bytes:
    """The query string as received (the ASGI scope's bytes)."""
    raw: bytes = request.scope.get("query_string", b"")
    return raw


def query_of(request: Request) -> str:
    """The raw query string, as ``request.url.query`` gives it without building a URL object
    (measured: 5% of the gateway's CPU per hit under load)."""
    return raw_query(request).decode("latin-1")


def request_context(
    request: Request,
    trusted: Sequence[Network],
    received_at: float,
    headers: Mapping[str, str] | None = None,
) -> RequestContext:
    """The request's facts (client address through ``trusted`` proxies, user agent, cookies);
    ``headers``: the request's, as ``header_map`` gives them, when the caller has them."""
    if headers is None:
        headers = header_map(request.headers.items())
    return build_context(
        received_at=received_at,
        user_agent=headers.get("user-agent"),
        peer=request.client.host if request.client else None,
        headers=headers,
        trusted=trusted,
        cookie_header=headers.get("cookie"),
    )


def _line_errors(parsed: ParsedInput) -> list[dict[str, Any]]:
    return [
        {"line": error.line, "error": error.reason, "detail": error.detail}
        for error in parsed.errors
    ]


def _summary(result: IngestResult) -> dict[str, Any]:
    return {"queued": result.queued, "dropped": dict(result.dropped), "unrouted": result.unrouted}


async def _ingest(
    request: Request, runtime: Runtime, source: str, parse: Parser, *, empty_answer: bool = False
) -> tuple[_Exchange, Response]:
    """Read, parse, queue and answer (``empty_answer``: 204, else a JSON summary); the caller
    adds endpoint-specific headers."""
    exchange = _Exchange(
        request=request,
        runtime=runtime,
        source=source,
        request_id=new_request_id(),
        started=time.perf_counter(),
        received_at=time.time(),
    )
    limit = runtime.config.gateway.max_body_bytes
    if not runtime.accepting:
        answer = error_response(503, "shutting_down", "the gateway is stopping; retry")
        return exchange, exchange.finish(answer, "unavailable", "shutting_down")
    try:
        if request.method == "POST":
            exchange.body = await read_body(request, limit)
        headers = header_map(request.headers.items())
        context = request_context(request, runtime.trusted_proxies, exchange.received_at, headers)
        exchange.parsed = parse(request, exchange.body, context, runtime)
    except BodyTooLarge:
        answer = error_response(413, "body_too_large", f"limit is {limit} bytes")
        return exchange, exchange.finish(answer, "too_large", "body_too_large")
    except ClientDisconnect:  # gone mid-body: nothing to queue, nobody to answer, no error
        answer = error_response(400, "client_disconnected", "the body did not arrive")
        return exchange, exchange.finish(answer, "invalid", "client_disconnected")
    except AuthError as exc:
        answer = error_response(exc.status, exc.reason, exc.detail)
        return exchange, exchange.finish(answer, "unauthorized", exc.reason)
    except InputError as exc:
        answer = error_response(400, exc.reason, exc.detail)
        return exchange, exchange.finish(answer, "invalid", exc.reason)
    # The caps and the storage's health (queue/admission.py): after the client's own errors,
    # which retrying would not fix, and before anything is collected or put.
    refusal = runtime.admission.refusal()
    result: IngestResult | None = None
    if refusal is None:
        arrival = Arrival(
            source, exchange.request_id, raw_query(request), exchange.body, headers, context
        )
        try:
            result = exchange.result = await runtime.ingest.accept(arrival, exchange.parsed.events)
        except QueueUnavailable:  # nothing was queued (admission noted it): the sender may retry
            refusal = UNAVAILABLE
    if result is None:
        refusal = refusal or UNAVAILABLE
        answer = error_response(503, refusal.error, refusal.detail)
        answer.headers["Retry-After"] = str(refusal.retry_after)
        return exchange, exchange.finish(answer, "unavailable", refusal.error)
    if exchange.parsed.errors:
        answer = error_response(
            400, "invalid_events", _line_errors(exchange.parsed), **_summary(result)
        )
        return exchange, exchange.finish(answer, "partial")
    ok: Response = (
        Response(status_code=204)
        if empty_answer
        else JSONResponse({"status": "accepted", **_summary(result)})
    )
    return exchange, exchange.finish(ok, "accepted")


def _parse_ga4(request: Request, body: bytes, ctx: RequestContext, _: Runtime) -> ParsedInput:
    return parse_hit(query_of(request), body, ctx)


def _parse_mp(request: Request, body: bytes, ctx: RequestContext, rt: Runtime) -> ParsedInput:
    return parse_mp(
        body,
        ctx,
        measurement_id=request.query_params.get("measurement_id"),
        api_secret=request.query_params.get("api_secret"),
        secrets=rt.mp_secrets,
    )


def _parse_events(request: Request, body: bytes, ctx: RequestContext, rt: Runtime) -> ParsedInput:
    token = rt.config.gateway.ingest_token
    if token is None:  # a server-to-server endpoint needs credentials (SPEC 13)
        raise AuthError(
            "events_not_enabled",
            "set GATEWAY_INGEST_TOKEN to accept /events (the bearer token your servers send)",
            status=403,
        )
    if not bearer_matches(request, token.get_secret_value()):
        raise AuthError("unauthorized", "send Authorization: Bearer <ingest token>", status=401)
    return parse_events(body, ctx)


async def ga4_collect(request: Request) -> Response:
    """``GET|POST|OPTIONS /g/collect``: 204 once the hit's events are committed."""
    runtime = runtime_of(request)
    if request.method == "OPTIONS":
        response = Response(status_code=204)
    else:
        exchange, response = await _ingest(request, runtime, "ga4", _parse_ga4, empty_answer=True)
        for cookie in exchange.result.cookies if exchange.result else ():
            set_cookie(
                response,
                cookie,
                host=request.headers.get("host", ""),
                cookie_domain=runtime.config.gateway.cookie_domain,
            )
    apply_cors(request, response, runtime.config.gateway.allowed_origins)
    return response


async def mp_collect(request: Request) -> Response:
    """``POST /mp/collect?measurement_id=...&api_secret=...``: 200 with a JSON summary."""
    return (await _ingest(request, runtime_of(request), "mp", _parse_mp))[1]


async def events_collect(request: Request) -> Response:
    """``POST /events`` (bearer ``ingest_token`` when configured): 200 with a JSON summary."""
    return (await _ingest(request, runtime_of(request), "events", _parse_events))[1]
