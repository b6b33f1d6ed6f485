"""GA4 user-provided data: the ``em`` parameter of web hits (SPEC 2.2).

``em=tv.1~em.<hash>~pn.<hash>~fn0.<hash>~ln0.<hash>~pc0.<zip>~co0.<country>``: tokens joined by
``~``, each split into key and value at its first ``.``. Hashes are SHA-256, sent as base64url
without padding (43 characters) or as 64 hex digits; both become lower-case hex here. Anything
else in a hash field (``e2`` and other error codes gtag writes when it could not hash) is ignored.

Decisions beyond the SPEC:

- ``em``/``pn`` may repeat: one value gives a string, several a list (duplicates removed, order
  kept), like ``user_data`` in the Measurement Protocol.
- Address tokens carry an index (``fn0``, ``pc1``; no digits means 0). Only one address is kept:
  the one whose index is seen first. Empty plain values (``pc0.``) are ignored.
- Tokens with other keys (``tv`` version, street, city, region) are ignored: the raw parameter is
  kept as ``x-ga-em`` anyway.
"""

from __future__ import annotations

from typing import Any, Final

from tiktok_gateway.sha256 import hash_to_hex

# Key -> user_data key for hashed identifiers that may repeat.
_IDENTIFIERS: Final[dict[str, str]] = {
    "em": "sha256_email_address",
    "pn": "sha256_phone_number",
}
# Key -> (address key, hashed?).
_ADDRESS: Final[dict[str, tuple[str, bool]]] = {
    "fn": ("sha256_first_name", True),
    "ln": ("sha256_last_name", True),
    "pc": ("postal_code", False),
    "co": ("country", False),
}


def decode_em(value: str) -> dict[str, Any]:
    """The ``em`` parameter as a ``user_data`` dict; ``{}`` when nothing in it is usable.

    Keys, each present only when it has a value: ``sha256_email_address`` and
    ``sha256_phone_number`` (a string, or a list for several), and ``address`` with
    ``sha256_first_name``, ``sha256_last_name`` (hex), ``postal_code``, ``country`` (as sent).
    Never raises.
    """
    identifiers: dict[str, dict[str, None]] = {}  # an ordered set per key
    address: dict[str, str] = {}
    address_index: str | None = None
    for token in value.split("~"):
        key, dot, text = token.partition(".")
        if not dot:
            continue
        target = _IDENTIFIERS.get(key)
        if target is not None:
            digest = hash_to_hex(text)
            if digest is not None:
                identifiers.setdefault(target, {})[digest] = None
            continue
        field = _ADDRESS.get(key[:2])
        index = key[2:] or "0"
        if field is None or not index.isascii() or not index.isdigit():
            continue
        if address_index is None:
            address_index = index
        elif index != address_index:
            continue
        name, hashed = field
        stored = hash_to_hex(text) if hashed else (text or None)
        if stored is not None:
            address[name] = stored
    user_data: dict[str, Any] = {
        name: next(iter(found)) if len(found) == 1 else list(found)
        for name, found in identifiers.items()
    }
    if address:
        user_data["address"] = address
    return user_data
