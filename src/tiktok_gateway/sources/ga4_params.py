"""The GA4 web-hit parameter table: which parameter becomes which event data key (SPEC 2, 4).

A parameter's *rule* is ``(kind, key)``: how its value is stored and under which key.
``PARAMS`` holds the rules of the parameters known by their full name; ``route`` adds the prefix
rules (``ep.``, ``epn.``, ``up.``, ``upn.``, ``pr<N>``, ``_<flag>``) and keeps every other
parameter as ``x-ga-mp2-<name>``. ``rule_of`` is the memoised lookup the parser uses, so a name
seen before costs one dict lookup whatever rule it falls under.
"""

from __future__ import annotations

from typing import Final

from tiktok_gateway.event_data import INTERNAL_PREFIX
from tiktok_gateway.sources.ga4_items import is_item_param

# How a parameter's value is stored. Plain ints, not an Enum: the parser compares them once per
# parameter and Enum member access costs several times an int comparison. Most frequent first.
TEXT: Final = 0  # data[key] = value
NUMBER: Final = 1  # data[key] = number when decimal text, else the text
SYSTEM: Final = 2  # data["x-ga-system_properties"][key] = value
HINT: Final = 3  # data["client_hints"][key] = value
HINT_FLAG: Final = 4  # data["client_hints"][key] = bool
HINT_BRANDS: Final = 5  # data["client_hints"][key] = [{brand, version}, ...]
ITEM: Final = 6  # the raw item string, parsed once the event is complete; key = the param name
PATH_TEXT: Final = 7  # set_path(data, key, value): a dotted event parameter
PATH_NUMBER: Final = 8  # set_path(data, key, number)
USER_TEXT: Final = 9  # data["x-ga-mp2-user_properties"][key] = value
USER_NUMBER: Final = 10  # data["x-ga-mp2-user_properties"][key] = number
IGNORE: Final = 11  # nothing (a parameter without a name)

Rule = tuple[int, str]


CLIENT_HINTS_KEY: Final = "client_hints"
SYSTEM_PROPERTIES_KEY: Final = "x-ga-system_properties"
USER_PROPERTIES_KEY: Final = "x-ga-mp2-user_properties"
UNKNOWN_PREFIX: Final = "x-ga-mp2-"
EM_KEY: Final = "x-ga-em"
ITEMS_KEY: Final = "items"
EVENT_NAME_KEY: Final = "event_name"
PROTOCOL_VERSION_KEY: Final = "x-ga-protocol_version"
MEASUREMENT_ID_KEY: Final = "x-ga-measurement_id"

# Parameter prefixes: event parameters (text, number) and user properties (text, number).
PREFIX_EVENT_TEXT: Final = "ep."
PREFIX_EVENT_NUMBER: Final = "epn."
PREFIX_USER_TEXT: Final = "up."
PREFIX_USER_NUMBER: Final = "upn."
# Any other parameter starting with it is a flag: x-ga-system_properties[name without it].
PREFIX_SYSTEM: Final = "_"

# A dotted event parameter name deeper than this is kept as one flat key, so hostile names cannot
# build structures too deep to copy or serialise.
MAX_PATH_DEPTH: Final = 16
# Bound of the memo of rules: names are chosen by clients, and unseen names still work (slower).
MAX_MEMO: Final = 4096

# Event parameters may not write these keys: they describe the request, not the page, and come
# from the request itself (SPEC 2: never trust an IP from a browser). Such parameters are kept as
# x-ga-mp2-<name> instead, as are keys starting with the gateway's own INTERNAL_PREFIX.
RESERVED_KEYS: Final = frozenset({"ip_override", "user_agent"})

