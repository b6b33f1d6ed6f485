"""Credentialed CORS for browser hits (SPEC 2): echo the allowed Origin, never ``*``."""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request
from starlette.responses import Response

ALLOW_METHODS = "GET, POST, OPTIONS"


def apply_cors(request: Request, response: Response, allowed: Collection[str]) -> None:
    """Echo ``Origin`` when it is allowed (any origin when ``allowed`` is empty).

    ``*`` would break gtag's credentialed fetch hits, so the origin is always echoed, with
    ``Vary: Origin`` for caches. ``response`` must not carry these headers yet: they are
    appended (no search for an earlier value: a few us a hit).
    """
    origin = request.headers.get("origin")
    if not origin or (allowed and origin not in allowed):
        return
    headers = {
        "access-control-allow-origin": origin,
        "access-control-allow-credentials": "true",
        "vary": "Origin",
    }
    if request.method == "OPTIONS":
        headers["access-control-allow-methods"] = ALLOW_METHODS
        requested = request.headers.get("access-control-request-headers")
        headers["access-control-allow-headers"] = requested or "Content-Type"
        headers["access-control-max-age"] = "86400"
    for name, value in headers.items():
        response.headers.append(name, value)
