"""The headers of ingest answers: the ttclid cookie and CORS."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import Response

from tiktok_gateway.endpoints.cookies import _set_cookie_value, set_cookie
from tiktok_gateway.endpoints.cors import apply_cors
from tiktok_gateway.ingest import Cookie
from tiktok_gateway.tags.tiktok.collector import TTCLID_COOKIE, TTCLID_MAX_AGE


def _cookie(value: str, host: str, cookie_domain: str = "") -> str:
    response = Response(status_code=204)
    cookie = Cookie(TTCLID_COOKIE, value, TTCLID_MAX_AGE)
    set_cookie(response, cookie, host=host, cookie_domain=cookie_domain)
    (header,) = response.headers.getlist("set-cookie")
    return header


def test_the_ttclid_cookie_header() -> None:
    expected = (
        "ttclid=CLK; Domain=shop.co.uk; HttpOnly; Max-Age=2592000; Path=/; SameSite=lax; Secure"
    )
    assert _cookie("CLK", "sgtm.shop.co.uk") == expected
    rendered = _set_cookie_value.cache_info().misses
    assert _cookie("CLK", "sgtm.shop.co.uk") == expected  # kept: not rendered again
    assert _set_cookie_value.cache_info().misses == rendered
    # The kept headers are told apart by value and by domain.
    assert _cookie("CLK2", "sgtm.shop.co.uk").startswith("ttclid=CLK2; Domain=shop.co.uk;")
    assert "Domain=cookies.example" in _cookie("CLK", "sgtm.shop.co.uk", "cookies.example")
    assert "Domain" not in _cookie("CLK", "127.0.0.1:8080")  # host-only on an IP address


def _request(method: str, headers: dict[str, str]) -> Request:
    raw = [(key.encode(), value.encode()) for key, value in headers.items()]
    return Request({"type": "http", "method": method, "headers": raw, "query_string": b""})


@pytest.mark.parametrize("method", ["GET", "OPTIONS"])
def test_cors_headers(method: str) -> None:
    origin = {"origin": "https://shop.example", "access-control-request-headers": "X-A"}
    response = Response(status_code=204)
    apply_cors(_request(method, origin), response, ())
    expected = {
        "access-control-allow-origin": "https://shop.example",
        "access-control-allow-credentials": "true",
        "vary": "Origin",
    }
    if method == "OPTIONS":
        expected |= {
            "access-control-allow-methods": "GET, POST, OPTIONS",
            "access-control-allow-headers": "X-A",
            "access-control-max-age": "86400",
        }
    assert dict(response.headers) == expected
    refused = Response(status_code=204)
    apply_cors(_request(method, origin), refused, ("https://other.example",))
    assert dict(refused.headers) == {}
