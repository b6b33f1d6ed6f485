"""The ``user`` object of a TikTok event: identifiers, hashed personal data, click ids.

SPEC 5.4 and 6.

Raw e-mail addresses, phone numbers, names and postal codes are hashed here or dropped; nothing in
the returned object is raw personal data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from tiktok_gateway.event_data import INTERNAL_PREFIX, EventData
from tiktok_gateway.sources.request_context import normalised_ip
from tiktok_gateway.tags.tiktok import fields
from tiktok_gateway.tags.tiktok.coerce import to_text
from tiktok_gateway.tags.tiktok.hashing import (
    hash_email,
    hash_external_id,
    hash_name,
    hash_phone,
    hash_zip,
    plain_lower,
)

Explain = dict[str, str] | None


def _note(explain: Explain, field: str, key: str) -> None:
    if explain is not None:
        explain[field] = key


def _hashed_values(raw: Any, hasher: Callable[[str], str | None]) -> tuple[list[str], int]:
    """Hashes of one value or a list of values, de-duplicated in order, and the count dropped."""
    values = raw if isinstance(raw, list) else [raw]
    hashes: list[str] = []
    dropped = 0
    for value in values:
        text = to_text(value)
        digest = hasher(text) if text else None
        if digest is None:
            dropped += 1
        elif digest not in hashes:
            hashes.append(digest)
    return hashes, dropped


def _one_or_many(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def ttclid_in_url(url: str | None) -> str | None:
    """The ``ttclid`` query parameter of ``url`` (URL-decoded, fragment excluded)."""
    if not url:
        return None
    if "\t" in url or "\r" in url or "\n" in url:  # urlsplit drops them anywhere in a URL
        url = url.replace("\t", "").replace("\r", "").replace("\n", "")
    if "ttclid" not in url:
        return None
    # The query as urlsplit() finds it (after the first "?", before the "#"), without its
    # netloc parsing, which is most of its cost and irrelevant here.
    query = url.partition("#")[0].partition("?")[2]
    # What parse_qs(query).get("ttclid")[0] gives, without decoding every other parameter.
    for field in query.split("&"):
        name, eq, value = field.partition("=")
        if not eq or not value:
            continue
        if "%" in name or "+" in name:
            name = unquote(name.replace("+", " "), errors="replace")
        if name == "ttclid":
            return unquote(value.replace("+", " "), errors="replace").strip() or None
    return None


def _same_host(url: str, other: str) -> bool:
    try:
        host = urlsplit(url).hostname
        return host is not None and host == urlsplit(other).hostname
    except ValueError:
        return False


def locale_of(language: str) -> str | None:
    """``en-us`` -> ``en-US``; a bare language stays lower-case."""
    parts = language.strip().replace("_", "-").split("-")
    if not parts[0]:
        return None
    if len(parts) >= 2 and len(parts[1]) == 2:
        return f"{parts[0].lower()}-{parts[1].upper()}"
    return parts[0].lower()


def _address(data: EventData) -> EventData | None:
    found = fields.lookup(data, fields.ADDRESS)
    if found is None:
        return None
    address = found[1]
    if isinstance(address, list):
        address = address[0]
    return address if isinstance(address, dict) else None


_ADDRESS_FIELDS: tuple[tuple[str, fields.Sources, Callable[[str], str | None]], ...] = (
    ("first_name", fields.ADDRESS_FIRST_NAME, hash_name),
    ("last_name", fields.ADDRESS_LAST_NAME, hash_name),
    ("zip_code", fields.ADDRESS_ZIP, hash_zip),
    ("city", fields.ADDRESS_CITY, plain_lower),
    ("state", fields.ADDRESS_STATE, plain_lower),
    ("country", fields.ADDRESS_COUNTRY, plain_lower),
)


def _personal(data: EventData, region: str, user: dict[str, Any], explain: Explain) -> list[str]:
    """Add hashed email, phone, external id and address; return warnings for dropped values."""
    warnings: list[str] = []
    identifiers: tuple[tuple[str, fields.Sources, Callable[[str], str | None]], ...] = (
        ("email", fields.EMAIL, hash_email),
        ("phone", fields.PHONE, lambda value: hash_phone(value, region)),
        ("external_id", fields.EXTERNAL_ID, hash_external_id),
    )
    for name, table, hasher in identifiers:
        found = fields.lookup(data, table)
        if found is None:
            continue
        hashes, dropped = _hashed_values(found[1], hasher)
        if dropped:
            warnings.append(f"invalid_{name}")
        if hashes:
            user[name] = _one_or_many(hashes)
            _note(explain, f"user.{name}", found[0])
    address = _address(data)
    if address is not None:
        for name, table, normalise in _ADDRESS_FIELDS:
            found = fields.lookup(address, table)
            text = to_text(found[1]) if found else None
            value = normalise(text) if text else None
            if found and value:
                user[name] = value
                _note(explain, f"user.{name}", f"user_data.address.{found[0]}")
    return warnings


def build_user(
    data: EventData,
    *,
    region: str,
    pii_allowed: bool,
    page_url: str | None,
    referrer: str | None,
    explain: Explain,
) -> tuple[dict[str, Any], str | None, list[str]]:
    """The ``user`` object, the ttclid found in the page URL (for the cookie), and warnings.

    With ``pii_allowed`` false (ad_user_data denied under the ``respect`` policy) no email, phone,
    external id, name or address is included.
    """
    user: dict[str, Any] = {}
    warnings = _personal(data, region, user, explain) if pii_allowed else []

    found = fields.lookup(data, fields.IP)
    if found is not None:
        ip = normalised_ip(str(found[1]))
        if ip is None:
            warnings.append("invalid_ip")
        else:
            user["ip"] = ip
            _note(explain, "user.ip", found[0])
    found = fields.lookup(data, fields.USER_AGENT)
    if found is not None and (agent := to_text(found[1])):
        user["user_agent"] = agent
        _note(explain, "user.user_agent", found[0])
    found = fields.lookup(data, fields.LOCALE)
    if found is not None and isinstance(found[1], str) and (locale := locale_of(found[1])):
        user["locale"] = locale
        _note(explain, "user.locale", found[0])

    url_ttclid = ttclid_in_url(page_url)
    found = fields.lookup(data, fields.TTCLID)
    if found is not None and (ttclid := to_text(found[1])):
        user["ttclid"] = ttclid
        _note(explain, "user.ttclid", found[0])
    elif url_ttclid:
        user["ttclid"] = url_ttclid
        _note(explain, "user.ttclid", "page.url?ttclid")
    elif (
        referrer
        and page_url
        and "ttclid" in referrer  # before the two urlsplit calls of _same_host
        and _same_host(page_url, referrer)
        and (referrer_ttclid := ttclid_in_url(referrer))
    ):
        user["ttclid"] = referrer_ttclid
        _note(explain, "user.ttclid", "page.referrer?ttclid")
    elif (found := fields.lookup(data, fields.COOKIE_TTCLID)) and (ttclid := to_text(found[1])):
        user["ttclid"] = ttclid
        _note(explain, "user.ttclid", "cookie ttclid")

    found = fields.lookup(data, fields.TTP)
    if found is not None and (ttp := to_text(found[1])):
        user["ttp"] = ttp
        _note(
            explain, "user.ttp", "cookie _ttp" if found[0].startswith(INTERNAL_PREFIX) else found[0]
        )
    return user, url_ttclid, warnings
