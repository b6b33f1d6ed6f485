"""GA4 web hits (``/g/collect``) into event data (SPEC 2, 4), on real and hostile input."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiktok_gateway.errors import HitError, ParseError
from tiktok_gateway.event_data import ParsedInput, RequestContext
from tiktok_gateway.sources import ga4_params, ga4_web
from tiktok_gateway.sources.ga4_params import (
    IGNORE,
    ITEM,
    NUMBER,
    PARAMS,
    PATH_TEXT,
    SYSTEM,
    TEXT,
    USER_TEXT,
    route,
    rule_of,
)
from tiktok_gateway.sources.ga4_values import decode_component
from tiktok_gateway.sources.ga4_web import MAX_EVENTS_PER_HIT, parse_hit

# The captured GA4 hits, kept in this repository (tests/fixtures/ga4): the tests pass in any clone.
REAL_HITS = Path(__file__).resolve().parents[1] / "fixtures" / "ga4" / "real-hits.txt"
CTX = RequestContext(
    received_at=1700000000.5,
    user_agent="Mozilla/5.0",
    ip="203.0.113.7",
    cookies={"ttclid": "abc", "_ttp": "ttp1", "other": "x"},
)
HEAD = "v=2&tid=G-TEST"


def load_real_hits() -> list[tuple[str, str]]:
    """(query, body) of each hit of the fixture, numbered from 1 in the file's order."""
    hits: list[tuple[str, str]] = []
    for line in REAL_HITS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("BODY:"):
            query, _ = hits[-1]
            hits[-1] = (query, line[len("BODY:") :].replace("\\r\\n", "\r\n"))
        else:
            hits.append((line, ""))
    return hits


HITS = load_real_hits()


def real(number: int) -> ParsedInput:
    query, body = HITS[number - 1]
    return parse_hit(query, body.encode(), CTX)


def one_event(query: str, body: bytes | str = b"") -> dict[str, Any]:
    result = parse_hit(query, body, CTX)
    assert result.errors == []
    assert len(result.events) == 1
    return result.events[0]


# --- real hits --------------------------------------------------------------------------------


def test_fixture_has_ten_hits() -> None:
    assert len(HITS) == 10
    assert "\r\n" in HITS[7][1]


@pytest.mark.parametrize("number", range(1, 11))
def test_every_real_hit_parses(number: int) -> None:
    result = real(number)
    if number == 2:
        assert result.events == []
        assert [(e.reason, e.line) for e in result.errors] == [("missing_event_name", 0)]
    else:
        assert result.errors == []
        assert result.events
        for event in result.events:
            assert event["event_name"]
            assert event["x-gw-source"] == "ga4"
            assert event["x-ga-protocol_version"] == "2"


def test_hit_1_query_only_page_view() -> None:
    (event,) = real(1).events
    assert event["event_name"] == "page_view"
    assert event["x-ga-measurement_id"] == "G-X6LMX9VR0Y"
    assert event["x-ga-gtm_version"] == "2oeav3"
    assert event["x-ga-page_id"] == 2097893835
    assert event["x-ga-request_count"] == 1
    assert event["client_id"] == "714123887.1545133496"
    assert event["page_location"] == "https://analytics.google.com/analytics/web/?hl=de&pli=1"
    assert event["page_referrer"] == ""
    assert event["page_title"] == "Analytics\u00a0360"
    assert event["page_path"] == "/analytics/web/report/visitors-legacy-user-id/"
    assert event["language"] == "de-de"
    assert event["screen_resolution"] == "1920x1080"
    assert event["ga_session_id"] == "1573685272"
    assert event["ga_session_number"] == 395
    assert event["x-ga-mp2-seg"] == "1"
    assert event["x-gw-line"] == 0
    assert event["x-gw-received_at"] == 1700000000.5
    assert event["user_agent"] == "Mozilla/5.0"
    assert event["ip_override"] == "203.0.113.7"
    assert event["x-gw-cookies"] == {"ttclid": "abc", "_ttp": "ttp1"}


