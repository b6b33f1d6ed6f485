"""Who may use the admin surfaces (``/admin/...`` and ``/debug...``), SPEC 10 and 11.

With ``GATEWAY_ADMIN_TOKEN`` set, a request is admitted when it carries either

- ``Authorization: Bearer <token>`` (compared in constant time), or
- the session cookie ``gw_admin`` that ``GET /debug?token=<token>`` sets once: HttpOnly,
  SameSite=Strict, Path ``/``, Secure on https, 12 hours. Its value is an HMAC of the token
  (never the token itself), so changing the token ends every session.

``?token=`` is accepted by the ``/debug`` page alone: a right token answers 303 to the same URL
without it (so it leaves the address bar and the history) and sets the cookie; a wrong one 401.

Without a configured token the admin surfaces answer only to loopback peers (127.0.0.0/8, ::1)
that were not forwarded (no ``Forwarded``/``X-Forwarded-For``/``X-Real-IP`` header: a reverse
proxy on the same host must not turn every visitor into a loopback peer); anyone else gets 403.
Refusals are JSON ``{"error": ..., "detail": ...}`` (401 ``unauthorized`` with
``WWW-Authenticate: Bearer``, 403 ``forbidden``) and never echo what was sent.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tiktok_gateway.credentials import same_secret
from tiktok_gateway.endpoints.access import bearer_matches, runtime_of
from tiktok_gateway.endpoints.body import error_response

COOKIE_NAME: Final = "gw_admin"
COOKIE_MAX_AGE: Final = 12 * 3600
_COOKIE_CONTEXT: Final = b"tiktok-gateway admin session v1"
_FORWARDING_HEADERS: Final = ("forwarded", "x-forwarded-for", "x-real-ip")


@dataclass(frozen=True, slots=True)
class Grant:
    """An admitted request and how: ``bearer``, ``cookie`` or ``loopback``."""

    via: str


def configured_token(request: Request) -> str | None:
    """The admin token, ``None`` when not configured (the settings turn an empty one into that)."""
    secret = runtime_of(request).config.gateway.admin_token
    return secret.get_secret_value() if secret is not None else None


def session_value(token: str) -> str:
    """The cookie value for ``token``: an HMAC, so the cookie never holds the token."""
    return hmac.new(token.encode(), _COOKIE_CONTEXT, hashlib.sha256).hexdigest()


def is_loopback_peer(request: Request) -> bool:
    """True for a direct (not forwarded) client on 127.0.0.0/8 or ::1."""
    if request.client is None or any(h in request.headers for h in _FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.client.host.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def unauthorized() -> Response:
    response = error_response(
        401, "unauthorized", "send Authorization: Bearer <admin token> (or open /debug?token=...)"
    )
    response.headers["WWW-Authenticate"] = 'Bearer realm="tiktok-gateway admin"'
    return response


def authorize(request: Request) -> Grant | Response:
    """The grant of an admitted request, or the refusal to answer (module docstring)."""
    token = configured_token(request)
    if token is None:
        if is_loopback_peer(request):
            return Grant("loopback")
        return error_response(
            403,
            "forbidden",
            "no admin token is configured: admin surfaces answer only on loopback "
            "(set GATEWAY_ADMIN_TOKEN to use them from elsewhere)",
        )
    if bearer_matches(request, token):
        return Grant("bearer")
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie is not None and same_secret(cookie, session_value(token)):
        return Grant("cookie")
    return unauthorized()


def token_login(request: Request) -> Response | None:
    """For the ``/debug`` page: handle ``?token=`` (redirect + cookie, or 401); ``None`` when
    the URL has no token."""
    if "token" not in request.query_params:
        return None
    token = configured_token(request)
    given = request.query_params.get("token", "")
    if token is not None and not same_secret(given, token):
        return unauthorized()
    if token is None and isinstance(refused := authorize(request), Response):
        return refused  # no token configured and not on loopback: 403
    rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    location = request.url.path + (f"?{urlencode(rest)}" if rest else "")
    response = RedirectResponse(location, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    if token is not None:
        response.set_cookie(
            COOKIE_NAME,
            session_value(token),
            max_age=COOKIE_MAX_AGE,
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
    return response


Endpoint = Callable[[Request], Awaitable[Response]]
GrantedEndpoint = Callable[[Request, Grant], Awaitable[Response]]


def admin_only(handler: GrantedEndpoint) -> Endpoint:
    """Wrap ``handler`` so it runs only for admitted requests; answers are never cached."""

    async def endpoint(request: Request) -> Response:
        grant = authorize(request)
        if isinstance(grant, Response):
            return grant
        response = await handler(request, grant)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    endpoint.__name__ = getattr(handler, "__name__", "admin_endpoint")
    endpoint.__doc__ = handler.__doc__
    return endpoint


class AdminOnlyApp:
    """An ASGI app behind the admin rules above (HTTP only), e.g. the mounted sandbox, whose
    listing and outage switch are operator tools, not public endpoints."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            grant = authorize(Request(scope, receive))
            if isinstance(grant, Response):
                await grant(scope, receive, send)
                return
        await self.app(scope, receive, send)
