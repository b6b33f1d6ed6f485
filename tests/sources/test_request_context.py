from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiktok_gateway.sources.request_context import (
    build_context,
    client_ip,
    header_map,
    parse_cookie_header,
    parse_trusted_proxies,
)

TRUSTED = parse_trusted_proxies(["10.0.0.0/8", "2001:db8:ffff::/48", "192.168.1.1", " "])
PROXY = "10.0.0.1"


def test_parse_trusted_proxies_accepts_cidrs_and_addresses() -> None:
    networks = parse_trusted_proxies(["10.0.0.0/8", "192.168.1.1", "fd00::/8", "", "10.1.2.3/16"])
    assert [str(n) for n in networks] == ["10.0.0.0/8", "192.168.1.1/32", "fd00::/8", "10.1.0.0/16"]


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not-an-ip", "10.0.0", "::1/129"])
def test_parse_trusted_proxies_names_the_bad_entry(entry: str) -> None:
    with pytest.raises(ValueError, match="invalid trusted proxy") as info:
        parse_trusted_proxies(["10.0.0.0/8", entry])
    assert repr(entry) in str(info.value)


def test_untrusted_peer_ignores_forwarding_headers() -> None:
    headers = {"x-forwarded-for": "1.1.1.1", "forwarded": "for=2.2.2.2"}
    assert client_ip("203.0.113.5", headers, TRUSTED) == "203.0.113.5"


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_ip("10.0.0.1", {"x-forwarded-for": "1.1.1.1"}, ()) == "10.0.0.1"


@pytest.mark.parametrize(
    ("xff", "expected"),
    [
        ("198.51.100.7", "198.51.100.7"),
        # The client wrote the leftmost value itself; only the proxy's appended value counts.
        ("6.6.6.6, 198.51.100.7", "198.51.100.7"),
        ("6.6.6.6,198.51.100.7 , 10.1.2.3, 192.168.1.1", "198.51.100.7"),
        ("10.0.0.5, 10.0.0.6", "10.0.0.5"),  # all trusted: an internal caller
        ("198.51.100.7:5555", "198.51.100.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:DB8::AbC", "2001:db8::abc"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        # An unusable hop ends the walk: anything left of it may be forged.
        ("198.51.100.7, garbage", None),
        ("198.51.100.7, unknown", None),
        ("198.51.100.7, , 10.0.0.3", None),
        ("[2001:db8::1", None),
    ],
)
def test_trusted_peer_walks_x_forwarded_for(xff: str, expected: str | None) -> None:
    assert client_ip(PROXY, {"x-forwarded-for": xff}, TRUSTED) == expected


def test_trusted_ipv6_and_mapped_peers() -> None:
    headers = {"x-forwarded-for": "2001:db8::abc"}
    assert client_ip("2001:db8:ffff::1", headers, TRUSTED) == "2001:db8::abc"
    assert client_ip("::ffff:10.0.0.1", headers, TRUSTED) == "2001:db8::abc"
    assert client_ip("::ffff:203.0.113.9", headers, TRUSTED) == "203.0.113.9"


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ('For="192.0.2.43:47011"', "192.0.2.43"),
        ("for=6.6.6.6, for=192.0.2.60, for=10.0.0.9", "192.0.2.60"),
        ('for=6.6.6.6, proto=https;for="192.0.2.60"', "192.0.2.60"),
        ('for="_a,b;c", for=192.0.2.1', "192.0.2.1"),
        ("for=_hidden, for=10.0.0.3", None),
        ("for=192.0.2.60, for=unknown", None),
        ("proto=https", None),
        ("for=", None),
        ('for="\\"', None),
    ],
)
def test_trusted_peer_reads_forwarded(forwarded: str, expected: str | None) -> None:
    assert client_ip(PROXY, {"forwarded": forwarded}, TRUSTED) == expected


def test_x_forwarded_for_wins_over_forwarded_and_blank_falls_back() -> None:
    both = {"x-forwarded-for": "198.51.100.7", "forwarded": "for=192.0.2.60"}
    assert client_ip(PROXY, both, TRUSTED) == "198.51.100.7"
    blank = {"x-forwarded-for": "  ", "forwarded": "for=192.0.2.60"}
    assert client_ip(PROXY, blank, TRUSTED) == "192.0.2.60"


