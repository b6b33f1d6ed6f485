"""Answer headers written without Starlette's helpers are the ones those helpers write."""

from __future__ import annotations

import pytest
from starlette.responses import Response

from tiktok_gateway.endpoints.cookies import (
    TTCLID_MAX_AGE,
    registrable_domain,
    set_ttclid_cookie,
)

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