def test_hit_2_client_hints_without_event_name() -> None:
    query, _ = HITS[1]
    result = parse_hit(query + "&en=page_view", b"", CTX)
    (event,) = result.events
    assert event["user_id"] == "kevinp@amplitude.com"
    assert event["client_hints"]["full_version_list"][0] == {
        "brand": "Not/A)Brand",
        "version": "99.0.0.0",
    }


def test_hit_3_consent_flags_and_client_hints() -> None:
    (event,) = real(3).events
    assert event["x-ga-gcs"] == "G111"
    assert event["x-ga-gcd"] == "13r3r3r3r5"
    assert event["x-ga-npa"] == "0"
    assert event["x-ga-dma"] == "0"
    assert event["x-ga-system_properties"] == {"gaz": "1", "fv": "1", "ss": "1", "z": "fetch"}
    assert event["client_hints"] == {
        "architecture": "arm",
        "bitness": "64",
        "full_version_list": [
            {"brand": "Google Chrome", "version": "125.0.6422.142"},
            {"brand": "Chromium", "version": "125.0.6422.142"},
            {"brand": "Not.A/Brand", "version": "24.0.0.0"},
        ],
        "mobile": False,
        "model": "",
        "platform": "macOS",
        "platform_version": "13.2.1",
        "wow64": False,
    }
    assert event["x-ga-mp2-tfd"] == "1931"
    assert event["x-ga-mp2-pscdl"] == ""
    assert event["page_title"] == (
        "Amplitude | Product Analytics & Event Tracking Platform | Amplitude"
    )
    assert event["event_name"] == "page_view"  # _ss/_fv are flags, not events


def test_hit_4_server_container_params() -> None:
    (event,) = real(4).events
    assert event["x-ga-mp2-sst.rnd"] == "506702095.1749196701"
    assert event["x-ga-mp2-richsstsse"] == ""
    assert event["x-ga-ec_mode"] == "a"
    assert event["x-ga-ecid"] == "1548980841"
    assert event["x-ga-dma_cps"] == "syphamo"
    assert event["engagement_time_msec"] == 12397
    assert event["x-ga-request_count"] == 13
    assert event["x-ga-system_properties"] == {"fplc": "0", "eu": "AAAAAAQ", "tu": "DA"}
    assert "gclid=Cj0KCQjwlrvBBhDnARIsAHEQgOSQ&gtm_debug" in event["page_location"]


def test_hit_5_add_to_cart_item() -> None:
    (event,) = real(5).events
    assert event["event_name"] == "add_to_cart"
    assert event["currency"] == "USD"
    assert event["value"] == 30.03
    assert event["x-ga-system_properties"]["c"] == "1"
    (item,) = event["items"]
    assert item == {
        "item_id": "SKU_12345",
        "item_name": "Stan and Friends Tee",
        "affiliation": "Google Merchandise Store",
        "coupon": "SUMMER_FUN",
        "discount": 2.22,
        "index": 0,
        "item_brand": "Google",
        "item_category": "Apparel",
        "item_category2": "Adult",
        "item_category3": "Shirts",
        "item_category4": "Crew",
        "item_category5": "Short sleeve",
        "item_list_id": "related_products",
        "item_list_name": "Related Products",
        "item_variant": "green",
        "location_id": "ChIJIQBpAG2ahYAR_6128GcTUEo",
        "price": 10.01,
        "quantity": 3,
    }
    assert isinstance(item["quantity"], int)


def test_hit_6_event_params_next_to_items() -> None:
    (event,) = real(6).events
    assert event["event_name"] == "select_item"
    assert event["item_list_id"] == "related_products"
    assert event["item_list_name"] == "Related products"
    assert event["items"][0]["item_list_name"] == "Related Products"


def test_hit_7_debug_and_numeric_param() -> None:
    (event,) = real(7).events
    assert event["x-ga-system_properties"]["dbg"] == "1"
    assert event["emarsys_page_view_id"] == 1550965197
    assert event["x-ga-mp2-sst.us_privacy"] == "1YNY"
    assert event["page_title"].startswith("Geschenksets 2025 \u2013 Kreative Sets f\u00fcr")


