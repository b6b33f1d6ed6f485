"""Credentialed CORS for browser hits (SPEC 2): echo the allowed Origin, never ``*``."""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request
from starlette.responses import Response

ALLOW_METHODS = "GET, POST, OPTIONS"


def apply_cors(request: Request, response: Response, allowed: Collection[str]) -> None:
    """Echo ``Origin`` when it is allowed (any origin when ``allowed`` is empty).

    ``*`` would break gtag's credentialed fetch hits, so the origin is always echoed, with
    ``Vary: Origin`` for caches.
    """
    origin = request.headers.get("origin")
    if not origin or (allowed and origin not in allowed):
        return
    headers = response.headers
    headers["Access-Control-Allow-Origin"] = origin
    headers["Access-Control-Allow-Credentials"] = "true"
    headers["Vary"] = "Origin"
    if request.method == "OPTIONS":
        headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        requested = request.headers.get("access-control-request-headers")
        headers["Access-Control-Allow-Headers"] = requested or "Content-Type"
        headers["Access-Control-Max-Age"] = "86400"
