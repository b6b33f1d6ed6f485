"""First-party cookies set on ``/g/collect`` answers (SPEC 10.2: TikTok's ``ttclid``).

The cookie's Domain is ``GATEWAY_COOKIE_DOMAIN``, else the registrable domain of the request's
``Host`` when that is a valid host name (SPEC 13): nothing from a header reaches a response header
unchecked, so ``Host: a.example.com; Path=/admin`` adds no attribute (the cookie is host-only),
and the caches below are keyed by validated, bounded names only.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Final

from publicsuffixlist import PublicSuffixList
from starlette.responses import Response

from tiktok_gateway.ingest import Cookie

_PSL = PublicSuffixList()

# A DNS host name (RFC 1123 labels), lower case, without a trailing dot: at most 253 characters.
_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)


def host_name(host_header: str) -> str | None:
    """The host name of a ``Host`` header (port and trailing dot dropped, lower-cased) when it is
    a valid DNS name; ``None`` for anything else (IP literals included)."""
    if len(host_header) > 260:  # 253 and a port: anything longer is not a host
        return None
    name = host_header.strip().lower()
    if name.startswith("["):  # an IPv6 literal
        return None
    name = name.partition(":")[0].rstrip(".")
    return name if _HOSTNAME.fullmatch(name) else None


def registrable_domain(host: str) -> str | None:
    """``shop.example.co.uk`` -> ``example.co.uk``; ``None`` for IPs, ``localhost``, suffixes and
    anything that is not a valid host name. Cached: only valid names (``host_name``) are kept."""
    name = host_name(host)
    if name is None:
        return None
    return _registrable(name)


@lru_cache(maxsize=1024)
def _registrable(name: str) -> str | None:
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    domain: str | None = _PSL.privatesuffix(name)
    return domain


def set_cookie(response: Response, cookie: Cookie, *, host: str, cookie_domain: str) -> None:
    """Set ``cookie`` (Path ``/``, Secure, HttpOnly, SameSite=Lax) on the configured domain,
    else the host's registrable domain. Without either (an IP address, ``localhost``) the
    cookie is host-only.
    """
    domain = cookie_domain or registrable_domain(host) or None
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