def test_hit_8_batched_lines_share_the_query() -> None:
    page_view, scroll = real(8).events
    assert page_view["event_name"] == "page_view"
    assert scroll["event_name"] == "scroll"
    assert (page_view["x-gw-line"], scroll["x-gw-line"]) == (0, 1)
    for event in (page_view, scroll):
        assert event["client_id"] == "1111111111.1650000000"
        assert event["page_location"] == "https://example.com/"
        assert event["x-ga-page_id"] == 1234567890
        assert event["ga_session_id"] == "1650000100"
    assert page_view["x-ga-system_properties"] == {"z": "ccd.v9B", "ee": "1"}
    assert scroll["x-ga-system_properties"] == {"z": "ccd.v9B"}
    assert scroll["percent_scrolled"] == 90
    assert scroll["engagement_time_msec"] == 8
    assert "percent_scrolled" not in page_view


def test_hit_9_custom_item_params() -> None:
    (event,) = real(9).events
    (item,) = event["items"]
    assert item["item_category_2"] == "Mens"
    assert item["item_category_3"] == "Shirts"
    assert item["item_category_4"] == "Tshirts"
    assert item["item_id"] == "12345"
    assert item["price"] == 15.25
    assert item["index"] == 1
    assert item["item_list_id"] == "SR123"


def test_hit_10_user_provided_data() -> None:
    (event,) = real(10).events
    digest = base64.urlsafe_b64decode("4x8WFpkYUiISoDaC9zQnW4M-xxMNPal-E3vq2kbfQCI=").hex()
    assert event["x-ga-em"] == "tv.1~em.4x8WFpkYUiISoDaC9zQnW4M-xxMNPal-E3vq2kbfQCI~co0.NO"
    assert event["user_data"] == {"sha256_email_address": digest, "address": {"country": "NO"}}
    assert event["x-ga-ec_mode"] == "c"
    assert event["x-ga-ecid"] == "183687216"


# --- hit-level errors -------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["tid=G-1&en=x", "v=1&tid=G-1&en=x", "v=&tid=G-1", "", "v=2 "])
def test_wrong_protocol_version(query: str) -> None:
    with pytest.raises(HitError) as caught:
        parse_hit(query, b"", CTX)
    assert caught.value.reason == "unsupported_protocol_version"


@pytest.mark.parametrize("query", ["v=2&en=x", "v=2&tid=&en=x", "v=2&tid=%20&en=x"])
def test_missing_measurement_id(query: str) -> None:
    with pytest.raises(HitError) as caught:
        parse_hit(query, b"", CTX)
    assert caught.value.reason == "missing_measurement_id"


@pytest.mark.parametrize("body", [b"en=\xff", b"\xc3(", "en=\ud800x"])
def test_invalid_utf8_body(body: bytes | str) -> None:
    with pytest.raises(HitError) as caught:
        parse_hit(HEAD, body, CTX)
    assert caught.value.reason == "invalid_utf8"


def test_lone_surrogate_in_query() -> None:
    with pytest.raises(HitError) as caught:
        parse_hit(HEAD + "&en=\udcff", b"", CTX)
    assert caught.value.reason == "invalid_utf8"


def test_query_must_carry_v_and_tid() -> None:
    with pytest.raises(HitError):
        parse_hit("en=x", b"v=2&tid=G-1&en=page_view", CTX)


# --- lines ------------------------------------------------------------------------------------


def test_line_params_override_query_params() -> None:
    result = parse_hit(HEAD + "&en=q&dl=https%3A%2F%2Fa%2F&cu=EUR", "en=one\r\nen=two&cu=USD", CTX)
    one, two = result.events
    assert (one["event_name"], one["currency"]) == ("one", "EUR")
    assert (two["event_name"], two["currency"]) == ("two", "USD")
    assert one["page_location"] == two["page_location"] == "https://a/"


def test_blank_lines_and_lf_only() -> None:
    result = parse_hit(HEAD, "\r\n\nen=a\n\n  \r\nen=b\r\n", CTX)
    assert [e["event_name"] for e in result.events] == ["a", "b"]
    assert [e["x-gw-line"] for e in result.events] == [0, 1]


