"""The redaction rules of the debug page and the admin API, and the match-quality rule."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest

from tiktok_gateway.admin.redact import (
    REDACTED,
    body_view,
    is_pii_key,
    mask_text,
    query_pairs,
    redact,
)
from tiktok_gateway.tags.tiktok.views import match_quality

HEX = "ab" * 32
B64 = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80"


@pytest.mark.parametrize(
    "key",
    [
        "email",
        "ep.user_data.email_address",
        "sha256_email_address",
        "x-ttq-ud-phone-number",
        "up.phone",
        "em",
        "x-ga-em",
        "first_name",
        "ep.user_data.address.last_name",
        "street",
        "postal_code",
        "zip",
        "city",
        "user_data.name",
    ],
)
def test_personal_keys(key: str) -> None:
    assert is_pii_key(key)


@pytest.mark.parametrize(
    "key", ["event_name", "name", "items.name", "x-ttq-ct-ip-address", "ttclid", "country"]
)
def test_ordinary_keys(key: str) -> None:
    assert not is_pii_key(key)


def test_values_under_personal_keys_are_redacted_but_hashes_stay() -> None:
    data: dict[str, Any] = {
        "user_data": {
            "email": "bob@example.com",
            "sha256_email_address": [HEX, "not a hash"],
            "phone_number": 4915112345678,
            "name": "Bob Builder",
            "address": {"street": "1 Main St", "sha256_first_name": B64, "country": "DE"},
        },
        "items": [{"name": "Blue shirt", "price": 19.9}],
        "api_secret": HEX,
        "note": "reach me at bob@example.com or (555) 123-4567",
    }
    assert redact(data) == {
        "user_data": {
            "email": REDACTED,
            "sha256_email_address": [HEX, REDACTED],
            "phone_number": REDACTED,
            "name": REDACTED,
            "address": {"street": REDACTED, "sha256_first_name": B64, "country": REDACTED},
        },
        "items": [{"name": "Blue shirt", "price": 19.9}],
        "api_secret": REDACTED,  # secrets go even when they look like hashes
        "note": f"reach me at {REDACTED} or {REDACTED}",
    }


def test_values_that_look_personal_are_masked_anywhere() -> None:
    assert mask_text("https://x.example/?e=bob%40example.com&ph=%2B4915112345678") == (
        f"https://x.example/?e={REDACTED}&ph={REDACTED}"
    )
    for harmless in ("1700000000", "555.1700000000", "192.168.100.200", "19.90", "T-1001"):
        assert mask_text(harmless) == harmless


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("élise@bücher.de", REDACTED),  # event names are masked with the same rule
        ("%C3%A9lise%40b%C3%BCcher.de", REDACTED),
        ("alice%2540example.com", REDACTED),  # double-encoded, as one decoding leaves it
        ("https://u:p&w@ref.example/a", f"https://{REDACTED}@ref.example/a"),
        ("Bestellung für jürgen.müller@straße.example", f"Bestellung für {REDACTED}"),
    ],
)
def test_addresses_in_any_script_and_encoding_are_masked(text: str, shown: str) -> None:
    assert mask_text(text) == shown
    assert query_pairs(f"en={quote(text, safe='')}&dl=x") == [["en", shown], ["dl", "x"]]


@pytest.mark.parametrize("text", ["@" + "a" * 100_000, "a" * 100_000 + "@", "a@" * 50_000])
def test_long_texts_are_masked_in_one_pass(text: str) -> None:
    # The former pattern backtracked: ~60 s on 100 KB of local-part characters after an "@";
    # one pass takes milliseconds, so a second is a bound no slow machine reaches by itself.
    began = time.perf_counter()
    assert mask_text(text) == text
    assert time.perf_counter() - began < 1.0


def test_raw_parameters_and_bodies() -> None:
    assert query_pairs("en=purchase&ep.user_data.email_address=bob%40example.com&api_secret=s") == [
        ["en", "purchase"],
        ["ep.user_data.email_address", REDACTED],
        ["api_secret", REDACTED],
    ]
    lines = body_view(b"en=page_view&up.email=bob%40example.com\n\nen=scroll\n")
    assert lines == {
        "lines": [[["en", "page_view"], ["up.email", REDACTED]], [["en", "scroll"]]],
        "truncated": False,
    }
    assert body_view(b'{"user_data": {"phone": "123"}}') == {
        "json": {"user_data": {"phone": REDACTED}},
        "truncated": False,
    }
    assert body_view(b"") is None


@pytest.mark.parametrize(
    ("user", "strong", "quality"),
    [
        ({}, 0, "weak"),
        ({"ip": "1.2.3.4", "user_agent": "UA", "ttp": "t"}, 0, "weak"),
        ({"ttclid": "c", "ip": "1.2.3.4"}, 1, "ok"),
        ({"email": HEX, "external_id": HEX}, 2, "good"),
        ({"email": HEX, "phone": HEX, "external_id": HEX, "ttclid": "c"}, 4, "good"),
    ],
)
def test_match_quality(user: dict[str, str], strong: int, quality: str) -> None:
    present, count, label = match_quality(user)
    assert (count, label) == (strong, quality)
    assert set(present) == {"email", "phone", "external_id", "ip", "user_agent", "ttclid", "ttp"}
