"""What the sandbox checks in a ``POST /event/track/`` request, the way TikTok does (SPEC 9).

``validate`` is pure: it reads the body and the ``Access-Token`` header and returns a ``Verdict``
carrying TikTok's code and message, plus the parsed events when the request is accepted. One
invalid event fails the whole batch and only the first one is reported, its message naming it
like TikTok's does: ``Batch.3.properties.contents.0.content_id: Not a valid string``.

The field rules are the tables ``BODY_RULES`` and ``EVENT_RULES``; a ``*`` in a path stands for
every element of a list. Rules are checked in table order, so a container's type rule comes
before the rules for what it holds. Types are strict, as the gateway must send them: a number in
a string is no number, ``true`` is no integer and ``3.0`` is no integer either.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from tiktok_gateway.credentials import same_secret
from tiktok_gateway.sandbox import codes
from tiktok_gateway.tags.tiktok.payload import MAX_BATCH_EVENTS

Check = Callable[[Any], str | None]
"""A field check: the reason the value is invalid, or ``None`` when it is valid."""

EVENT_SOURCES: Final = ("web", "app", "offline", "crm")
MISSING: Final = "Missing data for required field"
NULL: Final = "Field may not be null"

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) else "Not a valid string"


def _non_empty_string(value: Any) -> str | None:
    if not isinstance(value, str):
        return "Not a valid string"
    return None if value.strip() else "Must not be empty"


def _integer(value: Any) -> str | None:
    return None if isinstance(value, int) and not isinstance(value, bool) else "Not a valid integer"


def _number(value: Any) -> str | None:
    valid = isinstance(value, int | float) and not isinstance(value, bool)
    return None if valid else "Not a valid number"


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "Not a valid object"


def _list(value: Any) -> str | None:
    return None if isinstance(value, list) else "Not a valid list"


def _sha256(value: Any) -> str | None:
    values = value if isinstance(value, list) else [value]
    for item in values:
        if not isinstance(item, str) or not _SHA256_HEX.fullmatch(item):
            return "Not a SHA-256 hash (64 lower-case hex digits); personal data must be hashed"
    return None


def _event_source(value: Any) -> str | None:
    return None if value in EVENT_SOURCES else f"Must be one of: {', '.join(EVENT_SOURCES)}"


def _refused(value: Any) -> str | None:
    return "Invalid partner name"


@dataclass(frozen=True, slots=True)
class Rule:
    """One field rule: where the field is, how it is checked, the code when it fails.

    A missing required field or a ``null`` fails with 40002 whatever ``code`` says, unless
    ``check_null`` hands ``null`` to the check like any other value.
    """

    path: str
    check: Check
    code: int = codes.INVALID_FIELD
    required: bool = False
    check_null: bool = False
    parts: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.path.split(".")))


BODY_RULES: Final = (
    Rule("partner_name", _refused, codes.INVALID_PARTNER_NAME, check_null=True),
    Rule("event_source", _event_source, required=True),
    Rule("event_source_id", _non_empty_string, required=True),
    Rule("test_event_code", _string),
    Rule("data", _list, required=True),
)

EVENT_RULES: Final = (
    Rule("partner_name", _refused, codes.INVALID_PARTNER_NAME, check_null=True),
    Rule("event", _non_empty_string, required=True),
    Rule("event_time", _integer, required=True),
    Rule("event_id", _string),
    Rule("user", _object),
    Rule("user.email", _sha256, codes.PII_NOT_HASHED),
    Rule("user.phone", _sha256, codes.PII_NOT_HASHED),
    Rule("user.external_id", _sha256, codes.PII_NOT_HASHED),
    Rule("page", _object),
    Rule("properties", _object),
    Rule("properties.contents", _list),
    Rule("properties.contents.*", _object),
    Rule("properties.contents.*.content_id", _string),
    Rule("properties.contents.*.price", _number),
    Rule("properties.contents.*.quantity", _integer),
    Rule("properties.order_id", _string),
    Rule("properties.value", _number),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """TikTok's answer to one request; ``code`` 0 means the events were accepted."""

    code: int
    message: str
    pixel_code: str = ""
    test_event_code: str | None = None
    events: tuple[dict[str, Any], ...] = ()

    @property
    def accepted(self) -> bool:
        return self.code == codes.OK


def validate(body: bytes, access_token: str | None, expected_token: str | None) -> Verdict:
    """Check one request as TikTok would; ``expected_token`` ``None`` or empty accepts any token."""
    if expected_token and (access_token is None or not same_secret(access_token, expected_token)):
        return Verdict(codes.ACCESS_TOKEN_INVALID, codes.ACCESS_TOKEN_INVALID_MESSAGE)
    try:
        document = _load_json(body)
    except (ValueError, RecursionError) as exc:
        return Verdict(codes.INVALID_FIELD, f"Invalid JSON body: {exc}")
    if not isinstance(document, dict):
        return Verdict(codes.INVALID_FIELD, "Invalid JSON body: expected an object")
    failure = _first_failure(document, BODY_RULES, "")
    if failure is not None:
        return failure
    data: list[Any] = document["data"]
    if not data:
        return Verdict(
            codes.INVALID_FIELD, f"data: Length must be between 1 and {MAX_BATCH_EVENTS}"
        )
    if len(data) > MAX_BATCH_EVENTS:
        return Verdict(
            codes.BATCH_TOO_LARGE, f"data: Length must be between 1 and {MAX_BATCH_EVENTS}"
        )
    for index, event in enumerate(data):
        if not isinstance(event, dict):
            return Verdict(codes.INVALID_FIELD, f"Batch.{index}: Not a valid object")
        failure = _first_failure(event, EVENT_RULES, f"Batch.{index}.")
        if failure is not None:
            return failure
    return Verdict(
        codes.OK,
        codes.OK_MESSAGE,
        pixel_code=document["event_source_id"],
        test_event_code=document.get("test_event_code"),
        events=tuple(data),
    )


def _load_json(body: bytes) -> Any:
    return json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number out of range: {text[:40]}")
    return number


def _first_failure(root: dict[str, Any], rules: tuple[Rule, ...], prefix: str) -> Verdict | None:
    for rule in rules:
        problem = _rule_failure(root, rule)
        if problem is not None:
            code, path, why = problem
            return Verdict(code, f"{prefix}{path}: {why}")
    return None


def _rule_failure(root: dict[str, Any], rule: Rule) -> tuple[int, str, str] | None:
    key = rule.parts[-1]
    if rule.required:
        for parent_path, parent in _walk(root, rule.parts[:-1], ()):
            if isinstance(parent, dict) and key not in parent:
                return codes.INVALID_FIELD, ".".join((*parent_path, key)), MISSING
    for path, value in _walk(root, rule.parts, ()):
        if value is None and not rule.check_null:
            return codes.INVALID_FIELD, ".".join(path), NULL
        why = rule.check(value)
        if why is not None:
            return rule.code, ".".join(path), why
    return None


def _walk(
    node: Any, parts: tuple[str, ...], path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every value at ``parts`` below ``node`` (``*``: each list element), with its path."""
    if not parts:
        yield path, node
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        if isinstance(node, list):
            for index, item in enumerate(node):
                yield from _walk(item, rest, (*path, str(index)))
    elif isinstance(node, dict) and head in node:
        yield from _walk(node[head], rest, (*path, head))