def test_line_without_event_name_is_a_line_error() -> None:
    result = parse_hit(HEAD, b"en=a\r\nep.x=1\r\nen=\r\nen=d", CTX)
    assert [e["event_name"] for e in result.events] == ["a", "d"]
    assert [e["x-gw-line"] for e in result.events] == [0, 3]
    assert [(e.reason, e.line) for e in result.errors] == [
        ("missing_event_name", 1),
        ("missing_event_name", 2),
    ]


def test_event_name_from_the_query_for_every_line() -> None:
    result = parse_hit(HEAD + "&en=page_view", "ep.a=1\r\nep.a=2", CTX)
    assert [(e["event_name"], e["a"]) for e in result.events] == [
        ("page_view", "1"),
        ("page_view", "2"),
    ]


def test_whitespace_only_body_is_query_only() -> None:
    assert one_event(HEAD + "&en=x", " \r\n")["x-gw-line"] == 0


def test_events_of_a_hit_share_no_mutable_data() -> None:
    query = HEAD + "&ep.user_data.city=Oslo&up.plan=pro&_ss=1&uaa=arm&uafvl=A%3B1&pr1=idA"
    first, second = parse_hit(query, "en=a\r\nen=b&pr2=idB", CTX).events
    first["user_data"]["city"] = "changed"
    first["x-ga-mp2-user_properties"]["plan"] = "changed"
    first["x-ga-system_properties"]["ss"] = "changed"
    first["client_hints"]["full_version_list"][0]["brand"] = "changed"
    first["items"][0]["item_id"] = "changed"
    assert second["user_data"] == {"city": "Oslo"}
    assert second["x-ga-mp2-user_properties"] == {"plan": "pro"}
    assert second["x-ga-system_properties"] == {"ss": "1"}
    assert second["client_hints"]["full_version_list"] == [{"brand": "A", "version": "1"}]
    assert [item["item_id"] for item in second["items"]] == ["A", "B"]


# --- parameters -------------------------------------------------------------------------------


def test_event_params_text_number_and_dotted() -> None:
    event = one_event(
        HEAD + "&en=x&ep.a=1&epn.b=2&epn.c=2.5&epn.d=abc&ep.user_data.email_address=a%40b.c"
        "&ep.user_data.address.city=Oslo&epn.e=1e400"
    )
    assert event["a"] == "1"
    assert event["b"] == 2
    assert event["c"] == 2.5
    assert event["d"] == "abc"
    assert event["e"] == "1e400"
    assert event["user_data"] == {"email_address": "a@b.c", "address": {"city": "Oslo"}}


def test_user_properties() -> None:
    event = one_event(HEAD + "&en=x&up.plan=pro&upn.age=42", "upn.score=1.5")
    assert event["x-ga-mp2-user_properties"] == {"plan": "pro", "age": 42, "score": 1.5}


def test_numbers_of_known_params() -> None:
    event = one_event(HEAD + "&en=x&_p=123&_s=abc&sct=7&_et=100&sid=0042")
    assert event["x-ga-page_id"] == 123
    assert event["x-ga-request_count"] == "abc"
    assert event["ga_session_number"] == 7
    assert event["engagement_time_msec"] == 100
    assert event["ga_session_id"] == "0042"


def test_items_in_numeric_order_across_query_and_line() -> None:
    event = one_event(HEAD + "&en=x&pr10=idJ&pr2=idB", "pr1=idA~nmOne&pr3=brNoId&pr02=idZ")
    assert [item["item_id"] for item in event["items"]] == ["A", "Z", "B", "J"]


def test_line_item_overrides_query_item_of_same_name() -> None:
    event = one_event(HEAD + "&en=x&pr1=idA", "pr1=idB")
    assert event["items"] == [{"item_id": "B"}]


def test_no_items_key_when_every_item_is_dropped() -> None:
    assert "items" not in one_event(HEAD + "&en=x&pr1=brNoId")


def test_em_merges_with_explicit_user_data() -> None:
    digest = "a" * 64
    event = one_event(
        HEAD + f"&en=x&em=em.{digest}~pn.{'b' * 64}~co0.NO~pc0.0150"
        "&ep.user_data.sha256_email_address=explicit&ep.user_data.address.country=SE"
        "&ep.user_data.sha256_phone_number="
    )
    assert event["user_data"] == {
        "sha256_email_address": "explicit",
        "sha256_phone_number": "b" * 64,
        "address": {"country": "SE", "postal_code": "0150"},
    }


