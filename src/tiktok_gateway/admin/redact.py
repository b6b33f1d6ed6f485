"""Redaction of what the debug page and the admin API show: no raw personal data, no secrets.

Rules, applied to raw parameters, body lines, event data, TikTok events and dead letters:

1. **Keys that name personal data** (``is_pii_key``): a key whose words (split on ``_``, ``-``
   and ``.``, case-insensitive) include ``email``/``mail``/``em``, ``phone``/``tel``/``mobile``/
   ``pn``/``ph``, ``street``, ``postal``, ``zip``, ``city``, ``surname``, ``birth``/``dob``,
   ``first``/``last``/``full``/``given``/``family`` + ``name``, ``fn``/``ln``, or ``address``
   (except ``ip_address``/``ip_adress``); and a plain ``name`` inside ``user_data``, ``user``,
   ``address``, ``customer``, ``billing`` or ``shipping``. Their values become ``[redacted]``
   unless the value is a SHA-256 digest (64 hex digits, or 43 base64url characters as GA4's
   ``em`` sends them): hashes may stay. Everything nested under such a key is treated the same.
2. **Keys that name secrets** (``api_secret``, ``access_token``, any ``*token*``/``*secret*``,
   ``password``, ``authorization``, ``api_key``): always ``[redacted]``, hashed or not.
3. **Values that look like an e-mail address or a phone number** are masked wherever they
   appear (any key, event names, inside URLs): e-mail addresses as ``email_redaction`` finds
   them (any script, percent-encoded ``%40``, double-encoded ``%2540``, escaped UTF-8; the
   userinfo of a URL, ``user:pass@``, is masked whole); phone ``+`` (URL-encoded ``%2B`` too)
   followed by 7 to 20 digits and separators, or the grouped ``(555) 123-4567`` /
   ``555-123-4567`` forms. Bare digit runs are not masked by value (they are indistinguishable
   from ids and timestamps); under a phone key rule 1 applies.

Every function is pure, never raises for JSON-compatible input, and returns new objects.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import unquote_plus

from tiktok_gateway import wire_json
from tiktok_gateway.email_redaction import redact_emails, strip_userinfo

REDACTED: Final = "[redacted]"
MAX_DEPTH: Final = 24
MAX_PAIRS: Final = 500
MAX_LINES: Final = 100
MAX_BODY_BYTES: Final = 64 * 1024

_PII_WORD: Final = re.compile(
    r"(?:^|_)(?:e?mails?|email_?address|em|phones?|phone_?number|tel|telephone|mobile|pn|ph"
    r"|street|postal|postcode|zip|zipcode|city|surname|birth|birthday|dob|fn|ln"
    r"|(?:first|last|full|given|family|middle)_?name)(?:_|$)"
)
_ADDRESS_WORD: Final = re.compile(r"(?:^|_)(?<!ip_)addr?ess(?:_|$)")
_SECRET_WORD: Final = re.compile(
    r"(?:^|_)(?:\w*token|\w*secret|password|passwd|authorization|api_?key)(?:_|$)"
)
_NAME_CONTEXTS: Final = frozenset(
    {"user_data", "user", "address", "customer", "billing", "shipping"}
)
_HASH: Final = re.compile(r"[0-9a-fA-F]{64}|[A-Za-z0-9_\-]{43}=?")
_PHONE: Final = re.compile(
    r"(?:(?<![A-Za-z0-9])\+|%2[bB])\d[\d\s().\-]{5,18}\d(?!\d)"
    r"|(?<![\w.])\(?\d{3}\)?[\s.\-]\d{3}[\s.\-]\d{4}(?!\w|\.\d)"
)


def _words(key: str) -> str:
    return key.strip().lower().replace("-", "_").replace(" ", "_")


def is_secret_key(key: str) -> bool:
    """True when ``key`` names a credential (rule 2)."""
    return any(_SECRET_WORD.search(_words(part)) for part in key.split("."))


def is_pii_key(key: str, parents: Sequence[str] = ()) -> bool:
    """True when ``key`` (dotted names allowed) names personal data (rule 1)."""
    parts = [_words(part) for part in (*parents, *key.split(".")) if part]
    if not parts:
        return False
    last = parts[-1]
    if _PII_WORD.search(last) or _ADDRESS_WORD.search(last):
        return True
    return last == "name" and any(part in _NAME_CONTEXTS for part in parts[:-1])


def is_hash(value: object) -> bool:
    """True for a SHA-256 digest as hex or base64url (what may stay under a personal key)."""
    return isinstance(value, str) and _HASH.fullmatch(value) is not None


def mask_text(text: str) -> str:
    """``text`` with every e-mail address and phone-like run replaced by ``[redacted]``.

    Linear in ``len(text)`` (no backtracking pattern), whatever the text."""
    text = redact_emails(strip_userinfo(text, REDACTED + "@"), REDACTED)
    if any(char.isdigit() for char in text):
        text = _PHONE.sub(REDACTED, text)
    return text


def _personal(value: Any, depth: int) -> Any:
    """A value under a personal key: hashes stay, containers are walked, the rest is redacted."""
    if value is None or isinstance(value, bool) or is_hash(value):
        return value
    if depth >= MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        return {mask_text(str(k)): _personal(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_personal(item, depth + 1) for item in value]
    return REDACTED


def redact(value: Any, parents: Sequence[str] = (), depth: int = 0) -> Any:
    """A JSON-compatible copy of ``value`` with the module's rules applied.

    ``parents`` are the keys above ``value`` (for the ``name`` rule).
    """
    if isinstance(value, str):
        return mask_text(value)
    if depth >= MAX_DEPTH:
        return "[too deep]"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = str(raw_key)
            if is_secret_key(key):
                out[mask_text(key)] = REDACTED
            elif is_pii_key(key, parents):
                out[mask_text(key)] = _personal(item, depth + 1)
            else:
                out[mask_text(key)] = redact(item, (*parents, key), depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [redact(item, parents, depth + 1) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return mask_text(str(value))


def redact_pair(name: str, value: str) -> list[str]:
    """One raw parameter as ``[name, value]`` with the rules applied (``ep.user_data.email``)."""
    if is_secret_key(name):
        return [mask_text(name), REDACTED]
    if is_pii_key(name):
        return [mask_text(name), value if is_hash(value) or not value else REDACTED]
    return [mask_text(name), mask_text(value)]


def query_pairs(query: str) -> list[list[str]]:
    """A query string (``a=1&b=2``) as redacted ``[name, value]`` pairs, in order, at most
    ``MAX_PAIRS``; form decoding as GA4 uses it (``+`` is a space)."""
    pairs: list[list[str]] = []
    for field in query.split("&")[:MAX_PAIRS]:
        if not field:
            continue
        name, _, value = field.partition("=")
        pairs.append(redact_pair(unquote_plus(name), unquote_plus(value)))
    return pairs


def body_view(body: bytes) -> dict[str, Any] | None:
    """The raw body for display: ``{"json": ...}`` when it is JSON, else ``{"lines": [pairs]}``
    (GA4 batches: one query string per line); ``truncated`` when over ``MAX_BODY_BYTES``."""
    if not body:
        return None
    truncated = len(body) > MAX_BODY_BYTES
    head = body[:MAX_BODY_BYTES]
    if not truncated and head.lstrip()[:1] in (b"{", b"["):
        try:
            return {"json": redact(wire_json.loads(head)), "truncated": False}
        except ValueError:
            pass
    text = head.decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()][:MAX_LINES]
    return {"lines": [query_pairs(line.strip()) for line in lines], "truncated": truncated}
