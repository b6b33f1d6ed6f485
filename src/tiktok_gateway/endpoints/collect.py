"""The ingest endpoints: ``/g/collect`` (GA4 web), ``/mp/collect`` (Measurement Protocol) and
``/events`` (generic JSON), answering as SPEC 10.1 says.

Every answer to client input is 2xx or 4xx: parse errors are 400 with a JSON reason (the valid
events of the same request are still accepted), oversized bodies 413, wrong secrets 401/403. A
2xx is sent only after the accepted events are committed to the queue.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tiktok_gateway.endpoints.body import BodyTooLarge, error_response, read_body
from tiktok_gateway.endpoints.cookies import set_ttclid_cookie
from tiktok_gateway.endpoints.cors import apply_cors
from tiktok_gateway.errors import AuthError, InputError
from tiktok_gateway.event_data import ParsedInput, RequestContext
from tiktok_gateway.ingest import IngestResult
from tiktok_gateway.runtime import Runtime
from tiktok_gateway.sources.events_api import parse_events
from tiktok_gateway.sources.ga4_web import parse_hit
from tiktok_gateway.sources.measurement_protocol import parse_mp
from tiktok_gateway.sources.request_context import build_context, header_map


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _context(request: Request, runtime: Runtime) -> RequestContext:
    headers = header_map(request.headers.items())
    return build_context(
        received_at=time.time(),
        user_agent=headers.get("user-agent"),
        peer=request.client.host if request.client else None,
        headers=headers,
        trusted=runtime.trusted_proxies,
        cookie_header=headers.get("cookie"),
    )


def _line_errors(parsed: ParsedInput) -> list[dict[str, Any]]:
    return [
        {"line": error.line, "error": error.reason, "detail": error.detail}
        for error in parsed.errors
    ]


def _summary(result: IngestResult) -> dict[str, Any]:
    return {"queued": result.queued, "dropped": dict(result.dropped), "unrouted": result.unrouted}


async def ga4_collect(request: Request) -> Response:
    """``GET|POST|OPTIONS /g/collect``: 204 once the hit's events are committed."""
    runtime = _runtime(request)
    response = await _ga4_answer(request, runtime)
    apply_cors(request, response, runtime.config.gateway.allowed_origins)
    return response


async def _ga4_answer(request: Request, runtime: Runtime) -> Response:
    if request.method == "OPTIONS":
        return Response(status_code=204)
    if not runtime.accepting:
        return error_response(503, "shutting_down", "the gateway is stopping; retry")
    try:
        body = (
            await read_body(request, runtime.config.gateway.max_body_bytes)
            if request.method == "POST"
            else b""
        )
        parsed = parse_hit(request.url.query, body, _context(request, runtime))
    except BodyTooLarge:
        return error_response(
            413, "body_too_large", f"limit is {runtime.config.gateway.max_body_bytes} bytes"
        )
    except InputError as exc:
        return error_response(400, exc.reason, exc.detail)
    result = await runtime.ingest.accept(parsed.events)
    response: Response
    if parsed.errors:
        response = error_response(400, "invalid_events", _line_errors(parsed), **_summary(result))
    else:
        response = Response(status_code=204)
    if result.ttclid_cookie:
        set_ttclid_cookie(
            response,
            result.ttclid_cookie,
            host=request.headers.get("host", ""),
            cookie_domain=runtime.config.gateway.cookie_domain,
        )
    return response


async def mp_collect(request: Request) -> Response:
    """``POST /mp/collect?measurement_id=...&api_secret=...``: 200 with a JSON summary."""
    runtime = _runtime(request)
    if not runtime.accepting:
        return error_response(503, "shutting_down", "the gateway is stopping; retry")
    try:
        body = await read_body(request, runtime.config.gateway.max_body_bytes)
        parsed = parse_mp(
            body,
            _context(request, runtime),
            measurement_id=request.query_params.get("measurement_id"),
            api_secret=request.query_params.get("api_secret"),
            secrets=runtime.mp_secrets,
        )
    except BodyTooLarge:
        return error_response(
            413, "body_too_large", f"limit is {runtime.config.gateway.max_body_bytes} bytes"
        )
    except AuthError as exc:
        return error_response(exc.status, exc.reason, exc.detail)
    except InputError as exc:
        return error_response(400, exc.reason, exc.detail)
    return await _json_answer(runtime, parsed)


async def events_collect(request: Request) -> Response:
    """``POST /events`` (bearer ``ingest_token`` when configured): 200 with a JSON summary."""
    runtime = _runtime(request)
    token = runtime.config.gateway.ingest_token
    if token is not None and not _bearer_matches(request, token.get_secret_value()):
        return error_response(401, "unauthorized", "send Authorization: Bearer <ingest token>")
    if not runtime.accepting:
        return error_response(503, "shutting_down", "the gateway is stopping; retry")
    try:
        body = await read_body(request, runtime.config.gateway.max_body_bytes)
        parsed = parse_events(body, _context(request, runtime))
    except BodyTooLarge:
        return error_response(
            413, "body_too_large", f"limit is {runtime.config.gateway.max_body_bytes} bytes"
        )
    except InputError as exc:
        return error_response(400, exc.reason, exc.detail)
    return await _json_answer(runtime, parsed)


async def _json_answer(runtime: Runtime, parsed: ParsedInput) -> Response:
    result = await runtime.ingest.accept(parsed.events)
    if parsed.errors:
        return error_response(400, "invalid_events", _line_errors(parsed), **_summary(result))
    return JSONResponse({"status": "accepted", **_summary(result)})


def _bearer_matches(request: Request, secret: str) -> bool:
    """Constant-time comparison of ``Authorization: Bearer <token>`` with ``secret``."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), secret.encode())