def test_em_never_overwrites_a_non_object_user_data() -> None:
    event = one_event(HEAD + f"&en=x&em=em.{'a' * 64}&ep.user_data=raw")
    assert event["user_data"] == "raw"


def test_client_hint_flags() -> None:
    event = one_event(HEAD + "&en=x&uamb=1&uaw=0&uafvl=")
    assert event["client_hints"] == {"mobile": True, "wow64": False, "full_version_list": []}


def test_never_trust_an_ip_or_agent_from_the_hit() -> None:
    ctx = RequestContext(received_at=1.0)
    result = parse_hit(
        HEAD + "&en=x&_uip=1.1.1.1&uip=2.2.2.2&ep.ip_override=3.3.3.3&ep.user_agent=evil"
        "&ep.x-gw-source=evil&epn.x-gw-line=9&ep.ip_override.a=4.4.4.4",
        b"",
        ctx,
    )
    (event,) = result.events
    assert "ip_override" not in event
    assert "user_agent" not in event
    assert event["x-ga-system_properties"] == {"uip": "1.1.1.1"}
    assert event["x-ga-mp2-uip"] == "2.2.2.2"
    assert event["x-ga-mp2-ep.ip_override"] == "3.3.3.3"
    assert event["x-ga-mp2-ep.user_agent"] == "evil"
    assert event["x-ga-mp2-ep.x-gw-source"] == "evil"
    assert event["x-gw-source"] == "ga4"
    assert event["x-gw-line"] == 0
    assert event["x-ga-mp2-ep.ip_override.a"] == "4.4.4.4"


def test_ttq_keys_pass_as_event_params() -> None:
    event = one_event(HEAD + "&en=x&ep.x-ttq-event-id=abc&ep.x-ttq-ct-ip-address=1.2.3.4")
    assert event["x-ttq-event-id"] == "abc"
    assert event["x-ttq-ct-ip-address"] == "1.2.3.4"


def test_decoding_edge_cases() -> None:
    event = one_event(
        HEAD + "&en=x&dt=a+b%2Bc%20d&dl=100%25%zz%&ep.%E2%9C%93=ok&ep.bad=%FF&bare&=nameless"
    )
    assert event["page_title"] == "a b+c d"
    assert event["page_location"] == "100%%zz%"
    assert event["\u2713"] == "ok"
    assert event["bad"] == "\ufffd"
    assert event["x-ga-mp2-bare"] == ""
    assert "x-ga-mp2-" not in event


def test_deep_dotted_names_stay_flat() -> None:
    deep = ".".join(["a"] * 5000)
    event = one_event(HEAD + f"&en=x&ep.{deep}=1&ep.b..c=2&ep..d=3")
    assert event[deep] == "1"
    assert event["b..c"] == "2"
    assert event[".d"] == "3"


def test_unknown_params_are_kept() -> None:
    event = one_event(HEAD + "&en=x&tfd=12&sst.rnd=1.2&pr=x&prx=y&_=z")
    assert event["x-ga-mp2-tfd"] == "12"
    assert event["x-ga-mp2-sst.rnd"] == "1.2"
    assert event["x-ga-mp2-pr"] == "x"
    assert event["x-ga-mp2-prx"] == "y"
    assert event["x-ga-system_properties"] == {"": "z"}


def test_every_table_param_lands_somewhere() -> None:
    query = (
        HEAD + "&en=x&" + "&".join(f"{name}=1" for name in PARAMS if name not in ("v", "tid", "en"))
    )
    event = one_event(query)
    assert not any(key.startswith("x-ga-mp2-") and key != "x-ga-mp2-seg" for key in event)


# --- query decoding ---------------------------------------------------------------------------


def test_query_splits_like_parse_qsl_with_blank_values() -> None:
    event = one_event(HEAD + "&en=x&ep.a=1&ep.b=&ep.c&&ep.d=x=y&ep.e+f=g+h&ep.p%25=%41")
    expected = {"a": "1", "b": "", "c": "", "d": "x=y", "e f": "g h", "p%": "A"}
    assert {key: event[key] for key in expected} == expected


