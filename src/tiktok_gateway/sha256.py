"""SHA-256 as the gateway writes and reads it: lower-case hex.

Shared by the sources (GA4 ``em`` carries hashes) and the TikTok tag (which hashes personal data
and passes hashes through).
"""

from __future__ import annotations

import binascii
import hashlib
import re
from base64 import urlsafe_b64decode
from typing import Final

# Copied, never updated itself: hashlib.sha256() looks the algorithm up in OpenSSL on every call
# (py-spy: 5% of the mapping benchmark), a copy does not.
_EMPTY_SHA256 = hashlib.sha256()
_HEX_HASH: Final = re.compile(r"[0-9A-Fa-f]{64}")
# base64url as GA4 writes it; standard base64 letters and the one padding character a 32-byte
# value needs are tolerated too.
_BASE64_HASH: Final = re.compile(r"[A-Za-z0-9_\-+/]{43}=?")


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 bytes of ``text`` (lone surrogates kept as such), lower-case hex."""
    digest = _EMPTY_SHA256.copy()
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def hash_to_hex(value: str) -> str | None:
    """``value`` as lower-case hex when it already is a SHA-256: 64 hex digits, or 32 bytes in
    base64url / base64 (43 characters, optionally padded). ``None`` for anything else."""
    if _HEX_HASH.fullmatch(value):
        return value.lower()
    if _BASE64_HASH.fullmatch(value):
        text = value.rstrip("=").replace("+", "-").replace("/", "_")
        try:
            raw = urlsafe_b64decode(text + "=")
        except (binascii.Error, ValueError):
            return None
        if len(raw) == 32:
            return raw.hex()
    return None
