"""GA4 consent: ``gcs``, ``gcd`` and the consent of an event (SPEC 2.1)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiktok_gateway.sources.ga4_consent import (
    GCD_ALPHABET,
    Consent,
    ConsentState,
    consent_of,
    decode_gcd,
    decode_gcd_letter,
    decode_gcs,
)

STATES = {None, "granted", "denied"}

# The ground truth of SPEC 2.1: letter -> (default, update).
KNOWN_LETTERS: list[tuple[str, ConsentState, ConsentState]] = [
    ("l", None, None),
    ("p", "denied", None),
    ("q", "denied", "denied"),
    ("r", "denied", "granted"),
    ("t", "granted", None),
    ("u", "granted", "denied"),
    ("v", "granted", "granted"),
    ("m", None, "denied"),
    ("n", None, "granted"),
    ("Z", "granted", None),
]


@pytest.mark.parametrize(("letter", "default", "update"), KNOWN_LETTERS)
def test_gcd_letter(letter: str, default: ConsentState, update: ConsentState) -> None:
    assert decode_gcd_letter(letter) == (default, update)


@pytest.mark.parametrize(("letter", "default", "update"), KNOWN_LETTERS)
def test_gcd_letter_in_every_position(
    letter: str, default: ConsentState, update: ConsentState
) -> None:
    effective = update if update is not None else default
    signals = ["ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"]
    for position, signal in enumerate(signals):
        letters = ["l"] * 4
        letters[position] = letter
        value = "13" + "".join(f"{code}3" for code in letters[:-1]) + letters[-1] + "5"
        states = decode_gcd(value)
        assert states[signal] == effective
        assert all(states[other] is None for other in signals if other != signal)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("13r3r3r2r5l1", ("granted", "granted", "granted", "granted")),
        ("13t3t3t2t5l1", ("granted", "granted", "granted", "granted")),
        ("13p3q3u3l5", ("denied", "denied", "denied", None)),
        ("13q3q3q2q5l1", ("denied", "denied", "denied", "denied")),
        ("11l1l1l1l5", (None, None, None, None)),
        ("13v3", ("granted", None, None, None)),
        ("13v3n", ("granted", "granted", None, None)),
        ("", (None, None, None, None)),
        ("13", (None, None, None, None)),
        ("13?3!3r", (None, None, "granted", None)),
    ],
)
def test_decode_gcd(value: str, expected: tuple[ConsentState, ...]) -> None:
    states = decode_gcd(value)
    assert tuple(states.values()) == expected
    assert list(states) == ["ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"]


def test_every_alphabet_letter_decodes() -> None:
    for letter in GCD_ALPHABET:
        default, update = decode_gcd_letter(letter)
        assert {default, update} <= STATES
    assert decode_gcd_letter("") == (None, None)
    assert decode_gcd_letter("?") == (None, None)


@pytest.mark.parametrize(
    ("value", "ad_storage", "analytics_storage"),
    [
        ("G111", "granted", "granted"),
        ("G100", "denied", "denied"),
        ("G110", "granted", "denied"),
        ("G101", "denied", "granted"),
        ("G1--", None, None),
        ("G1-1", None, "granted"),
        ("G11", "granted", None),
        ("G1", None, None),
        ("", None, None),
        ("G211", None, None),
        ("g111", None, None),
        ("G1x1", None, "granted"),
    ],
)
def test_decode_gcs(value: str, ad_storage: ConsentState, analytics_storage: ConsentState) -> None:
    assert decode_gcs(value) == {"ad_storage": ad_storage, "analytics_storage": analytics_storage}


@given(st.text())
def test_decoders_never_raise(value: str) -> None:
    assert set(decode_gcs(value).values()) <= STATES
    assert set(decode_gcd(value).values()) <= STATES


@given(st.text(alphabet=GCD_ALPHABET + "?", max_size=12))
def test_gcd_decoder_on_its_alphabet(value: str) -> None:
    assert set(decode_gcd(value).values()) <= STATES


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, Consent(None, None)),
        ({"x-ga-gcs": "G100"}, Consent("denied", None)),
        ({"x-ga-gcs": "G111", "x-ga-gcd": "13q3q3q2q5"}, Consent("granted", "denied")),
        ({"x-ga-gcs": "G1--", "x-ga-gcd": "13q3r3v2q5"}, Consent("denied", "granted")),
        ({"x-ga-gcd": "13v3v3q2q5"}, Consent("granted", "denied")),
        # x-gw-consent (Measurement Protocol) only ever carries ad_user_data, lower-case.
        (
            {"x-gw-consent": {"ad_storage": "denied", "ad_user_data": "granted"}},
            Consent(None, "granted"),
        ),
        (
            {"x-ga-gcd": "13l3l3l2l5", "x-gw-consent": {"ad_user_data": "denied"}},
            Consent(None, "denied"),
        ),
        (
            {"x-ga-gcs": "G101", "x-gw-consent": {"ad_user_data": "x"}},
            Consent("denied", None),
        ),
        (
            {"x-ga-gcd": "13q3q3q2q5", "x-gw-consent": {"ad_user_data": "granted"}},
            Consent("denied", "denied"),
        ),
        ({"x-gw-consent": {"ad_user_data": "denied"}}, Consent(None, "denied")),
        ({"x-ga-gcs": 5, "x-ga-gcd": None, "x-gw-consent": "granted"}, Consent(None, None)),
        ({"x-gw-consent": {"ad_user_data": 1}}, Consent(None, None)),
    ],
)
def test_consent_of(data: dict[str, Any], expected: Consent) -> None:
    assert consent_of(data) == expected


@given(
    st.dictionaries(
        st.sampled_from(["x-ga-gcs", "x-ga-gcd", "x-gw-consent"]),
        st.one_of(
            st.text(),
            st.none(),
            st.integers(),
            st.dictionaries(st.text(), st.one_of(st.text(), st.integers(), st.none())),
        ),
    )
)
def test_consent_of_never_raises(data: dict[str, Any]) -> None:
    consent = consent_of(data)
    assert {consent.ad_storage, consent.ad_user_data} <= STATES
