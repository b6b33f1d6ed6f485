"""GA4 consent signals: ``gcs`` and ``gcd`` (SPEC 2.1), and the consent an event carries.

Every decoder is total: malformed input means "not set" (``None``) for the signals it cannot
read, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

from tiktok_gateway.event_data import CONSENT_KEY, EventData

ConsentState = Literal["granted", "denied"] | None
"""``"granted"``, ``"denied"``, or ``None`` when the signal is not set."""

GCS_KEY: Final = "x-ga-gcs"
GCD_KEY: Final = "x-ga-gcd"

GCS_SIGNALS: Final = ("ad_storage", "analytics_storage")
# Signal -> 0-based position of its letter in gcd.
GCD_SIGNALS: Final[dict[str, int]] = {
    "ad_storage": 2,
    "analytics_storage": 4,
    "ad_user_data": 6,
    "ad_personalization": 8,
}
GCD_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"

_GCS_STATES: Final[dict[str, ConsentState]] = {"1": "granted", "0": "denied"}
# The 2-bit codes of a gcd letter: 1 not set, 2 denied, 3 granted (0 does not occur: not set).
_BIT_STATES: Final[tuple[ConsentState, ...]] = (None, None, "denied", "granted")
_LETTER_INDEX: Final[dict[str, int]] = {letter: n for n, letter in enumerate(GCD_ALPHABET)}


def decode_gcs(value: str) -> dict[str, ConsentState]:
    """``G1<ad_storage><analytics_storage>`` (``G111``, ``G100``, ``G1--``) -> states by signal.

    ``1`` is granted, ``0`` denied, anything else (``-``, a missing character, a value not
    starting with ``G1``) not set.
    """
    valid = value.startswith("G1")
    return {
        signal: _GCS_STATES.get(value[2 + offset : 3 + offset]) if valid else None
        for offset, signal in enumerate(GCS_SIGNALS)
    }


def decode_gcd_letter(letter: str) -> tuple[ConsentState, ConsentState]:
    """One gcd letter as ``(default, update)``; ``(None, None)`` for a letter not in the alphabet.

    n is the letter's index in ``GCD_ALPHABET``; default is ``(n >> 2) & 3``, update ``n & 3``.
    """
    n = _LETTER_INDEX.get(letter)
    if n is None:
        return (None, None)
    return (_BIT_STATES[(n >> 2) & 3], _BIT_STATES[n & 3])


def decode_gcd(value: str) -> dict[str, ConsentState]:
    """``gcd`` (``13r3r3r2r5l1``) -> effective state by signal: the update if set, else the default.

    Keys: ``ad_storage``, ``analytics_storage``, ``ad_user_data``, ``ad_personalization``. A
    signal whose letter is missing (short value) or not in the alphabet is not set.
    """
    states: dict[str, ConsentState] = {}
    for signal, position in GCD_SIGNALS.items():
        default, update = decode_gcd_letter(value[position : position + 1])
        states[signal] = update if update is not None else default
    return states


@dataclass(frozen=True, slots=True)
class Consent:
    """The consent an event carries for what a TikTok tag decides on (SPEC 5.7)."""

    ad_storage: ConsentState
    ad_user_data: ConsentState


def _explicit_ad_user_data(data: EventData) -> ConsentState:
    """``data["x-gw-consent"]["ad_user_data"]`` (written lower-case by the Measurement Protocol
    source, the only one that has no gcs/gcd) when granted or denied, else not set."""
    given = data.get(CONSENT_KEY)
    if not isinstance(given, dict):
        return None
    state = given.get("ad_user_data")
    if state == "granted":
        return "granted"
    if state == "denied":
        return "denied"
    return None


@lru_cache(maxsize=1024)
def _signals(gcs: str | None, gcd: str | None) -> Consent:
    """The consent ``gcs`` and ``gcd`` give; one shared (immutable) object per pair."""
    gcd_states = decode_gcd(gcd) if gcd is not None else None
    ad_storage = decode_gcs(gcs)["ad_storage"] if gcs is not None else None
    if ad_storage is None and gcd_states is not None:
        ad_storage = gcd_states["ad_storage"]
    ad_user_data = gcd_states["ad_user_data"] if gcd_states is not None else None
    return Consent(ad_storage=ad_storage, ad_user_data=ad_user_data)


def consent_of(data: EventData) -> Consent:
    """The consent of one event's data; each signal falls through its sources while not set.

    ``ad_storage``: ``x-ga-gcs``, else ``x-ga-gcd`` (the Measurement Protocol has no such signal).
    ``ad_user_data``: ``x-ga-gcd``, else ``x-gw-consent.ad_user_data``. Values of another type
    than ``str`` under the ``x-ga-*`` keys are ignored.
    """
    gcs = data.get(GCS_KEY)
    gcd = data.get(GCD_KEY)
    signals = _signals(gcs if isinstance(gcs, str) else None, gcd if isinstance(gcd, str) else None)
    if signals.ad_user_data is not None:
        return signals
    return Consent(ad_storage=signals.ad_storage, ad_user_data=_explicit_ad_user_data(data))
