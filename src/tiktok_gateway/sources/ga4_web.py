"""``/g/collect``: GA4 web hits (gtag.js / GTM web, protocol v2) into event data (SPEC 2, 4).

The query holds the parameters shared by the hit's events; the body is empty (one event, all in
the query) or holds one event per line. Each event is the query's parameters overridden by its
line's. Parameters become event data keys through ``ga4_params.PARAMS``, then the prefix rules:
``ep.``/``epn.`` event parameters (dotted names un-flattened), ``up.``/``upn.`` user properties,
``pr<N>`` items, ``_<flag>`` system properties, and ``x-ga-mp2-<name>`` for everything else.

Decisions beyond the SPEC:

- ``v`` and ``tid`` are checked on the query only (gtag always sends them there).
- Body lines are numbered among the non-blank lines: ``x-gw-line`` and ``LineError.line`` are
  that 0-based number, so a line without ``en`` still takes its number.
- An empty or blank ``en`` counts as missing.
- Event parameters cannot write ``ip_override``, ``user_agent`` or ``x-gw-*`` keys (those come
  from the request); such parameters are kept as ``x-ga-mp2-<name>``. ``_uip`` ends up in
  ``x-ga-system_properties`` like every ``_`` flag, never in ``ip_override``.
- A dotted event parameter name deeper than ``ga4_params.MAX_PATH_DEPTH`` levels stays one key,
  so hostile names cannot build structures too deep to copy or serialise.
- ``em`` decoded values fill ``user_data`` where the hit's own ``ep.user_data.*`` values are
  empty; a non-object ``user_data`` or ``user_data.address`` set by the hit is left alone.
- A parameter with an empty name (``=x``) is ignored.
- A body holds at most ``MAX_EVENTS_PER_HIT`` lines (gtag sends a few): each line copies the
  query's data, so an unbounded count would let one request build gigabytes. Lines past the
  limit are not parsed; one ``LineError("too_many_events")`` with ``line`` = the limit says so.
"""

from __future__ import annotations

from typing import Any, Final

from tiktok_gateway.errors import HitError, LineError
from tiktok_gateway.event_data import (
    LINE_KEY,
    EventData,
    ParsedInput,
    RequestContext,
    is_empty,
    set_path,
)
from tiktok_gateway.sources.ga4_items import item_order, parse_item
from tiktok_gateway.sources.ga4_params import (
    CLIENT_HINTS_KEY,
    EM_KEY,
    EVENT_NAME_KEY,
    HINT,
    HINT_BRANDS,
    HINT_FLAG,
    ITEM,
    ITEMS_KEY,
    MEASUREMENT_ID_KEY,
    NUMBER,
    PATH_NUMBER,
    PATH_TEXT,
    PREFIX_EVENT_NUMBER,
    PREFIX_EVENT_TEXT,
    PREFIX_USER_NUMBER,
    PREFIX_USER_TEXT,
    PROTOCOL_VERSION_KEY,
    SYSTEM,
    SYSTEM_PROPERTIES_KEY,
    TEXT,
    USER_NUMBER,
    USER_PROPERTIES_KEY,
    USER_TEXT,
    rule_of,
)
from tiktok_gateway.sources.ga4_params import _memo as _RULES
from tiktok_gateway.sources.ga4_user_data import decode_em
from tiktok_gateway.sources.ga4_values import decode_brands, decode_component, to_flag, to_number

SOURCE: Final = "ga4"
USER_DATA_KEY: Final = "user_data"
MAX_EVENTS_PER_HIT: Final = 200
_DETAIL_LENGTH: Final = 64
# The memo of read parameters (_read): at most this many, each at most this long.
MAX_MEMO_FIELDS: Final = 4096
MAX_MEMO_FIELD_LENGTH: Final = 2048
_FIELDS: dict[str, tuple[int, str, Any]] = {}
_PERSONAL_PREFIXES: Final = (
    PREFIX_EVENT_TEXT,
    PREFIX_EVENT_NUMBER,
    PREFIX_USER_TEXT,
    PREFIX_USER_NUMBER,
)