_no_surrogates = st.text(alphabet=st.characters(exclude_categories=["Cs"]))


@given(_no_surrogates)
def test_decode_component_matches_unquote(text: str) -> None:
    assert decode_component(text) == unquote(text.replace("+", " "), errors="replace")


@given(
    st.lists(
        st.sampled_from(["%", "%4", "%41", "%e2%9c%93", "%FF", "%c3", "\\", "\\x41", "+", "é", "a"])
    )
)
def test_decode_component_matches_unquote_on_escape_soup(parts: list[str]) -> None:
    text = "".join(parts)
    assert decode_component(text) == unquote(text.replace("+", " "), errors="replace")


@given(_no_surrogates)
def test_decode_component_inverts_quote(text: str) -> None:
    assert decode_component(quote(text, safe="")) == text


# --- no exception but ParseError, whatever the input --------------------------------------------


def _parse_or_parse_error(query: str, body: bytes | str) -> None:
    try:
        result = parse_hit(query, body, CTX)
    except ParseError:
        return
    for event in result.events:
        assert event["event_name"]
        assert event["x-gw-source"] == "ga4"


@given(st.text(), st.text())
def test_arbitrary_text_never_raises(query: str, body: str) -> None:
    _parse_or_parse_error(query, body)
    _parse_or_parse_error(HEAD + "&" + query, body)


@given(st.text(), st.binary())
def test_arbitrary_bytes_never_raise(query: str, body: bytes) -> None:
    _parse_or_parse_error(HEAD + "&" + query, body)


_names = st.sampled_from(
    [
        *PARAMS,
        "ep.a",
        "ep.a.b",
        "epn.a",
        "ep.user_data",
        "ep.user_data.address",
        "up.x",
        "upn.x",
        "pr1",
        "pr10",
        "_ss",
        "_uip",
        "ep.",
        "up.",
        "",
        "ep.items",
        "ep.client_hints",
        "ep.x-gw-line",
        "ep.x-ga-system_properties",
        "ep.x-ga-mp2-user_properties",
        "en",
    ]
)
_values = st.one_of(
    st.text(),
    st.sampled_from(
        ["1", "2", "G111", "13r3r3r2r5l1", "idA~nmB~pr1.5", "em.e2~co0.NO", "%", "A%3B1|B"]
    ),
)
_pairs = st.lists(st.tuples(_names, _values), max_size=12)


def _encode(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(name, safe='.')}={quote(value, safe='')}" for name, value in pairs)


@given(_pairs, st.lists(_pairs, max_size=4))
def test_structured_hits_never_raise(
    query: list[tuple[str, str]], lines: list[list[tuple[str, str]]]
) -> None:
    body = "\r\n".join(_encode(line) for line in lines)
    _parse_or_parse_error(HEAD + "&" + _encode(query), body)
    _parse_or_parse_error(HEAD + "&" + _encode(query), body.encode())


def test_huge_values_parse() -> None:
    big = "9" * 200_000
    event = one_event(HEAD + f"&en=x&epn.n={big}&_p={big}&pr1=id{big}~qt{big}&gcd={big}&em={big}")
    assert event["n"] == big
    assert event["items"][0]["quantity"] == big


def test_nul_bytes_are_kept() -> None:
    event = one_event(HEAD + "&en=x&dt=a%00b", b"ep.c=\x00")
    assert event["page_title"] == "a\x00b"
    assert event["c"] == "\x00"


_with_surrogates = st.text(alphabet=st.characters(categories=["Cs", "Ll", "Nd", "Po", "Sm"]))


@given(_with_surrogates, _with_surrogates)
def test_lone_surrogates_never_raise_but_parse_error(query: str, body: str) -> None:
    _parse_or_parse_error(HEAD + "&en=x&" + query, body)


