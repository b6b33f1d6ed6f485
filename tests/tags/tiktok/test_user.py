"""The click id found in a page URL (SPEC 5.4), against what the standard library parses."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from tiktok_gateway.tags.tiktok.user import ttclid_in_url

SAFE = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\t\r\n#?"), max_size=20)


@given(
    path=SAFE,
    params=st.lists(
        st.tuples(st.sampled_from(["ttclid", "utm", "t tclid", "x"]), SAFE), max_size=4
    ),
    fragment=st.one_of(st.none(), SAFE),
)
def test_ttclid_in_url_reads_what_parse_qs_reads(
    path: str, params: list[tuple[str, str]], fragment: str | None
) -> None:
    query = "&".join(f"{quote(name)}={quote(value)}" for name, value in params)
    url = f"https://shop.example/{quote(path)}?{query}" + (f"#{fragment}" if fragment else "")
    found = parse_qs(urlsplit(url).query).get("ttclid")
    expected = (found[0].strip() or None) if found else None
    assert ttclid_in_url(url) == expected


def test_ttclid_in_url_edges() -> None:
    assert ttclid_in_url("https://a.example/p?x=1&ttclid=E.C%2BP#ttclid=no") == "E.C+P"
    assert ttclid_in_url("https://a.example/p#x?ttclid=no") is None
    assert ttclid_in_url("https://a.example/p?ttcl\tid=E\n1") == "E1"  # urlsplit drops these
    assert ttclid_in_url("https://[broken/p?ttclid=E1") == "E1"  # the host does not matter
    assert ttclid_in_url("https://a.example/p?ttclid=") is None
    assert ttclid_in_url(None) is None