class _Draft:
    """One event being built: its data, and its raw item strings by parameter name."""

    def __init__(self, data: EventData, items: dict[str, str]) -> None:
        self.data = data
        self.items = items

    def copy(self, containers: list[str]) -> _Draft:
        """An independent copy; ``containers`` names the top-level keys holding dicts or lists."""
        data = dict(self.data)
        for key in containers:
            data[key] = _copy_tree(data[key])
        return _Draft(data, dict(self.items))


def _copy_tree(value: Any) -> Any:
    """Copy the dicts and lists of a JSON-like value (leaves are immutable and shared)."""
    if isinstance(value, dict):
        return {key: _copy_tree(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_copy_tree(child) for child in value]
    return value


def _child(data: EventData, key: str) -> dict[str, Any]:
    """``data[key]`` as a dict, replacing whatever non-dict stands there."""
    node = data.get(key)
    if not isinstance(node, dict):
        node = {}
        data[key] = node
    return node


def _read(field: str) -> tuple[int, str, Any]:
    """One ``name=value`` parameter as ``(kind, key, value)``: decoded, converted for its kind.

    Converted values are immutable (text, number, flag): a memoised result can be shared.
    """
    name, _, text = field.partition("=")
    if "%" in name or "+" in name:
        name = decode_component(name)
    rule = _RULES.get(name)
    kind, key = rule if rule is not None else rule_of(name)
    if "%" in text or "+" in text:
        text = decode_component(text)
    value: Any = text
    if kind in (NUMBER, PATH_NUMBER, USER_NUMBER):
        value = to_number(text)
    elif kind == HINT_FLAG:
        value = to_flag(text)
    if len(field) <= MAX_MEMO_FIELD_LENGTH and _shareable(name):
        if len(_FIELDS) >= MAX_MEMO_FIELDS:
            _FIELDS.clear()
        _FIELDS[field] = (kind, key, value)
    return kind, key, value


def _shareable(name: str) -> bool:
    """Whether the parameter may enter the memo of ``_read``.

    Most of a gtag hit repeats from hit to hit of a page or a site (``v``, ``tid``, ``dl``,
    ``dt``, consent, client hints, item strings); those are memoised whole, so a repeated
    parameter costs one dict lookup. Event parameters and user properties never are: sites put
    personal data there (``ep.user_data.email_address``), which must not linger in memory.
    """
    return not name.startswith(_PERSONAL_PREFIXES)


def _apply(draft: _Draft, text: str) -> None:
    """Write decoded parameters into the draft, later ones overriding earlier ones."""
    data = draft.data
    for field in text.split("&"):
        if not field:
            continue
        known = _FIELDS.get(field)
        kind, key, value = known if known is not None else _read(field)
        if kind in (TEXT, NUMBER):
            data[key] = value
        elif kind == SYSTEM:
            _child(data, SYSTEM_PROPERTIES_KEY)[key] = value
        elif kind in (HINT, HINT_FLAG):
            _child(data, CLIENT_HINTS_KEY)[key] = value
        elif kind == HINT_BRANDS:
            _child(data, CLIENT_HINTS_KEY)[key] = decode_brands(value)
        elif kind == ITEM:
            draft.items[key] = value
        elif kind in (PATH_TEXT, PATH_NUMBER):
            set_path(data, key, value)
        elif kind in (USER_TEXT, USER_NUMBER):
            _child(data, USER_PROPERTIES_KEY)[key] = value


def _merge_user_data(data: EventData, decoded: dict[str, Any]) -> None:
    """Add the decoded ``em`` to ``user_data``; the hit's own non-empty values win."""
    current = data.get(USER_DATA_KEY)
    if current is None:
        data[USER_DATA_KEY] = decoded
        return
    if not isinstance(current, dict):
        return
    for key, value in decoded.items():
        existing = current.get(key)
        if key == "address" and isinstance(existing, dict):
            for field, text in value.items():
                if is_empty(existing.get(field)):
                    existing[field] = text
        elif is_empty(existing):
            current[key] = value


def _finish(
    draft: _Draft, line: int, in_body: bool, ctx: RequestContext, result: ParsedInput
) -> None:
    """Complete one event (items, em, line, request facts) or record why its line is unusable."""
    data = draft.data
    name = data.get(EVENT_NAME_KEY)
    if not isinstance(name, str) or not name.strip():
        where = f"body line {line}" if in_body else "the query"
        result.errors.append(LineError("missing_event_name", f"no en parameter in {where}", line))
        return
    if draft.items:
        items = []
        for param in sorted(draft.items, key=item_order):
            item = parse_item(draft.items[param])
            if item is not None:
                items.append(item)
        if items:
            data[ITEMS_KEY] = items
    em = data.get(EM_KEY)
    if isinstance(em, str) and em:
        decoded = decode_em(em)
        if decoded:
            _merge_user_data(data, decoded)
    data[LINE_KEY] = line
    ctx.apply(data, SOURCE)
    result.events.append(data)


def _text(value: bytes | str) -> str:
    """Request text as ``str``; ``HitError("invalid_utf8")`` when it is not valid UTF-8."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise HitError("invalid_utf8", "text holds lone surrogates") from exc
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HitError("invalid_utf8", f"invalid UTF-8 at byte {exc.start}") from exc


def _shown(value: object) -> str:
    """A client-supplied value for an error detail, cut short."""
    text = repr(value)
    return text if len(text) <= _DETAIL_LENGTH else text[:_DETAIL_LENGTH] + "..."


def _body_lines(body: str) -> list[str]:
    """The body's non-blank lines, ``\\r\\n`` or ``\\n`` separated."""
    lines = []
    for line in body.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if line.strip():
            lines.append(line)
    return lines


def parse_hit(query: str, body: bytes | str, ctx: RequestContext) -> ParsedInput:
    """Parse one GA4 web hit into its events and the errors of its unusable lines.

    ``query`` is the raw query string (without ``?``), ``body`` the raw POST body (``b""`` for
    GET). Raises ``HitError`` when the whole hit is unusable: ``v`` is not ``2``
    (``unsupported_protocol_version``), ``tid`` is missing or empty (``missing_measurement_id``),
    or the body or query is not valid UTF-8 (``invalid_utf8``). Every event is a fresh dict with
    ``x-gw-line`` and the request facts of ``ctx`` applied; a line without ``en`` becomes a
    ``LineError("missing_event_name")`` and the other lines still produce events. Raises nothing
    but ``ParseError`` subclasses, whatever the input.
    """
    base = _Draft({}, {})
    _apply(base, _text(query))
    version = base.data.get(PROTOCOL_VERSION_KEY)
    if version != "2":
        raise HitError("unsupported_protocol_version", f"v={_shown(version)}, expected '2'")
    tid = base.data.get(MEASUREMENT_ID_KEY)
    if not isinstance(tid, str) or not tid.strip():
        raise HitError("missing_measurement_id", "the tid parameter is missing or empty")
    lines = _body_lines(_text(body))
    result = ParsedInput()
    if len(lines) <= 1:
        if lines:
            _apply(base, lines[0])
        _finish(base, 0, bool(lines), ctx, result)
        return result
    containers = [key for key, value in base.data.items() if isinstance(value, dict | list)]
    for index, line in enumerate(lines[:MAX_EVENTS_PER_HIT]):
        draft = base.copy(containers)
        _apply(draft, line)
        _finish(draft, index, True, ctx, result)
    if len(lines) > MAX_EVENTS_PER_HIT:
        detail = f"{len(lines) - MAX_EVENTS_PER_HIT} lines past the limit of {MAX_EVENTS_PER_HIT}"
        result.errors.append(LineError("too_many_events", detail, MAX_EVENTS_PER_HIT))
    return result