def test_lines_past_the_limit_are_one_error() -> None:
    body = "\n".join(f"en=e{i}" for i in range(MAX_EVENTS_PER_HIT + 5))
    result = parse_hit(HEAD, body, CTX)
    assert len(result.events) == MAX_EVENTS_PER_HIT
    assert result.events[-1]["event_name"] == f"e{MAX_EVENTS_PER_HIT - 1}"
    assert [(e.reason, e.line) for e in result.errors] == [("too_many_events", MAX_EVENTS_PER_HIT)]


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("dl", (TEXT, "page_location")),
        ("_ss", (SYSTEM, "ss")),
        ("ep.a", (TEXT, "a")),
        ("epn.a", (NUMBER, "a")),
        ("ep.a.b", (PATH_TEXT, "a.b")),
        ("ep.user_agent", (TEXT, "x-ga-mp2-ep.user_agent")),
        ("epn.x-gw-line", (NUMBER, "x-ga-mp2-epn.x-gw-line")),
        ("up.a", (USER_TEXT, "a")),
        ("up.", (TEXT, "x-ga-mp2-up.")),
        ("pr7", (ITEM, "pr7")),
        ("tfd", (TEXT, "x-ga-mp2-tfd")),
        ("", (IGNORE, "")),
    ],
)
def test_routes_and_their_memo(name: str, rule: tuple[int, str]) -> None:
    assert route(name) == rule
    assert rule_of(name) == rule
    assert ga4_params._memo[name] == rule  # held by the memo rule_of reads
    assert rule_of(name) == rule


def test_repeated_values_decode_the_same_through_the_memo() -> None:
    query = f"{HEAD}&en=e&dt=Sommer%20%E2%80%93%20Shop&pr1=id1~nmTee%20Shirt"
    first = parse_hit(query, b"", CTX).events[0]
    again = parse_hit(query, b"", CTX).events[0]
    assert first["page_title"] == again["page_title"] == "Sommer \u2013 Shop"
    assert first["items"] == again["items"] == [{"item_id": "1", "item_name": "Tee Shirt"}]


def test_the_parameter_memo_never_holds_event_parameters_or_user_properties() -> None:
    # The memo is process-wide: emptied first, so what other tests parsed cannot show up here
    # (hypothesis draws text from this file's literals, "probe" among them, into plain names).
    ga4_web._FIELDS.clear()
    query = f"{HEAD}&en=e&ep.user_data.email_address=probe.1%40example.com&ep.note=probe%202"
    parse_hit(query + "&up.mail=probe.3%40example.com&epn.probe=4", b"", CTX)
    held = " ".join(ga4_web._FIELDS) + " ".join(str(v) for v in ga4_web._FIELDS.values())
    assert "probe" not in held
    assert "en=e" in ga4_web._FIELDS  # the memo is in use


def test_memoised_parameters_are_not_shared_between_events() -> None:
    query = f"{HEAD}&en=e&uafvl=A%3B1%7CB%3B2&pr1=id1~nmTee"
    first, second = (parse_hit(query, b"", CTX).events[0] for _ in range(2))
    first["client_hints"]["full_version_list"].append("changed")
    first["items"][0]["item_name"] = "changed"
    assert second["client_hints"]["full_version_list"] == [
        {"brand": "A", "version": "1"},
        {"brand": "B", "version": "2"},
    ]
    assert second["items"] == [{"item_id": "1", "item_name": "Tee"}]


def test_the_parameter_memo_is_bounded() -> None:
    for n in range(ga4_web.MAX_MEMO_FIELDS + 10):
        parse_hit(f"{HEAD}&en=e&dt=t%20{n}", b"", CTX)
    assert 0 < len(ga4_web._FIELDS) <= ga4_web.MAX_MEMO_FIELDS
    long_title = "x%20" * ga4_web.MAX_MEMO_FIELD_LENGTH
    event = parse_hit(f"{HEAD}&en=e&dt={long_title}", b"", CTX).events[0]
    assert event["page_title"] == "x " * ga4_web.MAX_MEMO_FIELD_LENGTH
    assert f"dt={long_title}" not in ga4_web._FIELDS


@given(st.lists(st.sampled_from(["dt=a%20b", "_et=5", "epn.v=1.5", "uamb=1", "pr1=id1~nmA"])))
def test_a_repeated_hit_parses_the_same(params: list[str]) -> None:
    query = "&".join([HEAD, "en=e", *params])
    assert parse_hit(query, b"", CTX).events == parse_hit(query, b"", CTX).events
