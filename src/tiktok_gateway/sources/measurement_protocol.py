"""``POST /mp/collect``: GA4 Measurement Protocol requests, SPEC 3.2.

Each event of the body becomes one event data dict shaped like server-side GTM's GA4 client
makes it: the event's ``params`` as top-level keys, then the request-wide facts (``event_name``,
``client_id``, ``user_id``, ``x-ga-measurement_id``, ``user_data``, user properties, consent,
address, user agent, event time). See ``parse_mp`` for the exact keys and their precedence.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Any

from tiktok_gateway.errors import AuthError, LineError, ParseError
from tiktok_gateway.event_data import (
    CONSENT_KEY,
    EVENT_TIME_KEY,
    LINE_KEY,
    EventData,
    ParsedInput,
    RequestContext,
)
from tiktok_gateway.sources.ga4_params import MEASUREMENT_ID_KEY, USER_PROPERTIES_KEY
from tiktok_gateway.sources.json_body import load_json_body, strip_internal_keys
from tiktok_gateway.sources.request_context import normalised_ip

MAX_EVENTS = 25
SOURCE = "mp"
CONSENT_SIGNALS = ("ad_user_data", "ad_personalization")
CONSENT_STATES = frozenset({"granted", "denied"})

_INTEGER = re.compile(r"[+-]?[0-9]+")
# 9999-12-31T23:59:59Z: beyond it a "timestamp" is garbage (and micros / 1e6 could overflow).
_MAX_MICROS = 253_402_300_799 * 1_000_000


SECRETS_VARIABLE = "GATEWAY_MP_API_SECRETS"


def _check_secret(
    measurement_id: str, api_secret: str | None, secrets: Mapping[str, str] | None
) -> None:
    """Raise ``AuthError`` (403) unless ``api_secret`` is the secret configured for the id.

    Like GA4, which always requires one, a measurement id without a configured secret is
    refused (``measurement_id_not_enabled``, naming the variable: SPEC 13). ``secrets=None``
    checks nothing (``inspect``, which sends nothing).
    """
    if secrets is None:
        return
    expected = secrets.get(measurement_id)
    if not expected:
        raise AuthError(
            "measurement_id_not_enabled",
            f"no api_secret is configured for this measurement_id: set {SECRETS_VARIABLE}"
            " (G-XXXXXXX=secret,...) to accept it on /mp/collect",
            status=403,
        )
    # Bytes, not str: compare_digest refuses non-ASCII str, and a client chooses api_secret.
    given = (api_secret or "").encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(given, expected.encode("utf-8", "surrogatepass")):
        raise AuthError("invalid_api_secret", status=403)


def _timestamp_seconds(value: object) -> float:
    """``timestamp_micros`` as unix seconds; ``ValueError`` unless it is a whole, sane number.

    Accepted: a JSON integer, an integral float (``1.7e15``), or a string of ASCII digits.
    """
    micros: int
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, int):
        micros = value
    elif isinstance(value, float) and value.is_integer():
        micros = int(value)
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        micros = int(value.strip())  # the digit limit of int() raises ValueError too
    else:
        raise ValueError("not an integer")
    if not 0 <= micros <= _MAX_MICROS:
        raise ValueError("out of range")
    return micros / 1_000_000


def _user_properties(value: object) -> dict[str, Any]:
    """``{name: {"value": v}}`` -> ``{name: v}``; other shapes and null values are skipped."""
    if not isinstance(value, dict):
        return {}
    return {
        name: entry["value"]
        for name, entry in value.items()
        if isinstance(entry, dict) and entry.get("value") is not None
    }


def _consent(value: object) -> dict[str, str]:
    """``{"ad_user_data": "GRANTED", ...}`` -> lower-cased states; unknown ones are dropped."""
    if not isinstance(value, dict):
        return {}
    consent: dict[str, str] = {}
    for signal in CONSENT_SIGNALS:
        state = value.get(signal)
        if isinstance(state, str) and state.strip().lower() in CONSENT_STATES:
            consent[signal] = state.strip().lower()
    return consent


def _ip_override(value: object) -> str | None:
    """The body's ``ip_override`` when it is an IP address (normalised), else ``None``."""
    return normalised_ip(value) if isinstance(value, str) else None


