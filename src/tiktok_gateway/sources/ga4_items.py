"""GA4 web-hit items: the ``pr<N>`` parameters (SPEC 2.0).

An item is a list of tokens joined by ``~`` (a literal ``~`` is sent doubled); each token is a
two-letter code followed by its value, in any order: ``idSKU_1~nmTee~pr10.01~qt3``. Custom item
parameters come as ``k<i><name>`` / ``v<i><value>`` pairs.

Decisions beyond the SPEC:

- An empty id or name counts as missing: an item whose ``id`` and ``nm`` are both missing or
  empty is dropped (``parse_item`` returns ``None``).
- Unknown codes (``zz...``) are kept under their raw two-letter code (``{"zz": "..."}``) so no
  data is lost; the mapping reads only the GA4 keys. A token shorter than two characters carries
  no code and is ignored.
- Custom parameters: ``v<i><value>`` is ambiguous when the value starts with a digit
  (``v042`` is index 0 with value ``42``, or index 04 ...). gtag writes each ``v`` right after
  its ``k``, so a ``v`` whose digits start with the index of the ``k`` just before it takes that
  index. Any other ``v`` takes the longest digit prefix that is the index of a ``k`` without a
  value yet, else of any ``k``, else all its leading digits. A ``k`` index is all the digits
  after the ``k`` (GA4 parameter names start with a letter).
- A name without a value gets ``""``; a value without a name is dropped (there is nothing to
  call it). Codes win over custom names and custom names win over unknown codes when they
  collide (``k0item_id`` does not replace ``id``). Custom values stay text.
- When a code repeats, the last token wins.
- ``k``/``v`` without an index are paired in order of appearance. Such a token whose first two
  characters form a known code is read as that code (``vapple`` is the variant ``pple``).
"""

from __future__ import annotations

import re
from typing import Any, Final

from tiktok_gateway.sources.ga4_values import to_number

# Recognises item parameter names; ASCII digits only (``\d`` would take any Unicode digit) and
# fullmatch only (``$`` would accept a trailing newline).
ITEM_PARAM: Final = re.compile(r"pr[0-9]+")

# code -> (event data key, numeric?). Numeric values become numbers when they are decimal text.
ITEM_FIELDS: Final[dict[str, tuple[str, bool]]] = {
    "id": ("item_id", False),
    "nm": ("item_name", False),
    "br": ("item_brand", False),
    "ca": ("item_category", False),
    "c2": ("item_category2", False),
    "c3": ("item_category3", False),
    "c4": ("item_category4", False),
    "c5": ("item_category5", False),
    "va": ("item_variant", False),
    "pr": ("price", True),
    "qt": ("quantity", True),
    "cp": ("coupon", False),
    "ds": ("discount", True),
    "lp": ("index", True),
    "li": ("item_list_id", False),
    "ln": ("item_list_name", False),
    "af": ("affiliation", False),
    "lo": ("location_id", False),
    "pi": ("promotion_id", False),
    "pn": ("promotion_name", False),
    "cn": ("creative_name", False),
    "cs": ("creative_slot", False),
}

_DIGITS: Final = frozenset("0123456789")
# Longest index a v token is matched on; real items have a handful of custom parameters, and the
# bound keeps hostile digit runs from costing quadratic time.
MAX_INDEX_DIGITS: Final = 6


def is_item_param(name: str) -> bool:
    """True for item parameter names: ``pr`` then ASCII digits (``pr1``, ``pr10``)."""
    return ITEM_PARAM.fullmatch(name) is not None


def item_order(name: str) -> tuple[int, str, str]:
    """Sort key putting item parameter names in numeric order of N (``pr2`` before ``pr10``).

    Compares digit strings by length then text, so any N sorts right without ``int()`` (which
    refuses very long digit strings); ``pr01`` and ``pr1`` tie on N and then sort by name.
    """
    digits = name[2:].lstrip("0")
    return (len(digits), digits, name)