PARAMS: Final[dict[str, Rule]] = {
    # hit
    "v": (TEXT, PROTOCOL_VERSION_KEY),
    "tid": (TEXT, MEASUREMENT_ID_KEY),
    "gtm": (TEXT, "x-ga-gtm_version"),
    "_p": (NUMBER, "x-ga-page_id"),
    "_s": (NUMBER, "x-ga-request_count"),
    # user and page
    "cid": (TEXT, "client_id"),
    "uid": (TEXT, "user_id"),
    "dl": (TEXT, "page_location"),
    "dr": (TEXT, "page_referrer"),
    "dt": (TEXT, "page_title"),
    "ul": (TEXT, "language"),
    "sr": (TEXT, "screen_resolution"),
    # event and session
    "en": (TEXT, EVENT_NAME_KEY),
    "_et": (NUMBER, "engagement_time_msec"),
    "sid": (TEXT, "ga_session_id"),  # a string on purpose (SPEC 4)
    "sct": (NUMBER, "ga_session_number"),
    "seg": (TEXT, "x-ga-mp2-seg"),
    "cu": (TEXT, "currency"),
    # consent (decoded by ga4_consent when needed)
    "gcs": (TEXT, "x-ga-gcs"),
    "gcd": (TEXT, "x-ga-gcd"),
    "npa": (TEXT, "x-ga-npa"),
    "dma": (TEXT, "x-ga-dma"),
    "dma_cps": (TEXT, "x-ga-dma_cps"),
    "gcu": (TEXT, "x-ga-gcu"),
    # user-provided data (em is also decoded into user_data)
    "em": (TEXT, EM_KEY),
    "ec_mode": (TEXT, "x-ga-ec_mode"),
    "ecid": (TEXT, "x-ga-ecid"),
    # client hints (Chromium)
    "uaa": (HINT, "architecture"),
    "uab": (HINT, "bitness"),
    "uafvl": (HINT_BRANDS, "full_version_list"),
    "uamb": (HINT_FLAG, "mobile"),
    "uam": (HINT, "model"),
    "uap": (HINT, "platform"),
    "uapv": (HINT, "platform_version"),
    "uaw": (HINT_FLAG, "wow64"),
}


def _event_param(name: str, key: str, number: bool) -> Rule:
    """The rule of ``ep.<key>`` (``number`` False) or ``epn.<key>``."""
    root = key.partition(".")[0]
    if not key or root in RESERVED_KEYS or root.startswith(INTERNAL_PREFIX):
        return (NUMBER if number else TEXT, UNKNOWN_PREFIX + name)
    if "." not in key or key.count(".") > MAX_PATH_DEPTH:
        return (NUMBER if number else TEXT, key)
    return (PATH_NUMBER if number else PATH_TEXT, key)


def route(name: str) -> Rule:
    """The rule of a parameter name: the table, then the prefix rules, else ``x-ga-mp2-<name>``.

    ``ep.``/``epn.`` names that would write ``ip_override``, ``user_agent`` or an ``x-gw-*`` key
    are kept as ``x-ga-mp2-<name>`` (those come from the request, never from the hit).
    """
    rule = PARAMS.get(name)
    if rule is not None:
        return rule
    if not name:
        return (IGNORE, "")
    if name.startswith(PREFIX_SYSTEM):
        return (SYSTEM, name[1:])
    if name.startswith(PREFIX_EVENT_TEXT):
        return _event_param(name, name[3:], number=False)
    if name.startswith(PREFIX_EVENT_NUMBER):
        return _event_param(name, name[4:], number=True)
    if name.startswith(PREFIX_USER_TEXT) and len(name) > 3:
        return (USER_TEXT, name[3:])
    if name.startswith(PREFIX_USER_NUMBER) and len(name) > 4:
        return (USER_NUMBER, name[4:])
    if is_item_param(name):
        return (ITEM, name)
    return (TEXT, UNKNOWN_PREFIX + name)


_memo: dict[str, Rule] = dict(PARAMS)


def rule_of(name: str) -> Rule:
    """``route(name)``, memoised for up to ``MAX_MEMO`` names."""
    rule = _memo.get(name)
    if rule is None:
        rule = route(name)
        if len(_memo) < MAX_MEMO:
            _memo[name] = rule
    return rule
