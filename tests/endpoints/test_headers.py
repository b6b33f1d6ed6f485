"""Answer headers written without Starlette's helpers are the ones those helpers write."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tiktok_gateway.endpoints.body import set_headers
from tiktok_gateway.endpoints.cookies import (
    TTCLID_MAX_AGE,
    registrable_domain,
    set_ttclid_cookie,
)
from tiktok_gateway.endpoints.cors import apply_cors

VALUES = [
    "CLK",
    "E.C.P.CnsBmXf0aB-_~:!#$%&'*+^`|",
    "E.C.P.abc def",  # quoted by http.cookies
    'with "quotes";and=semicolon,comma',
    "caf\u00e9",
    "back\\slash",
]
HOSTS = ["sgtm.shop.co.uk:8443", "127.0.0.1", "localhost", "[::1]:80", "b\u00fccher.example"]


def _starlettes(value: str, domain: str | None) -> list[tuple[bytes, bytes]]:
    response = Response(status_code=204)
    response.set_cookie(
        "ttclid",
        value,
        max_age=TTCLID_MAX_AGE,
        path="/",
        domain=domain,
        secure=True,
        httponly=True,
        samesite="lax",
    )
    return response.raw_headers


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("cookie_domain", ["", "shop.example", "odd domain;x"])
def test_the_ttclid_cookie_is_what_set_cookie_writes(
    value: str, host: str, cookie_domain: str
) -> None:
    ours = Response(status_code=204)
    set_ttclid_cookie(ours, value, host=host, cookie_domain=cookie_domain)
    domain = cookie_domain or registrable_domain(host.partition(":")[0]) or None
    assert ours.raw_headers == _starlettes(value, domain)


def test_the_fast_cookie_header_reads_as_expected() -> None:
    response = Response(status_code=204)
    set_ttclid_cookie(response, "CLK", host="sgtm.shop.co.uk", cookie_domain="")
    assert response.headers["set-cookie"] == (
        "ttclid=CLK; Domain=shop.co.uk; HttpOnly; Max-Age=2592000; Path=/; SameSite=lax; Secure"
    )


def test_set_headers_appends_new_headers_as_the_mutable_headers_would() -> None:
    ours, theirs = JSONResponse({"a": 1}), JSONResponse({"a": 1})
    set_headers(ours, {b"x-request-id": "0123", b"vary": "Origin"})
    theirs.headers["X-Request-ID"] = "0123"
    theirs.headers["Vary"] = "Origin"
    assert ours.raw_headers == theirs.raw_headers


def test_set_headers_replaces_headers_that_are_there() -> None:
    response = Response(status_code=204, headers={"Vary": "Accept", "X-Other": "1"})
    response.raw_headers.append((b"vary", b"Cookie"))
    set_headers(response, {b"vary": "Origin", b"x-request-id": "0123"})
    assert response.headers.getlist("vary") == ["Origin"]
    assert response.headers["x-request-id"] == "0123"
    assert response.headers["x-other"] == "1"


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
