"""TikTok's normalisation and SHA-256 hashing of personal data (SPEC section 6).

Every function takes the raw value as it arrived and returns the lower-case hex SHA-256 TikTok
expects, or ``None`` when nothing usable is left (the caller then omits the field and counts why).
A value that already is a SHA-256 (``sha256.hash_to_hex``: 64 hex digits, or base64url as GA4's
``em`` writes it) is passed through as lower-case hex. Raw personal data never leaves these
functions unhashed.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from tiktok_gateway.sha256 import hash_to_hex, sha256_hex

# Names keep only letters and digits, of any script: whitespace and punctuation (TikTok's rule)
# go, including the typographic ones phones type (a U+2019 apostrophe, no-break spaces).
_NAME_STRIP = re.compile(r"[\W_]+")
_ZIP_STRIP = str.maketrans("", "", " -")


def normalise_email(value: str) -> str:
    """Trimmed and lower-cased, as TikTok normalises e-mail addresses."""
    return value.strip().lower()


def hash_email(value: str) -> str | None:
    """Hash of the normalised address; pre-hashed values pass through; blank gives ``None``."""
    value = value.strip()
    if not value:
        return None
    return hash_to_hex(value) or sha256_hex(normalise_email(value))


@lru_cache(maxsize=4096)
def normalise_phone(value: str, region: str) -> str | None:
    """E.164 with the leading ``+`` (``"(+1)2133734253"`` -> ``"+12133734253"``).

    ``region`` is the ISO country used for numbers written without a country code. Returns
    ``None`` for anything ``phonenumbers`` cannot read as a possible number.
    """
    try:
        parsed = phonenumbers.parse(value, region or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def hash_phone(value: str, region: str) -> str | None:
    """Hash of the E.164 number; pre-hashed values pass through; ``None`` when not a number."""
    value = value.strip()
    if not value:
        return None
    known = hash_to_hex(value)
    if known:
        return known
    e164 = normalise_phone(value, region)
    return sha256_hex(e164) if e164 else None


def hash_external_id(value: str) -> str | None:
    """Hash of the trimmed id; pre-hashed values pass through."""
    value = value.strip()
    if not value:
        return None
    return hash_to_hex(value) or sha256_hex(value)


def hash_name(value: str) -> str | None:
    """Hash of a first or last name: lower-cased, whitespace and punctuation removed."""
    value = value.strip()
    known = hash_to_hex(value)
    if known:
        return known
    cleaned = _NAME_STRIP.sub("", value.lower())
    return sha256_hex(cleaned) if cleaned else None


def hash_zip(value: str) -> str | None:
    """Hash of a postal code: lower-cased, spaces and dashes removed."""
    value = value.strip()
    known = hash_to_hex(value)
    if known:
        return known
    cleaned = value.lower().translate(_ZIP_STRIP)
    return sha256_hex(cleaned) if cleaned else None


def plain_lower(value: str) -> str | None:
    """City, state and country are sent in plain text, trimmed and lower-cased."""
    cleaned = value.strip().lower()
    return cleaned or None
