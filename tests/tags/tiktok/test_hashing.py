"""TikTok's hash vectors (SPEC 6) and the normalisation rules behind them."""

from __future__ import annotations

import base64
import hashlib

import pytest

from tiktok_gateway.sha256 import hash_to_hex
from tiktok_gateway.tags.tiktok.hashing import (
    hash_email,
    hash_external_id,
    hash_name,
    hash_phone,
    hash_zip,
    normalise_email,
    normalise_phone,
    plain_lower,
)

ALICE_HASH = "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f"
PHONE_HASH = "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd"
USER_123_HASH = "80fba0ae1c48e3978e43e4efc365e14e12ea0c830ba8ba5b9a2dafc7e3f2ab8b"


def test_email_vector_from_tiktok_docs() -> None:
    assert normalise_email(" ALICE_abc@gmail.com ") == "alice_abc@gmail.com"
    assert hash_email(" ALICE_abc@gmail.com ") == ALICE_HASH


def test_phone_vector_from_tiktok_docs_keeps_the_plus() -> None:
    assert normalise_phone("(+1)2133734253", "US") == "+12133734253"
    assert hash_phone("(+1)2133734253", "US") == PHONE_HASH
    without_plus = hashlib.sha256(b"12133734253").hexdigest()
    assert hash_phone("(+1)2133734253", "US") != without_plus


def test_external_id_vector_from_tiktok_docs() -> None:
    assert hash_external_id(" user_123 ") == USER_123_HASH


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("213-373-4253", "US", "+12133734253"),
        ("0151 23456789", "DE", "+4915123456789"),
        ("+49 151 23456789", "US", "+4915123456789"),
        ("not a phone", "US", None),
        ("12", "US", None),
    ],
)
def test_phone_normalised_with_default_region(raw: str, region: str, e164: str | None) -> None:
    assert normalise_phone(raw, region) == e164


def test_unparseable_phone_is_dropped_not_sent_raw() -> None:
    assert hash_phone("call me maybe", "US") is None


def test_pre_hashed_values_pass_through_lower_cased() -> None:
    # Fix 5.9: a pre-hashed phone is not hashed a second time.
    assert hash_phone(PHONE_HASH.upper(), "US") == PHONE_HASH
    assert hash_email(ALICE_HASH) == ALICE_HASH
    assert hash_external_id(USER_123_HASH.upper()) == USER_123_HASH


def test_ga4_base64url_hash_becomes_hex() -> None:
    raw = bytes.fromhex(ALICE_HASH)
    encoded = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert len(encoded) == 43
    assert hash_to_hex(encoded) == ALICE_HASH
    assert hash_email(encoded) == ALICE_HASH


def test_names_lose_case_whitespace_and_punctuation() -> None:
    assert hash_name(" Mary-Jane O'Neil ") == hashlib.sha256(b"maryjaneoneil").hexdigest()
    assert hash_name("Zoë") == hashlib.sha256("zoë".encode()).hexdigest()
    assert hash_name(" .- ") is None


def test_zip_loses_spaces_and_dashes() -> None:
    assert hash_zip("SW1A 1AA") == hashlib.sha256(b"sw1a1aa").hexdigest()
    assert hash_zip("94043-1351") == hashlib.sha256(b"940431351").hexdigest()


def test_city_state_country_are_plain_lower_case() -> None:
    assert plain_lower("  New York ") == "new york"
    assert plain_lower("  ") is None
