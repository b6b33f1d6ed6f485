"""First-party cookies set on ``/g/collect`` answers (SPEC 10.2: TikTok's ``ttclid``)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from publicsuffixlist import PublicSuffixList
from starlette.responses import Response

from tiktok_gateway.ingest import Cookie

_PSL = PublicSuffixList()


@lru_cache(maxsize=1024)
def registrable_domain(host: str) -> str | None:
    """``shop.example.co.uk`` -> ``example.co.uk``; ``None`` for IPs, ``localhost`` and suffixes."""
    host = host.strip().lower().rstrip(".")
    if not host:
        return None
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    domain: str | None = _PSL.privatesuffix(host)
    return domain


def set_cookie(response: Response, cookie: Cookie, *, host: str, cookie_domain: str) -> None:
    """Set ``cookie`` (Path ``/``, Secure, HttpOnly, SameSite=Lax) on the configured domain,
    else the host's registrable domain. Without either (an IP address, ``localhost``) the
    cookie is host-only.
    """
    domain = cookie_domain or registrable_domain(host.partition(":")[0]) or None
    response.headers.append(
        "set-cookie", _set_cookie_value(cookie.name, cookie.value, cookie.max_age, domain)
    )


# Starlette renders a cookie through http.cookies (~10 us a hit); a visitor's hits carry the same
# click id, so the rendered header is kept for the values seen a moment ago.
@lru_cache(maxsize=4096)
def _set_cookie_value(name: str, value: str, max_age: int, domain: str | None) -> str:
    """The ``Set-Cookie`` value Starlette's ``set_cookie`` writes for ``name=value``."""
    scratch = Response()
    scratch.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        domain=domain,
        secure=True,
        httponly=True,
        samesite="lax",
    )
    rendered: str = scratch.headers["set-cookie"]
    return rendered
