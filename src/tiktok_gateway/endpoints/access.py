"""What every handler reads off a request: the running gateway and bearer credentials."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from starlette.requests import Request

if TYPE_CHECKING:  # runtime imports the admin observers, which import this module
    from tiktok_gateway.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    """The running gateway of the app that serves ``request`` (set by the lifespan)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison, so the answer time tells nothing about the secret."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``, ``None`` without such a header."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else None


def bearer_matches(request: Request, secret: str) -> bool:
    """True when the request's bearer token is ``secret``."""
    given = bearer_token(request)
    return given is not None and same_secret(given, secret)
