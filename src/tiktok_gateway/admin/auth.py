"""Who may use the operator surfaces (the admin listener: ``/debug``, ``/admin``, ``/metrics``,
``/sandbox``, the detailed ``/readyz``), SPEC 13.

Every request to them passes, in this order:

1. **The Host check** (DNS rebinding): the ``Host`` header must name an IP address, ``localhost``
   or a name in ``GATEWAY_ADMIN_HOSTNAMES``; otherwise 403 ``host_not_allowed``. A page on
   ``evil.example`` whose name an attacker points at 127.0.0.1 still sends ``Host:
   evil.example``.
2. **Credentials**. With ``GATEWAY_ADMIN_TOKEN`` set (required when the admin listener is not on
   loopback), either ``Authorization: Bearer <token>`` (compared in constant time) or the session
   cookie ``gw_admin`` that ``GET /debug?token=<token>`` sets once: HttpOnly, SameSite=Strict,
   Path ``/``, Secure whenever the request came over TLS (directly, or through a trusted proxy
   that says so), 12 hours. Its value is the time it was issued and an HMAC of that time with the
   token (never the token itself), checked on every request: a changed token or an older cookie
   ends the session, whatever the browser keeps. Without a token the admin listener is on
   loopback, and answers only to loopback peers that were not forwarded (no ``Forwarded``/
   ``X-Forwarded-For``/``X-Real-IP`` header: a reverse proxy on the same host must not make every
   visitor a loopback peer); anyone else gets 403.
3. **CSRF**: a request that changes state (any method but GET, HEAD and OPTIONS) must send no
   ``Origin`` other than the listener's own, and a ``POST`` must be ``Content-Type:
   application/json`` (no cross-site form or ``text/plain`` beacon can send that without a CORS
   preflight, which this listener never grants); else 403. ``DELETE`` needs no body: a browser
   sends it cross-site only after a preflight, so ``curl -X DELETE`` stays simple.

``?token=`` is accepted by the ``/debug`` page alone: a right token answers 303 to the same URL
without it (so it leaves the address bar and the history) and sets the cookie; a wrong one 401.
Refusals are JSON ``{"error": ..., "detail": ...}`` (401 ``unauthorized`` with
``WWW-Authenticate: Bearer``, 403 ``forbidden``/``host_not_allowed``) and never echo what was
sent.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tiktok_gateway.credentials import same_secret
from tiktok_gateway.endpoints.access import bearer_matches, runtime_of
from tiktok_gateway.endpoints.body import error_response
from tiktok_gateway.sources.request_context import forwarded_proto, header_map

COOKIE_NAME: Final = "gw_admin"
COOKIE_MAX_AGE: Final = 12 * 3600
_COOKIE_CONTEXT: Final = b"tiktok-gateway admin session v2"
_FORWARDING_HEADERS: Final = ("forwarded", "x-forwarded-for", "x-real-ip")
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Grant:
    """An admitted request and how: ``bearer``, ``cookie`` or ``loopback``."""

    via: str


def configured_token(request: Request) -> str | None:
    """The admin token, ``None`` when not configured (the settings turn an empty one into that)."""
    secret = runtime_of(request).config.gateway.admin_token
    return secret.get_secret_value() if secret is not None else None


def session_value(token: str, issued: int) -> str:
    """The cookie value for ``token`` issued at unix second ``issued``: the time and an HMAC of
    it (the cookie never holds the token, and its age cannot be forged)."""
    mac = hmac.new(token.encode(), _COOKIE_CONTEXT + b"|%d" % issued, hashlib.sha256)
    return f"{issued}.{mac.hexdigest()}"


def valid_session(cookie: str, token: str, now: float) -> bool:
    """Whether ``cookie`` was issued with ``token`` at most ``COOKIE_MAX_AGE`` seconds ago."""
    issued_text, _, _ = cookie.partition(".")
    if not (issued_text.isascii() and issued_text.isdigit()) or len(issued_text) > 12:
        return False
    issued = int(issued_text)
    if not -60 <= now - issued <= COOKIE_MAX_AGE:  # a minute of clock skew, no more
        return False
    return same_secret(cookie, session_value(token, issued))


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


def host_allowed(host_header: str, names: tuple[str, ...]) -> bool:
    """Whether a ``Host`` header names an IP address, ``localhost`` or one of ``names``."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [IPv6]:port
        host = host[1 : host.find("]")] if "]" in host else ""
    else:
        host = host.partition(":")[0]
    host = host.rstrip(".")
    if not host:
        return False
    if host == "localhost" or host in names:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def over_tls(request: Request) -> bool:
    """Whether the request came over TLS: its own scheme, or what a trusted proxy says
    (``X-Forwarded-Proto``/``Forwarded: proto=``; an untrusted peer's say is ignored)."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    headers = header_map(request.headers.items())
    return forwarded_proto(peer, headers, runtime_of(request).trusted_proxies) == "https"


def unauthorized() -> Response:
    response = error_response(
        401, "unauthorized", "send Authorization: Bearer <admin token> (or open /debug?token=...)"
    )
    response.headers["WWW-Authenticate"] = 'Bearer realm="tiktok-gateway admin"'
    return response


def _origin_of(request: Request) -> str:
    return f"{'https' if over_tls(request) else 'http'}://{request.headers.get('host', '')}"


def _forgery(request: Request) -> Response | None:
    """The refusal of a state change a cross-site page could have sent (rule 3), else None."""
    if request.method in _SAFE_METHODS:
        return None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # Of the state-changing methods, only POST is a "simple request" a page may send anywhere.
    if request.method == "POST" and content_type != "application/json":
        return error_response(403, "forbidden", "state changes need Content-Type: application/json")
    origin = request.headers.get("origin")
    if origin is not None:
        try:
            parts = urlsplit(origin)
        except ValueError:
            parts = None
        own = request.headers.get("host", "").lower()
        if parts is None or parts.netloc.lower() != own:
            return error_response(403, "forbidden", "a page of another origin cannot do this")
    return None


def authorize(request: Request) -> Grant | Response:
    """The grant of an admitted request, or the refusal to answer (module docstring)."""
    gateway = runtime_of(request).config.gateway
    if not host_allowed(request.headers.get("host", ""), gateway.admin_hostnames):
        return error_response(
            403,
            "host_not_allowed",
            "the admin listener answers to IP addresses, localhost and GATEWAY_ADMIN_HOSTNAMES",
        )
    grant = _credentials(request)
    if isinstance(grant, Response):
        return grant
    forgery = _forgery(request)
    return forgery if forgery is not None else grant


def _credentials(request: Request) -> Grant | Response:
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
    if cookie is not None and valid_session(cookie, token, time.time()):
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
            session_value(token, int(time.time())),
            max_age=COOKIE_MAX_AGE,
            path="/",
            secure=over_tls(request),
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