def split_tokens(value: str) -> list[str]:
    """Split an item string on each lone ``~``; ``~~`` stands for a literal ``~``.

    Scans left to right, so ``a~~~b`` is ``["a~", "b"]``: a doubled tilde is taken before a
    separator, which is right because every token starts with a code, never with ``~``.
    """
    if "~~" not in value:
        return value.split("~")
    tokens: list[str] = []
    current: list[str] = []
    start = 0
    length = len(value)
    while True:
        i = value.find("~", start)
        if i < 0:
            current.append(value[start:])
            tokens.append("".join(current))
            return tokens
        current.append(value[start:i])
        if i + 1 < length and value[i + 1] == "~":
            current.append("~")
            start = i + 2
        else:
            tokens.append("".join(current))
            current = []
            start = i + 1


def _digit_run(token: str) -> int:
    """How many ASCII digits follow the first character of ``token``."""
    end = 1
    while end < len(token) and token[end] in _DIGITS:
        end += 1
    return end - 1


def _value_index(text: str, names: dict[str, str], values: dict[str, str]) -> int:
    """Length of the index at the start of a ``v`` token's ``text`` (rule in the module notes)."""
    run = _digit_run("v" + text[: MAX_INDEX_DIGITS + 1])
    fallback = 0
    for end in range(min(run, MAX_INDEX_DIGITS), 0, -1):
        prefix = text[:end]
        if prefix in names:
            if prefix not in values:
                return end
            fallback = fallback or end
    return fallback or _digit_run("v" + text)


def _custom_params(
    names: dict[str, str], paired: dict[str, str], unpaired: list[str]
) -> dict[str, Any]:
    """Custom item parameters by name, from ``k`` names and ``v`` values keyed by index."""
    values = dict(paired)
    for text in unpaired:
        end = _value_index(text, names, values)
        values[text[:end]] = text[end:]
    return {name: values.get(index, "") for index, name in names.items() if name}


def parse_item(value: str) -> dict[str, Any] | None:
    """One ``pr<N>`` value as a GA4 item dict; ``None`` when it has neither ``id`` nor ``nm``.

    Keys are those of ``ITEM_FIELDS`` (``item_id``, ``price``, ...), custom parameter names and
    unknown raw codes (see the module notes). ``price``, ``quantity``, ``discount`` and ``index``
    are ``int`` for integral text, ``float`` for other decimal text, the string otherwise.
    Never raises.
    """
    fields: dict[str, Any] = {}
    unknown: dict[str, str] = {}
    names: dict[str, str] = {}  # custom parameter names by index
    paired: dict[str, str] = {}  # custom values by index, when it is certain
    unpaired: list[str] = []  # v tokens (without the v) whose index is still to be found
    last_index: str | None = None  # index of the k token just before, for the v after it
    loose_names: list[str] = []  # k/v without an index, paired in order
    loose_values: list[str] = []
    for token in split_tokens(value):
        code = token[:2]
        field = ITEM_FIELDS.get(code)
        if field is not None:  # no code is k or v followed by a digit: this test can go first
            key, numeric = field
            fields[key] = to_number(token[2:]) if numeric else token[2:]
            last_index = None
            continue
        head = token[:1]
        if head == "k" or head == "v":
            if code[1:] not in _DIGITS:
                (loose_names if head == "k" else loose_values).append(token[1:])
            elif head == "k":
                end = _digit_run(token) + 1
                last_index = token[1:end]
                names[last_index] = token[end:]
                continue
            elif last_index is not None and token.startswith(last_index, 1):
                paired[last_index] = token[1 + len(last_index) :]
            else:
                unpaired.append(token[1:])
        elif len(token) >= 2:
            unknown[code] = token[2:]
        last_index = None
    if not fields.get("item_id") and not fields.get("item_name"):
        return None
    custom = _custom_params(names, paired, unpaired) if names else {}
    for position, name in enumerate(loose_names):
        if name:
            custom[name] = loose_values[position] if position < len(loose_values) else ""
    if not custom and not unknown:
        return fields
    return {**unknown, **custom, **fields}
