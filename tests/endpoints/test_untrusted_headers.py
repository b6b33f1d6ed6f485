"""Headers from the internet never reach a response header, a cache or a stored event unchecked
(SPEC 13): the Host behind the ttclid cookie's Domain, the user agent, the click id."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.endpoints.test_collect import queued_events
from tests.harness import HIT, run, running
from tiktok_gateway.endpoints.cookies import _registrable, host_name, registrable_domain
from tiktok_gateway.sources.request_context import MAX_USER_AGENT

CLICK = "E.C.P.click-1"


def hit_with_click(click: str) -> str:
    page = quote(f"https://shop.example.com/?ttclid={click}", safe="")
    return f"v=2&tid=G-1&cid=1.2&_p=7&_s=1&en=page_view&dl={page}"


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Shop.Example.com:443", "shop.example.com"),
        ("shop.example.com.", "shop.example.com"),
        ("a.example.com; Path=/admin; SameSite=None", None),
        ("a.example.com\r\nSet-Cookie: x=1", None),
        ("[::1]:8080", None),
        ("exa_mple.com", None),
        ("-bad.example.com", None),
        ("a" * 64 + ".example.com", None),  # a label over 63
        ("a." * 127 + "com", None),  # over 253
        ("", None),
        ("x" * 4_000_000, None),
    ],
)
def test_host_names_are_validated(header: str, name: str | None) -> None:
    assert host_name(header) == name


@given(st.text(max_size=300))
def test_only_valid_names_reach_the_cache(header: str) -> None:
    before = _registrable.cache_info()
    registrable_domain(header)
    after = _registrable.cache_info()
    if host_name(header) is None:
        assert (after.hits, after.misses) == (before.hits, before.misses)
    assert after.currsize <= 1024


@pytest.mark.parametrize(
    "host",
    [
        "a.example.com; Path=/admin; SameSite=None",
        "a.example.com;Domain=evil.example",
        "evil.example, shop.example.com",
    ],
)
def test_a_host_header_adds_no_cookie_attribute(host: str) -> None:
    async def scenario() -> str:
        async with running() as gw:
            answer = await gw.client.get(
                f"/g/collect?{hit_with_click(CLICK)}", headers={"Host": host}
            )
            assert answer.status_code == 204
            [cookie] = answer.headers.get_list("set-cookie")
            return cookie

    cookie = run(scenario())
    assert cookie.startswith(f"ttclid={CLICK};")
    assert "Domain" not in cookie  # host-only: no valid host name to take it from
    assert "/admin" not in cookie
    assert "SameSite=lax" in cookie
    assert cookie.count(";") == 5  # HttpOnly, Max-Age, Path, SameSite, Secure


def test_a_valid_host_gives_its_registrable_domain() -> None:
    async def scenario() -> str:
        async with running() as gw:
            answer = await gw.client.get(
                f"/g/collect?{hit_with_click(CLICK)}", headers={"Host": "sgtm.shop.co.uk"}
            )
            [cookie] = answer.headers.get_list("set-cookie")
            return cookie

    assert "Domain=shop.co.uk;" in run(scenario())


def test_an_overlong_click_id_sets_no_cookie() -> None:
    async def scenario() -> list[str]:
        async with running() as gw:
            answer = await gw.client.get(f"/g/collect?{hit_with_click('E.C.P.' + 'x' * 600)}")
            assert answer.status_code == 204
            return answer.headers.get_list("set-cookie")

    assert run(scenario()) == []


@pytest.mark.parametrize(("length", "kept"), [(MAX_USER_AGENT, True), (MAX_USER_AGENT + 1, False)])
def test_an_overlong_user_agent_is_not_stored(length: int, kept: bool) -> None:
    agent = "Mozilla/5.0 " + "x" * (length - len("Mozilla/5.0 "))

    async def scenario() -> dict[str, object]:
        async with running() as gw:
            answer = await gw.client.get(f"/g/collect?{HIT}", headers={"User-Agent": agent})
            assert answer.status_code == 204
            [envelope] = await queued_events(gw.queue)
            user: dict[str, object] = envelope.event["user"]
            return user

    user = run(scenario())
    assert ("user_agent" in user) is kept
    if kept:
        assert user["user_agent"] == agent
