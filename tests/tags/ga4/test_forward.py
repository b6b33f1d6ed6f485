"""GA4 forwarding (SPEC 12): the exact query, headers and body sent to Google for a hit."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import get_args
from urllib.parse import parse_qsl

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tiktok_gateway.sources.ga4_consent import decode_gcd, decode_gcs
from tiktok_gateway.tags.ga4.forward import (
    MAX_HEADER_VALUE,
    MP_PATH,
    WEB_PATH,
    Forward,
    IpMode,
    _escaped,
    _scan_query,
    _scan_segments,
    analytics_denied,
    forwarded_headers,
    forwarded_query,
    mp_forward,
    visitor_ip,
    wants_region1,
    web_forward,
)

REAL_HITS = Path(__file__).resolve().parents[2] / "fixtures" / "ga4" / "real-hits.txt"
IP_MODES: tuple[IpMode, ...] = get_args(IpMode)
DROPPED = ("richsstsse", "_uip", "uip")
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/136.0.0.0"
BROWSER = {"user-agent": UA}
HEAD = "v=2&tid=G-TEST"


def load_real_hits() -> list[tuple[str, bytes]]:
    """(query, body) of each hit of the fixture, in the file's order (BODY: lines hold the
    POST body of the hit above, with CRLF written as the four characters \\r\\n)."""
    hits: list[tuple[str, bytes]] = []
    for line in REAL_HITS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("BODY:"):
            query, _ = hits[-1]
            hits[-1] = (query, line[len("BODY:") :].replace("\\r\\n", "\r\n").encode())
        else:
            hits.append((line, b""))
    return hits


HITS = load_real_hits()


def web(
    query: str | bytes,
    body: bytes = b"",
    *,
    ip: str | None = "203.0.113.7",
    mode: IpMode = "full",
    headers: dict[str, str] | None = None,
) -> Forward:
    raw = query.encode() if isinstance(query, str) else query
    return web_forward(raw, body, BROWSER if headers is None else headers, ip, mode)


def uip_of(forward: Forward) -> list[str]:
    return [
        value for name, value in parse_qsl(forward.query, keep_blank_values=True) if name == "_uip"
    ]


# --- golden hits --------------------------------------------------------------------------------


def test_get_hit_golden() -> None:
    raw = (
        b"v=2&tid=G-F9XM71K45T&gcs=G111&gcd=13r3r3r2r5l1&richsstsse&cid=584335997.1746564151"
        b"&_uip=6.6.6.6&uip=7.7.7.7&sst.gcsub=region1&dl=https%3A%2F%2Fshop.example%2F%3Fa%3D1"
        b"&dr=&dt=Shop%20%7C%20Home&en=page_view&ep.x-ttq-event-id=abc&_et=12"
    )
    headers = {
        "user-agent": UA,
        "accept-language": "de-DE,de;q=0.9,en;q=0.8",
        "sec-ch-ua": '"Chromium";v="136", "Google Chrome";v="136", "Not.A/Brand";v="99"',
        "sec-ch-ua-mobile": "?0",
        "sec-ch-ua-platform": '"macOS"',
        "cookie": "_ga=GA1.1.584335997.1746564151; ttclid=abc",
        "host": "gw.shop.example",
        "x-forwarded-for": "6.6.6.6, 198.51.100.1",
    }
    forward = web_forward(raw, b"", headers, "203.0.113.7", "full")
    assert forward == Forward(
        path="/g/collect",
        query=(
            "v=2&tid=G-F9XM71K45T&gcs=G111&gcd=13r3r3r2r5l1&cid=584335997.1746564151"
            "&sst.gcsub=region1&dl=https%3A%2F%2Fshop.example%2F%3Fa%3D1"
            "&dr=&dt=Shop%20%7C%20Home&en=page_view&ep.x-ttq-event-id=abc&_et=12"
            "&_uip=203.0.113.7"
        ),
        headers=(
            ("user-agent", UA),
            ("accept-language", "de-DE,de;q=0.9,en;q=0.8"),
            ("sec-ch-ua", '"Chromium";v="136", "Google Chrome";v="136", "Not.A/Brand";v="99"'),
            ("sec-ch-ua-mobile", "?0"),
            ("sec-ch-ua-platform", '"macOS"'),
        ),
        body=b"",
        region1=True,
    )


def test_post_batch_golden() -> None:
    body = b"en=page_view&_ee=1\r\nen=scroll&epn.percent_scrolled=90&_et=8\r\n"
    raw = b"v=2&tid=G-ABCDEF1234&gcs=G111&cid=1.2&_s=1&richsstsse"
    forward = web_forward(raw, body, BROWSER, "2001:db8:1234:5678::1", "truncated")
    assert forward == Forward(
        path="/g/collect",
        query="v=2&tid=G-ABCDEF1234&gcs=G111&cid=1.2&_s=1&_uip=2001%3Adb8%3A1234%3A%3A",
        headers=(("user-agent", UA),),
        body=body,
        region1=False,
    )
    assert forward.body is body


def test_mp_golden() -> None:
    body = b'{"client_id":"1.2","ip_override":"203.0.113.7","events":[{"name":"purchase"}]}'
    raw = b"measurement_id=G-ABC&api_secret=s3cr%2Bt&richsstsse&_uip=6.6.6.6&uip=7.7.7.7"
    headers = {"user-agent": "shop-backend/1.0", "authorization": "Bearer x", "cookie": "a=b"}
    assert mp_forward(raw, body, headers) == Forward(
        path="/mp/collect",
        query="measurement_id=G-ABC&api_secret=s3cr%2Bt",
        headers=(("user-agent", "shop-backend/1.0"),),
        body=body,
        region1=False,
    )


def test_paths() -> None:
    assert WEB_PATH == "/g/collect"
    assert MP_PATH == "/mp/collect"
    assert web(HEAD).path == WEB_PATH
    assert mp_forward(b"measurement_id=G-ABC", b"{}", {}).path == MP_PATH


# --- the query ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", ""),
        (b"a=1&&b=2&", "a=1&b=2"),
        (b"richsstsse", ""),
        (b"a=1&richsstsse=&b=2", "a=1&b=2"),
        # Names are compared decoded, as parse_qsl decodes them.
        (b"%5Fuip=6.6.6.6&u%69p=1&%72ichsstsse&a=1", "a=1"),
        # Not the removed names: a different name, a value, a "+" (a space).
        (b"_uipx=1&x=_uip&_uip+=2&uip_=3", "_uipx=1&x=_uip&_uip+=2&uip_=3"),
        # Segments stay as they came: no re-encoding of what gtag encoded.
        (b"dt=a+b%20c&x=%e9%2f&y=A%7e", "dt=a+b%20c&x=%e9%2f&y=A%7e"),
        (b"em=tv.1~em.abc~co0.NO&p=(x)!*'$,;:@/?", "em=tv.1~em.abc~co0.NO&p=(x)!*'$,;:@/?"),
    ],
)
def test_forwarded_query(raw: bytes, expected: str) -> None:
    assert forwarded_query(raw) == expected


def test_non_ascii_and_raw_spaces_are_percent_encoded() -> None:
    raw = "dt=Café Zürich&ep.q=日本&dl=https://x.example/a b".encode()
    assert forwarded_query(raw) == (
        "dt=Caf%C3%A9%20Z%C3%BCrich&ep.q=%E6%97%A5%E6%9C%AC&dl=https://x.example/a%20b"
    )


def test_unsafe_bytes_are_percent_encoded_byte_by_byte() -> None:
    raw = b'a=\xff\xfe\x00\t\r\n\x7f&b="<>\\^`{|}#[]'
    assert forwarded_query(raw) == (
        "a=%FF%FE%00%09%0D%0A%7F&b=%22%3C%3E%5C%5E%60%7B%7C%7D%23%5B%5D"
    )


def test_a_percent_that_starts_no_escape_is_escaped_itself() -> None:
    # Decoders keep such a "%" literally; %25 decodes to the same and is a valid URL.
    assert forwarded_query(b"a=100%&b=%zz&c=%4&d=%41%") == "a=100%25&b=%25zz&c=%254&d=%41%25"
    assert parse_qsl("a=100%&b=%zz&c=%4&d=%41%") == parse_qsl(
        forwarded_query(b"a=100%&b=%zz&c=%4&d=%41%")
    )


def test_forwarded_query_appends_the_visitor_ip_encoded() -> None:
    assert forwarded_query(b"a=1&_uip=6.6.6.6", "203.0.113.7") == "a=1&_uip=203.0.113.7"
    assert forwarded_query(b"", "2001:db8::1") == "_uip=2001%3Adb8%3A%3A1"


def test_client_supplied_ip_is_never_forwarded() -> None:
    forward = web(HEAD + "&_uip=6.6.6.6&uip=7.7.7.7&%5Fuip=8.8.8.8", ip=None)
    assert forward.query == HEAD
    assert web(HEAD + "&_uip=6.6.6.6&uip=7.7.7.7").query == HEAD + "&_uip=203.0.113.7"


# --- the visitor's address ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "mode", "expected"),
    [
        ("203.0.113.77", "full", "203.0.113.77"),
        ("203.0.113.77", "truncated", "203.0.113.0"),
        ("203.0.113.77", "none", None),
        ("::ffff:203.0.113.77", "full", "203.0.113.77"),
        ("::ffff:203.0.113.77", "truncated", "203.0.113.0"),
        ("2001:db8:abcd:12:34:56:78:9a", "full", "2001:db8:abcd:12:34:56:78:9a"),
        ("2001:DB8:ABCD:0012::9A", "full", "2001:db8:abcd:12::9a"),
        ("2001:db8:abcd:12:34:56:78:9a", "truncated", "2001:db8:abcd::"),
        ("2001:db8:ab00:ffff:ffff:ffff:ffff:ffff", "truncated", "2001:db8:ab00::"),
        ("2001:db8:abcd:12:34:56:78:9a", "none", None),
        ("fe80::1%eth0", "full", "fe80::1"),
        (None, "full", None),
        (None, "truncated", None),
        ("", "full", None),
        ("not-an-ip", "full", None),
        ("999.1.1.1", "truncated", None),
        ("1.2.3.4\x00", "full", None),
    ],
)
def test_visitor_ip(ip: str | None, mode: IpMode, expected: str | None) -> None:
    assert visitor_ip(ip, mode) == expected


@pytest.mark.parametrize(
    ("ip", "mode", "expected"),
    [
        ("203.0.113.77", "full", ["203.0.113.77"]),
        ("203.0.113.77", "truncated", ["203.0.113.0"]),
        ("203.0.113.77", "none", []),
        ("2001:db8:abcd:12::9a", "full", ["2001:db8:abcd:12::9a"]),
        ("2001:db8:abcd:12::9a", "truncated", ["2001:db8:abcd::"]),
        ("2001:db8:abcd:12::9a", "none", []),
        (None, "full", []),
        ("junk", "full", []),
    ],
)
def test_ip_modes_in_the_forward(ip: str | None, mode: IpMode, expected: list[str]) -> None:
    forward = web(HEAD + "&en=page_view", ip=ip, mode=mode)
    assert uip_of(forward) == expected
    assert forward.query.startswith(HEAD + "&en=page_view")


def test_an_unknown_mode_sends_no_address() -> None:
    assert visitor_ip("203.0.113.7", "partial") is None  # type: ignore[arg-type]


def test_ipv6_uip_is_percent_encoded() -> None:
    assert web(HEAD, ip="2001:db8::1").query == HEAD + "&_uip=2001%3Adb8%3A%3A1"


# --- consent ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consent", "sends_ip"),
    [
        ("gcs=G111", True),
        ("gcs=G101", True),  # ad_storage denied, analytics_storage granted
        ("gcs=G100", False),
        ("gcs=G110", False),
        ("gcs=G1--", True),
        ("gcs=G1%30%30", False),  # the value is compared decoded
        ("g%63s=G100", False),  # and so is the name
        ("gcd=13r3r3r2r5l1", True),  # analytics letter r: denied by default, granted by update
        ("gcd=13r3q3q2q5l1", False),  # q: denied / denied
        ("gcd=13r3p3p2p5l1", False),  # p: denied by default, no update
        ("gcd=13v3m3r2r5l1", False),  # m: no default, denied by update
        ("gcd=13q3v3q2q5l1", True),  # v: granted; ad_storage (q) does not matter
        ("gcd=13t3Z3t2t5l1", True),  # Z: granted by default
        ("gcd=13r3", True),  # too short to say: not set
        ("gcs=G1--&gcd=13r3q3q2q5l1", False),
        ("gcs=G111&gcd=13r3r3r2r5l1", True),
        # Contradictory signals: any denial withholds the address.
        ("gcs=G111&gcd=13r3q3q2q5l1", False),
        ("gcs=G101&gcs=G100", False),
        ("gcs=G100&gcs=G111", False),
        ("gcd=13r3q3q2q5l1&gcs=G111", False),
        ("", True),
    ],
)
def test_analytics_denial_in_the_query(consent: str, sends_ip: bool) -> None:
    query = f"{HEAD}&{consent}&en=page_view"
    sent = {"full": ["203.0.113.7"], "truncated": ["203.0.113.0"], "none": []}
    for mode in IP_MODES:
        forward = web(query, mode=mode)
        assert uip_of(forward) == (sent[mode] if sends_ip else [])
        # Consent parameters themselves go to Google unchanged.
        assert forward.query.startswith(query.replace("&&", "&"))
    assert analytics_denied(query.encode(), b"") is not sends_ip


@pytest.mark.parametrize(
    "body",
    [
        b"en=page_view&gcs=G111\r\nen=scroll&gcs=G100\r\n",
        b"en=page_view\nen=scroll&gcd=13r3q3q2q5l1",
        b"en=page_view\r\nen=scroll&_et=8&gcs=G110",
        b"en=scroll&g%63d=13r3q3q2q5l1",
        b"\r\n\r\nen=scroll&gcs=G100\r",
    ],
)
def test_analytics_denial_in_a_body_line_only(body: bytes) -> None:
    query = HEAD + "&gcs=G111&gcd=13r3r3r2r5l1"
    for mode in IP_MODES:
        forward = web(query, body, mode=mode)
        assert forward.query == query
        assert forward.body == body
    assert analytics_denied(query.encode(), body)


@pytest.mark.parametrize(
    "body",
    [
        b"en=page_view&gcs=G111\r\nen=scroll&gcs=G101\r\n",
        b"en=page_view\r\nen=scroll&gcd=13r3r3r2r5l1",
        b"en=scroll&xgcs=G100&gcsx=G100&v=gcs%3DG100",
        b"\xff\xfe&gcs=\xc3G100",  # not a G1 value: not set
    ],
)
def test_granted_body_lines_keep_the_address(body: bytes) -> None:
    assert uip_of(web(HEAD + "&gcs=G111", body)) == ["203.0.113.7"]
    assert not analytics_denied((HEAD + "&gcs=G111").encode(), body)


# --- region -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "region1"),
    [
        (HEAD + "&sst.gcsub=region1", True),
        (HEAD + "&sst.gcsub=region1&sst.gcsub=region2", True),
        (HEAD + "&sst.gcsub=region%31", True),
        (HEAD + "&sst%2Egcsub=region1", True),
        (HEAD, False),
        (HEAD + "&sst.gcsub=region2", False),
        (HEAD + "&sst.gcsub=REGION1", False),
        (HEAD + "&sst.gcsub=", False),
        (HEAD + "&ep.sst.gcsub=region1&x=sst.gcsub%3Dregion1", False),
    ],
)
def test_region1(query: str, region1: bool) -> None:
    assert web(query).region1 is region1
    assert wants_region1(query.encode()) is region1
    assert mp_forward(query.encode(), b"{}", {}).region1 is region1


def test_region1_is_only_read_from_the_query() -> None:
    assert not web(HEAD, b"en=page_view&sst.gcsub=region1").region1


# --- headers ------------------------------------------------------------------------------------


def test_header_selection() -> None:
    headers = {
        "host": "gw.shop.example",
        "cookie": "_ga=GA1.1.1.2",
        "authorization": "Bearer secret",
        "proxy-authorization": "Basic eA==",
        "x-forwarded-for": "6.6.6.6",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "evil.example",
        "forwarded": "for=6.6.6.6",
        "via": "1.1 proxy",
        "x-real-ip": "6.6.6.6",
        "origin": "https://shop.example",
        "referer": "https://shop.example/cart",
        "content-type": "text/plain;charset=UTF-8",
        "content-length": "42",
        "sec-ch-ua-platform-version": '"15.5.0"',
        "sec-ch-ua-full-version-list": '"Chromium";v="136.0.7103.114"',
        "sec-fetch-site": "same-site",
        "sec-ch-prefers-color-scheme": "dark",
        "sec-ch-uaa": "x",
        "accept-language": "en-US,en;q=0.9",
        "user-agent": UA,
        "sec-ch-ua-mobile": "?0",
        "sec-ch-ua": '"Chromium";v="136"',
    }
    assert forwarded_headers(headers) == (
        ("user-agent", UA),
        ("accept-language", "en-US,en;q=0.9"),
        ("sec-ch-ua", '"Chromium";v="136"'),
        ("sec-ch-ua-full-version-list", '"Chromium";v="136.0.7103.114"'),
        ("sec-ch-ua-mobile", "?0"),
        ("sec-ch-ua-platform-version", '"15.5.0"'),
    )
    assert web(HEAD, headers=headers).headers == forwarded_headers(headers)


def test_no_user_agent_in_none_out() -> None:
    assert forwarded_headers({}) == ()
    assert forwarded_headers({"accept-language": "de"}) == (("accept-language", "de"),)
    assert web(HEAD, headers={"cookie": "a=b"}).headers == ()
    assert mp_forward(b"measurement_id=G-ABC", b"{}", {}).headers == ()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "x" * (MAX_HEADER_VALUE + 1),
        "Mozilla/5.0\r\nX-Injected: 1",
        "Mozilla/5.0\x00",
        "Mozilla/5.0 (Ünïcode)",
        "Mozilla/5.0\x7f",
    ],
)
def test_unsendable_header_values_are_skipped(value: str) -> None:
    assert forwarded_headers({"user-agent": value, "sec-ch-ua": value}) == ()


def test_header_values_at_the_bound_and_with_blanks() -> None:
    longest = "x" * MAX_HEADER_VALUE
    assert forwarded_headers({"user-agent": longest}) == (("user-agent", longest),)
    assert forwarded_headers({"user-agent": "  Mozilla/5.0\t"}) == (("user-agent", "Mozilla/5.0"),)


def test_header_names_are_matched_in_any_case() -> None:
    assert forwarded_headers({"User-Agent": "Mozilla/5.0", "Sec-CH-UA-Mobile": "?1"}) == (
        ("user-agent", "Mozilla/5.0"),
        ("sec-ch-ua-mobile", "?1"),
    )
    assert forwarded_headers({"sec-ch-ua-\r\nx": "1", "sec-ch-ua-é": "1"}) == ()
    # Names that differ only in case (no real header map has them): the first one found wins.
    assert forwarded_headers({"User-Agent": "a", "user-agent": "b"}) == (("user-agent", "a"),)


# --- real hits ----------------------------------------------------------------------------------


def test_fixture_has_ten_hits() -> None:
    assert len(HITS) == 10
    assert b"\r\n" in HITS[7][1]


@pytest.mark.parametrize("number", range(1, len(HITS) + 1))
def test_real_hits(number: int) -> None:
    query, body = HITS[number - 1]
    forward = web(query, body)
    # Real gtag queries need no escaping: the forward is the query itself, minus richsstsse.
    kept = "&".join(s for s in query.split("&") if s != "richsstsse")
    assert forward.query == kept + "&_uip=203.0.113.7"
    expected = [(n, v) for n, v in parse_qsl(query, keep_blank_values=True) if n not in DROPPED]
    assert parse_qsl(forward.query, keep_blank_values=True) == [*expected, ("_uip", "203.0.113.7")]
    assert forward.body == body
    assert forward.region1 is ("sst.gcsub=region1" in query)
    assert forward.headers == (("user-agent", UA),)


def test_real_server_container_hits_drop_richsstsse_and_ask_for_region1() -> None:
    # Hits 4 to 7 went to a server container: they end in a bare richsstsse and carry sst.*.
    for query, body in HITS[3:7]:
        assert query.endswith("&richsstsse")
        forward = web(query, body, mode="truncated")
        assert forward.query == query.removesuffix("&richsstsse") + "&_uip=203.0.113.0"
        assert forward.region1
    assert not any(web(query, body).region1 for query, body in HITS[:3] + HITS[7:])


# --- any input ----------------------------------------------------------------------------------

_NAMES = st.sampled_from(
    [
        *(b"richsstsse", b"_uip", b"uip", b"%5Fuip", b"u%69p", b"_uip+", b"gcs", b"gcd", b"g%63s"),
        *(b"sst.gcsub", b"v", b"en", b"dl", b"", b"%", b"\xff", b"a b"),
    ]
)
_VALUES = st.sampled_from(
    [
        *(b"", b"G100", b"G110", b"G111", b"G101", b"13r3q3q2q5l1", b"13r3r3r2r5l1", b"region1"),
        *(b"6.6.6.6", b"%", b"%zz", b"%C3%A9", b"\xc3\xa9", b"+", b"\xff"),
    ]
)
_CONSENT = st.sampled_from(
    [b"gcs=G100", b"gcs=G110", b"g%63s=G100", b"gcd=13r3q3q2q5l1", b"gcs=G111", b"gcd=13r3r3r2r5l1"]
)
_SEGMENTS = st.one_of(
    st.tuples(_NAMES, st.just(b"="), _VALUES).map(b"".join),
    _NAMES,
    _CONSENT,
    st.binary(max_size=12),
)
RAW_QUERIES = st.one_of(
    st.binary(max_size=200),
    st.lists(_SEGMENTS, max_size=12).map(b"&".join),
)
BODIES = st.one_of(
    st.binary(max_size=200),
    st.lists(st.lists(_SEGMENTS, max_size=6).map(b"&".join), max_size=5).flatmap(
        lambda lines: st.sampled_from([b"\r\n", b"\n"]).map(lambda sep: sep.join(lines))
    ),
)
CLIENT_IPS = st.one_of(
    st.none(), st.text(max_size=40), st.ip_addresses().map(str), st.just("::ffff:10.1.2.3")
)
HEADERS = st.dictionaries(
    st.one_of(
        st.sampled_from(["user-agent", "accept-language", "sec-ch-ua", "sec-ch-ua-mobile"]),
        st.sampled_from(["cookie", "authorization", "x-forwarded-for", "forwarded", "via"]),
        st.text(max_size=20),
    ),
    st.text(max_size=40),
    max_size=8,
)
HEADER_NAMES = {"user-agent", "accept-language"}
# What a forwarded query may hold: RFC 3986 query characters and complete escapes.
ALLOWED = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*")


def _params(query: str) -> list[tuple[str, str]]:
    """Parameters exactly as bytes: latin-1 maps every byte and every escape to one character."""
    return parse_qsl(query, keep_blank_values=True, encoding="latin-1", errors="strict")


def _reference_denied(raw_query: bytes, body: bytes) -> bool:
    """Any gcs/gcd of the query or a body line denying analytics_storage, via parse_qsl."""
    places = [raw_query.decode("latin-1")]
    places += [line.removesuffix("\r") for line in body.decode("latin-1").split("\n")]
    for place in places:
        for name, value in _params(place):
            if name == "gcs" and decode_gcs(value)["analytics_storage"] == "denied":
                return True
            if name == "gcd" and decode_gcd(value)["analytics_storage"] == "denied":
                return True
    return False


def _check_headers(forward: Forward) -> None:
    for name, value in forward.headers:
        assert name in HEADER_NAMES or name == "sec-ch-ua" or name.startswith("sec-ch-ua-")
        assert value.isascii()
        assert value.isprintable()
        assert 0 < len(value) <= MAX_HEADER_VALUE


@given(RAW_QUERIES, BODIES, HEADERS, CLIENT_IPS, st.sampled_from(IP_MODES))
@example(b"a=%C3&b=\xc3%A9&%", b"", {}, "1.2.3.4", "full")
@example(bytes(range(256)), bytes(range(256)), {}, "1.2.3.4", "full")
@example(b"gcs=G111", b"en=a\r\nen=b&gcs=G100", {}, "1.2.3.4", "truncated")
@example(b"x=1&gcs=G100", b"", {"user-agent": "a\r\nb"}, "::1", "full")
def test_web_forward_keeps_every_parameter(
    raw: bytes, body: bytes, headers: dict[str, str], ip: str | None, mode: IpMode
) -> None:
    forward = web_forward(raw, body, headers, ip, mode)
    assert forward.path == WEB_PATH
    assert forward.query.isascii()
    assert ALLOWED.fullmatch(forward.query)
    assert forward.body == body
    uip = None if _reference_denied(raw, body) else visitor_ip(ip, mode)
    expected = [(n, v) for n, v in _params(raw.decode("latin-1")) if n not in DROPPED]
    if uip is not None:
        expected.append(("_uip", uip))
    assert _params(forward.query) == expected
    assert forward.region1 is (("sst.gcsub", "region1") in expected)
    _check_headers(forward)


@given(RAW_QUERIES, BODIES, HEADERS)
@example(bytes(range(256)), b"", {"cookie": "a=b"})
def test_mp_forward_keeps_every_parameter(raw: bytes, body: bytes, headers: dict[str, str]) -> None:
    forward = mp_forward(raw, body, headers)
    assert forward.path == MP_PATH
    assert forward.query.isascii()
    assert ALLOWED.fullmatch(forward.query)
    assert forward.body == body
    expected = [(n, v) for n, v in _params(raw.decode("latin-1")) if n not in DROPPED]
    assert _params(forward.query) == expected
    _check_headers(forward)


SAFE_PIECES = st.sampled_from(
    ["a", "_uip", "uip", "%5Fuip", "richsstsse", "=", "1", "%41", "%e9", "+", ".", "~", "x%2By"]
)


@given(st.lists(st.lists(SAFE_PIECES, max_size=4).map("".join), max_size=10))
def test_safe_segments_go_out_verbatim(segments: list[str]) -> None:
    # A query that needs no escaping is never re-encoded: each kept segment goes as it came.
    kept = [s for s in segments if s and _params(s)[0][0] not in DROPPED]
    assert forwarded_query("&".join(segments).encode()) == "&".join(kept)


@given(st.ip_addresses(v=4))
def test_ipv4_truncation_keeps_the_24(address: ipaddress.IPv4Address) -> None:
    truncated = visitor_ip(str(address), "truncated")
    assert truncated is not None
    assert ipaddress.IPv4Address(truncated) == ipaddress.ip_network(f"{address}/24", False)[0]


@given(st.ip_addresses(v=6))
def test_ipv6_truncation_keeps_the_48(address: ipaddress.IPv6Address) -> None:
    truncated = visitor_ip(str(address), "truncated")
    assert truncated is not None
    if address.ipv4_mapped is not None:
        assert truncated == str(ipaddress.ip_network(f"{address.ipv4_mapped}/24", False)[0])
    else:
        assert truncated == str(ipaddress.ip_network(f"{address}/48", False)[0])


@given(st.one_of(RAW_QUERIES, st.lists(_SEGMENTS, max_size=8).map(b"&".join).map(b"v=2&".__add__)))
@example(b"gcs=G111&gcs=G100")
@example(b"sst.gcsub=www&sst.gcsub=region1&gcd=13r3q3q2q5l1")
@example(b"a=%ZZ&b=\xff&gcs=G100")
def test_the_scans_shortcut_agrees_with_the_segment_by_segment_scan(raw: bytes) -> None:
    # _scan_query reads only the notable segments when nothing is dropped; the full scan is
    # the reference it must agree with, on every input.
    fast, full = _scan_query(raw), _scan_segments(_escaped(raw).split("&"))
    assert "&".join(fast.segments) == "&".join(full.segments)
    assert (fast.region1, fast.analytics_denied) == (full.region1, full.analytics_denied)
