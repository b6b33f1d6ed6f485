"""GA4 user-provided data: the ``em`` parameter (SPEC 2.2)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiktok_gateway.sha256 import hash_to_hex
from tiktok_gateway.sources.ga4_user_data import decode_em

SPEC_HASH = "4x8WFpkYUiISoDaC9zQnW4M-xxMNPal-E3vq2kbfQCI"
# SPEC 6 golden vector: " ALICE_abc@gmail.com " normalised and hashed.
ALICE_HEX = "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f"


def b64(digest_hex: str) -> str:
    """A hex SHA-256 the way gtag sends it: base64url without padding."""
    return base64.urlsafe_b64encode(bytes.fromhex(digest_hex)).decode().rstrip("=")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_spec_example() -> None:
    expected = base64.urlsafe_b64decode(SPEC_HASH + "=").hex()
    assert decode_em(f"tv.1~em.{SPEC_HASH}~co0.NO") == {
        "sha256_email_address": expected,
        "address": {"country": "NO"},
    }


def test_golden_email_vector_round_trips_through_base64url() -> None:
    assert sha("alice_abc@gmail.com") == ALICE_HEX
    encoded = b64(ALICE_HEX)
    assert len(encoded) == 43
    assert decode_em(f"tv.1~em.{encoded}") == {"sha256_email_address": ALICE_HEX}


def test_full_example() -> None:
    value = "~".join(
        [
            "tv.1",
            f"em.{b64(sha('a@example.com'))}",
            f"pn.{b64(sha('+12133734253'))}",
            f"fn0.{b64(sha('alice'))}",
            f"ln0.{sha('smith').upper()}",
            "pc0.10115",
            "co0.DE",
        ]
    )
    assert decode_em(value) == {
        "sha256_email_address": sha("a@example.com"),
        "sha256_phone_number": sha("+12133734253"),
        "address": {
            "sha256_first_name": sha("alice"),
            "sha256_last_name": sha("smith"),
            "postal_code": "10115",
            "country": "DE",
        },
    }


def test_repeated_identifiers_become_lists() -> None:
    one, two = sha("a@example.com"), sha("b@example.com")
    value = f"em.{b64(one)}~em.{two}~em.{b64(one)}~pn.{b64(two)}"
    assert decode_em(value) == {"sha256_email_address": [one, two], "sha256_phone_number": two}


@pytest.mark.parametrize(
    "bad", ["e2", "", "e1", "x" * 42, "A" * 42, "A" * 44, "g" * 64, "a" * 63, "a" * 65, "%3D"]
)
def test_error_codes_and_non_hashes_are_ignored(bad: str) -> None:
    assert decode_em(f"tv.1~em.{bad}~pn.{bad}~fn0.{bad}~ln0.{bad}") == {}


def test_hash_forms() -> None:
    digest = sha("x")
    assert hash_to_hex(digest) == digest
    assert hash_to_hex(digest.upper()) == digest
    assert hash_to_hex(b64(digest)) == digest
    assert hash_to_hex(b64(digest) + "=") == digest
    standard = base64.b64encode(bytes.fromhex(digest)).decode().rstrip("=")
    assert hash_to_hex(standard) == digest
    assert hash_to_hex("e2") is None


def test_first_seen_address_only() -> None:
    value = f"fn1.{b64(sha('bob'))}~pc1.111~fn0.{b64(sha('alice'))}~co0.NO~co1.SE"
    assert decode_em(value) == {
        "address": {"sha256_first_name": sha("bob"), "postal_code": "111", "country": "SE"}
    }


def test_address_tokens_without_index_are_address_zero() -> None:
    assert decode_em("co.NO~pc0.0150") == {"address": {"country": "NO", "postal_code": "0150"}}


@pytest.mark.parametrize(
    "value", ["", "tv.1", "em", "~~~", "co0.", "xx0.y", "fnx.y", "em.", "sa0.street", "ct0.Oslo"]
)
def test_nothing_usable(value: str) -> None:
    assert decode_em(value) == {}


def test_value_split_at_first_dot() -> None:
    assert decode_em("pc0.12.34~co0.N.O") == {"address": {"postal_code": "12.34", "country": "N.O"}}


@given(st.text())
def test_decode_em_never_raises(value: str) -> None:
    user_data = decode_em(value)
    assert set(user_data) <= {"sha256_email_address", "sha256_phone_number", "address"}


@given(st.lists(st.sampled_from(["em.", "pn.", "fn0.", "co0.", "~", SPEC_HASH, "e2", "1", "."])))
def test_decode_em_never_raises_on_token_soup(parts: list[str]) -> None:
    decode_em("".join(parts))


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=3))
def test_any_digest_round_trips(digests: list[bytes]) -> None:
    value = "~".join(f"em.{b64(d.hex())}" for d in digests)
    unique = list(dict.fromkeys(d.hex() for d in digests))
    expected = unique[0] if len(unique) == 1 else unique
    assert decode_em(value) == {"sha256_email_address": expected}
