"""What every handler reads off a request: the running gateway and bearer credentials."""

from __future__ import annotations

from starlette.requests import Request

from tiktok_gateway.credentials import same_secret
from tiktok_gateway.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    """The running gateway of the app that serves ``request`` (set by the lifespan)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``, ``None`` without such a header."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else None


def bearer_matches(request: Request, secret: str) -> bool:
    """True when the request's bearer token is ``secret``."""
    given = bearer_token(request)
    return given is not None and same_secret(given, secret)