def test_header_names_are_case_insensitive_through_header_map() -> None:
    headers = header_map([("X-Forwarded-For", "198.51.100.7")])
    assert client_ip(PROXY, headers, TRUSTED) == "198.51.100.7"
    assert client_ip(PROXY, header_map([("FORWARDED", "for=192.0.2.60")]), TRUSTED) == "192.0.2.60"


def test_trusted_peer_without_headers_or_unknown_peer() -> None:
    assert client_ip(PROXY, {}, TRUSTED) is None
    assert client_ip(None, {"x-forwarded-for": "1.1.1.1"}, TRUSTED) is None
    assert client_ip("testclient", {}, TRUSTED) is None
    assert client_ip("fe80::1%eth0", {}, TRUSTED) == "fe80::1"


def test_header_map_joins_repeated_headers_so_the_proxy_line_is_read() -> None:
    # The client sent its own X-Forwarded-For line; the proxy added a second one.
    pairs = [
        ("X-Forwarded-For", "6.6.6.6"),
        ("x-forwarded-for", "198.51.100.7"),
        ("Cookie", "a=1"),
        ("cookie", "b=2"),
    ]
    headers = header_map(pairs)
    assert headers == {"x-forwarded-for": "6.6.6.6, 198.51.100.7", "cookie": "a=1; b=2"}
    assert client_ip(PROXY, headers, TRUSTED) == "198.51.100.7"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("a=1; b=2", {"a": "1", "b": "2"}),
        ("ttclid=first; ttclid=second", {"ttclid": "first"}),
        ('_ttp="quoted"', {"_ttp": "quoted"}),
        ("bare; =nameless; x=; y = spaced ", {"x": "", "y": "spaced"}),
        ("a=b=c", {"a": "b=c"}),
        ('j={"k":1,"l":[2]}; _ttp=2Kx%20y', {"j": '{"k":1,"l":[2]}', "_ttp": "2Kx%20y"}),
        ("", {}),
        (";;;", {}),
    ],
)
def test_parse_cookie_header(header: str, expected: dict[str, str]) -> None:
    assert parse_cookie_header(header) == expected


def test_build_context() -> None:
    ctx = build_context(
        received_at=1700000000.5,
        user_agent="Mozilla/5.0",
        peer=PROXY,
        headers={"x-forwarded-for": "198.51.100.7"},
        trusted=TRUSTED,
        cookie_header="ttclid=abc; _ttp=xyz; other=1",
    )
    assert ctx.received_at == 1700000000.5
    assert ctx.user_agent == "Mozilla/5.0"
    assert ctx.ip == "198.51.100.7"
    assert dict(ctx.cookies) == {"ttclid": "abc", "_ttp": "xyz"}  # only those tags read


def test_build_context_blank_values() -> None:
    ctx = build_context(
        received_at=1.0, user_agent="  ", peer=None, headers={}, trusted=(), cookie_header=None
    )
    assert ctx.user_agent is None
    assert ctx.ip is None
    assert dict(ctx.cookies) == {}


addresses = st.one_of(
    st.ip_addresses().map(str), st.sampled_from(["10.0.0.1", "2001:db8:ffff::9", "::ffff:10.2.3.4"])
)
header_text = st.one_of(
    st.text(),
    st.lists(st.one_of(addresses, st.text(max_size=12)), max_size=6).map(", ".join),
    st.lists(
        st.tuples(st.sampled_from(["for", "For", "by", "proto", ""]), st.text(max_size=12)),
        max_size=6,
    ).map(lambda pairs: ";".join(f"{k}={v}" for k, v in pairs)),
)


@given(peer=st.one_of(st.none(), addresses, st.text()), xff=header_text, fwd=header_text)
def test_client_ip_never_raises(peer: str | None, xff: str, fwd: str) -> None:
    for headers in ({"x-forwarded-for": xff, "forwarded": fwd}, {"Forwarded": fwd}):
        result = client_ip(peer, headers, TRUSTED)
        assert result is None or isinstance(result, str)


@given(st.text())
def test_parse_cookie_header_never_raises(header: str) -> None:
    cookies = parse_cookie_header(header)
    assert all(isinstance(k, str) and k and isinstance(v, str) for k, v in cookies.items())
