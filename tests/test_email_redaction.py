"""E-mail addresses out of URLs and text (SPEC 13 personal data): examples and properties."""

from __future__ import annotations

import re
import time
from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tiktok_gateway.email_redaction import MARKER, MAX_DEPTH, redact_emails, redact_url

# An address as a reader would see one in the decoded text: a local-part character, "@",
# label "." label. Looser than the module's own rule on purpose (any word character).
ADDRESS = re.compile(r"[\w.+\-]@[\w\-]+\.[\w\-]")


def decoded(text: str) -> str:
    """``text`` percent-decoded ``MAX_DEPTH`` times, as ``urllib.parse.unquote`` does it."""
    for _ in range(MAX_DEPTH):
        text = unquote(text)
    return text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://shop.example/?email=alice%40example.com&utm_source=x",
            "https://shop.example/?email=(redacted)&utm_source=x",
        ),
        ("https://shop.example/?email=alice@example.com", "https://shop.example/?email=(redacted)"),
        (  # double-encoded, as a redirect parameter carries it
            "https://shop.example/?next=%2Fa%3Fe%3Dalice%2540example.com",
            "https://shop.example/?next=%2Fa%3Fe%3D(redacted)",
        ),
        (  # escaped UTF-8 in the local part and the domain
            "https://shop.example/?e=%C3%A9lise%40b%C3%BCcher.de#top",
            "https://shop.example/?e=(redacted)#top",
        ),
        ("https://shop.example/élise@bücher.de/x", "https://shop.example/(redacted)/x"),
        ("https://shop.example/#ALICE.B+tag%40Example.CO.uk", "https://shop.example/#(redacted)"),
        ("https://user:pass@shop.example/a?b=1", "https://shop.example/a?b=1"),
        ("https://alice%40example.com:pw@shop.example/", "https://shop.example/"),
        ("//user@shop.example/", "//shop.example/"),
        ("mailto:bob@example.org", "mailto:(redacted)"),
    ],
)
def test_addresses_and_userinfo_are_removed(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert urlsplit(redact_url(url)).path == urlsplit(expected).path


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/?q=100%25&price=%E2%82%AC5&utm_campaign=a%20b",
        "https://shop.example/@alice/posts",  # a handle, not an address
        "https://shop.example/?v=1.2@build",  # no domain with a dot after the @
        "https://[2001:db8::1]:8080/p",
        "not a url % at all %zz",
    ],
)
def test_urls_without_addresses_stay_as_they_are(url: str) -> None:
    assert redact_url(url) == url


def test_two_addresses_side_by_side_are_both_removed() -> None:
    # The second local part starts right where the first address ends.
    assert redact_emails("a@b.example+x@d.example") == f"{MARKER}{MARKER}"
    assert redact_emails("a@b.example.@d.example") == f"{MARKER}{MARKER}"


def test_the_marker_can_be_chosen() -> None:
    assert redact_emails("mail alice@example.com now", "[email]") == "mail [email] now"


@pytest.mark.parametrize(
    "text",
    [
        "a" * 100_000 + "@",
        "@" + "a" * 100_000,
        "a@" * 50_000,
        "x@" + "a-" * 50_000,
        "a@a." * 25_000,
        "%25" * 33_000 + "40",
        "a%40" * 25_000,
        "%C3" * 33_000,
    ],
)
def test_long_adversarial_texts_are_handled(text: str) -> None:
    # Linear time is the contract: a quadratic pass over 100 KB takes minutes, a linear one
    # milliseconds (the benchmark measures speed, bench/email_redaction.py).
    began = time.perf_counter()
    out = redact_emails(text)
    assert time.perf_counter() - began < 1.0
    assert not ADDRESS.search(decoded(out))
    assert redact_emails(out) == out


def test_many_addresses_in_a_long_text() -> None:
    text = "alice@example.com " * 5_000
    assert redact_emails(text) == f"{MARKER} " * 5_000


# Text built from URL-ish pieces, addresses, escapes of every kind and odd characters.
_piece = st.one_of(
    st.sampled_from(
        [
            "@", "%40", "%2540", "%25", "%", "40", ".", "-", "+", "_", "/", "?", "&", "=", "#",
            ":", "a", "Z", "9", "é", "ü", "\u0301", "%C3", "%A9", "%C3%A9", "%E2%82%AC", "%FF",
            "alice", "example.com", "b%C3%BCcher.de", "(", ")", " ", "\ufffd", "https://", "[",
        ]
    ),
    st.text(max_size=3),
)  # fmt: skip
_text = st.lists(_piece, max_size=40).map("".join)


@given(_text)
def test_no_address_survives_in_decoded_form(text: str) -> None:
    out = redact_emails(text)
    assert not ADDRESS.search(decoded(out)), (text, out)
    assert not ADDRESS.search(decoded(redact_url(text)))


@given(_text)
def test_redaction_is_idempotent(text: str) -> None:
    once = redact_url(text)
    assert redact_url(once) == once
    assert redact_emails(redact_emails(text)) == redact_emails(text)


@given(_text)
def test_text_without_an_at_sign_in_any_decoding_is_unchanged(text: str) -> None:
    assume("@" not in decoded(text))
    assert redact_emails(text) is text
    assert redact_url(text) == text


@given(
    st.lists(st.text(st.characters(exclude_characters="@", codec="utf-8"), max_size=12), max_size=6)
)
def test_urls_built_without_addresses_are_unchanged(parts: list[str]) -> None:
    url = "https://shop.example/" + "/".join(quote(part) for part in parts)
    url += "?" + "&".join(f"k{i}={quote(part, safe='')}" for i, part in enumerate(parts))
    assume("@" not in decoded(url))
    assert redact_url(url) == url


@given(st.text())
def test_never_raises_and_keeps_text_apart_from_addresses(text: str) -> None:
    out = redact_emails(text)
    assert isinstance(redact_url(text), str)
    # Only addresses are replaced: outside the markers every character is the input's.
    remainder = out.split(MARKER)
    position = 0
    for piece in remainder:
        found = text.find(piece, position)
        assert found >= 0
        position = found + len(piece)