def _user_id(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _event_data(
    index: int,
    event: object,
    shared: EventData,
    request_time: float | None,
    body_ip: str | None,
    ctx: RequestContext,
) -> EventData:
    """One event's data; raises ``LineError`` (``line=index``) when the event is unusable."""
    if not isinstance(event, dict):
        raise LineError("invalid_event", "not a JSON object", line=index)
    name = event.get("name")
    if not isinstance(name, str) or not name.strip():
        raise LineError("missing_event_name", "name must be a non-empty string", line=index)
    params = event.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise LineError("invalid_params", "params must be an object", line=index)
    event_time = request_time
    if event.get("timestamp_micros") is not None:
        try:
            event_time = _timestamp_seconds(event["timestamp_micros"])
        except ValueError as exc:
            raise LineError("invalid_timestamp", f"timestamp_micros: {exc}", line=index) from None

    # Params first, so that request-wide facts below win over a param of the same name.
    data = strip_internal_keys(params)
    if "items" in data:
        items = data.pop("items")
        if isinstance(items, list):
            data["items"] = [item for item in items if isinstance(item, dict)]
    data["event_name"] = name
    for key, value in shared.items():
        # Shallow copies: each event owns its top-level containers.
        data[key] = dict(value) if isinstance(value, dict) else value
    ctx.apply(data, SOURCE)
    if body_ip is not None:
        data["ip_override"] = body_ip  # a server-side sender may state the user's address
    if event_time is not None:
        data[EVENT_TIME_KEY] = event_time
    data[LINE_KEY] = index
    return data


def parse_mp(
    body: bytes,
    ctx: RequestContext,
    *,
    measurement_id: str | None,
    api_secret: str | None,
    secrets: Mapping[str, str] | None,
) -> ParsedInput:
    """Parse a Measurement Protocol request into event data, one per usable event.

    Whole-request errors (raised, in this order): ``ParseError("missing_measurement_id")``;
    ``AuthError("measurement_id_not_enabled", status=403)`` when ``secrets`` has no secret for the
    id, ``AuthError("invalid_api_secret", status=403)`` when ``api_secret`` is not it (checked
    before the body is read; ``secrets=None``: not checked); ``ParseError`` ``invalid_json`` (not a
    UTF-8 JSON object), ``missing_client_id``/``invalid_client_id``, ``invalid_timestamp`` (the
    request's ``timestamp_micros``), ``invalid_events`` (``events`` not a list),
    ``too_many_events`` (more than 25).

    Per event, a ``LineError`` (``line`` = index) is collected and the others go on:
    ``invalid_event``, ``missing_event_name``, ``invalid_params``, ``invalid_timestamp``.

    Keys of each event (later ones win): the ``params`` (``x-gw-*`` removed; ``items`` kept only
    as a list of its object entries); ``event_name``; ``client_id``; ``user_id`` (string; a number
    is converted); ``x-ga-measurement_id``; ``x-ga-mp2-user_properties`` (``{name: value}``);
    ``user_data`` (the body's object as is, hashes not checked); ``x-gw-consent``; what
    ``ctx.apply(data, "mp")`` writes (source, received_at, user agent, ctx address, cookies);
    ``ip_override`` from the body when it is a valid address; ``x-gw-event_time`` (event's
    ``timestamp_micros``, else the request's, else absent); ``x-gw-line``.
    """
    if measurement_id is None or not measurement_id.strip():
        raise ParseError("missing_measurement_id", "the measurement_id query parameter is required")
    _check_secret(measurement_id, api_secret, secrets)

    document = load_json_body(body)
    if not isinstance(document, dict):
        raise ParseError("invalid_json", "body must be a JSON object")
    client_id = document.get("client_id")
    if client_id is None or client_id == "":
        raise ParseError("missing_client_id", "client_id is required")
    if not isinstance(client_id, str) or not client_id.strip():
        raise ParseError("invalid_client_id", "client_id must be a non-empty string")
    request_time: float | None = None
    if document.get("timestamp_micros") is not None:
        try:
            request_time = _timestamp_seconds(document["timestamp_micros"])
        except ValueError as exc:
            raise ParseError("invalid_timestamp", f"timestamp_micros: {exc}") from None
    events = document.get("events")
    if not isinstance(events, list):
        raise ParseError("invalid_events", "events must be a list")
    if len(events) > MAX_EVENTS:
        raise ParseError("too_many_events", f"{len(events)} > {MAX_EVENTS}")

    shared: EventData = {"client_id": client_id, MEASUREMENT_ID_KEY: measurement_id}
    user_id = _user_id(document.get("user_id"))
    if user_id is not None:
        shared["user_id"] = user_id
    user_properties = _user_properties(document.get("user_properties"))
    if user_properties:
        shared[USER_PROPERTIES_KEY] = user_properties
    if isinstance(document.get("user_data"), dict):
        shared["user_data"] = document["user_data"]
    consent = _consent(document.get("consent"))
    if consent:
        shared[CONSENT_KEY] = consent
    body_ip = _ip_override(document.get("ip_override"))

    parsed = ParsedInput()
    for index, event in enumerate(events):
        try:
            parsed.events.append(_event_data(index, event, shared, request_time, body_ip, ctx))
        except LineError as error:
            parsed.errors.append(error)
    return parsed
