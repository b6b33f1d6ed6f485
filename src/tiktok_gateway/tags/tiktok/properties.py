"""The ``properties`` object of a TikTok event: contents, value, currency, search (SPEC 5.5)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from tiktok_gateway.event_data import EventData
from tiktok_gateway.tags.tiktok import fields
from tiktok_gateway.tags.tiktok.coerce import (
    round_money,
    to_decimal,
    to_id,
    to_int,
    to_money,
    to_number,
    to_text,
)

Explain = dict[str, str] | None

_CURRENCY = re.compile(r"[A-Z]{3}")

_CONTENT_TEXT: tuple[tuple[str, fields.Sources], ...] = (
    ("content_name", fields.CONTENT_NAME),
    ("content_category", fields.CONTENT_CATEGORY),
    ("brand", fields.CONTENT_BRAND),
)


def _note(explain: Explain, field: str, key: str) -> None:
    if explain is not None:
        explain[field] = key


def content_of(entry: EventData, default_type: str) -> dict[str, Any] | None:
    """One ``contents`` entry from a GA4 item or a TikTok content object; ``None`` without an id.

    ``content_id`` is always a string, ``price`` a number, ``quantity`` an integer (1 when missing).
    """
    found = fields.lookup(entry, fields.CONTENT_ID)
    content_id = to_id(found[1]) if found else None
    if content_id is None:
        return None
    content: dict[str, Any] = {"content_id": content_id}
    content["content_type"] = to_text(entry.get("content_type")) or default_type
    for name, table in _CONTENT_TEXT:
        found = fields.lookup(entry, table)
        text = to_text(found[1]) if found else None
        if text is not None:
            content[name] = text
    price = to_number(entry.get("price"))
    if price is not None:
        content["price"] = price
    quantity = to_int(entry.get("quantity"))
    content["quantity"] = 1 if quantity is None else quantity
    return content


def _raw_contents(data: EventData, explain: Explain) -> tuple[list[Any], list[str]]:
    warnings: list[str] = []
    found = fields.lookup(data, fields.CONTENTS)
    if found is not None:
        raw = found[1]
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raw = None
        if isinstance(raw, dict):
            raw = [raw]
        if isinstance(raw, list):
            _note(explain, "properties.contents", found[0])
            return raw, warnings
        warnings.append("invalid_contents")
    found = fields.lookup(data, fields.ITEMS)
    if found is not None and isinstance(found[1], list):
        _note(explain, "properties.contents", found[0])
        return found[1], warnings
    return [], warnings


def _value(
    data: EventData, contents: list[dict[str, Any]], explain: Explain
) -> tuple[int | float | None, list[str]]:
    found = fields.lookup(data, fields.VALUE)
    if found is not None:
        value = to_money(found[1])
        if value is not None:
            _note(explain, "properties.value", found[0])
            return value, []
        return None, ["invalid_value"]
    priced = [c for c in contents if "price" in c]
    if not priced:
        return None, []
    total = sum((to_decimal(c["price"]) or Decimal(0)) * c["quantity"] for c in priced) or Decimal(
        0
    )
    _note(explain, "properties.value", "sum(contents.price * quantity)")
    return round_money(total), []


def _currency(data: EventData, explain: Explain) -> tuple[str | None, list[str]]:
    found = fields.lookup(data, fields.CURRENCY)
    key = found[0] if found else "items.0.currency"
    raw = found[1] if found else None
    items = data.get("items")
    if raw is None and isinstance(items, list) and items and isinstance(items[0], dict):
        raw = items[0].get("currency")
    text = to_text(raw)
    if text is None:
        return None, []
    code = text.upper()
    if not _CURRENCY.fullmatch(code):
        return None, ["invalid_currency"]
    _note(explain, "properties.currency", key)
    return code, []


_TEXT_PROPERTIES: tuple[tuple[str, fields.Sources], ...] = (
    ("search_string", fields.SEARCH_STRING),
    ("description", fields.DESCRIPTION),
    ("order_id", fields.ORDER_ID),
    ("shop_id", fields.SHOP_ID),
)


def build_properties(
    data: EventData, *, tag_content_type: str, explain: Explain
) -> tuple[dict[str, Any], list[str]]:
    """The ``properties`` object (empty fields left out) and warnings for values dropped."""
    found = fields.lookup(data, fields.CONTENT_TYPE)
    content_type = to_text(found[1]) if found else None
    if content_type and found:
        _note(explain, "properties.content_type", found[0])
    content_type = content_type or tag_content_type

    raw, warnings = _raw_contents(data, explain)
    contents = [
        content
        for entry in raw
        if isinstance(entry, dict) and (content := content_of(entry, content_type))
    ]
    properties: dict[str, Any] = {}
    if contents:
        properties["contents"] = contents
        properties["content_type"] = content_type
        properties["content_ids"] = [c["content_id"] for c in contents]
    currency, more = _currency(data, explain)
    warnings += more
    if currency:
        properties["currency"] = currency
    value, more = _value(data, contents, explain)
    warnings += more
    if value is not None:
        properties["value"] = value
    for name, table in _TEXT_PROPERTIES:
        found = fields.lookup(data, table)
        text = to_text(found[1]) if found else None
        if found and text:
            properties[name] = text
            _note(explain, f"properties.{name}", found[0])
    return properties, warnings
