"""What the gateway sends to Google Analytics for one incoming hit (SPEC 12); pure, no I/O.

A site whose ``server_container_url`` points at the gateway no longer talks to Google itself, so
the gateway forwards every hit, as server-side GTM does, in the browser's own format:

- ``/g/collect`` hits (``web_forward``) go to ``POST {endpoint}/g/collect?{query}`` with the
  incoming body byte-identical. ``query`` is the incoming query string, parameters in their
  original order and each ``name=value`` segment as it came, except:

  * ``richsstsse`` is removed: it asks for an event-stream of follow-up pixels that are not ours;
  * a client-supplied ``_uip`` or ``uip`` is removed: a browser never sends one, so it is forged;
  * ``_uip=<visitor ip>`` is appended, since Google reads the visitor's address from it and would
    otherwise see the gateway's: the address as given (``full``), cut to its /24 (IPv4) or /48
    (IPv6) (``truncated``), or not at all (``none``). When any ``gcs`` or ``gcd``, in the query
    or in any line of the body, says analytics_storage is denied, no ``_uip`` is sent at all;
  * bytes that may not stand raw in a URL query are percent-encoded one by one, so the query
    is ASCII and decodes to exactly the same parameters. It is never decoded and re-encoded
    as a whole: Google gets gtag's own encoding.

  Consent parameters (``gcs``, ``gcd``, ``npa``, ``dma``, ...) go unchanged: Google applies
  consent mode itself.
- ``/mp/collect`` requests (``mp_forward``) go to ``{endpoint}/mp/collect`` with the same
  removals and nothing appended: the JSON body carries its own ``ip_override``.
- Headers: only the browser's ``User-Agent`` (Google derives the device from it and drops hits
  whose agent looks like a bot, so none is sent when the browser sent none), ``Accept-Language``
  and the ``Sec-CH-UA*`` client hints. Cookies, credentials and proxy headers never leave.
- ``region1`` reports ``sst.gcsub=region1`` in the query; the caller then picks
  ``region1.google-analytics.com``. No host is ever built from input.

Nothing here raises, whatever the bytes, headers or addresses: a hit Google may dislike is still
the site's hit, and the forward is decided on the request path.

Choices SPEC 12 leaves open:

- Conflicting consent signals (``gcs=G111`` with a denying ``gcd``, a granted query with a
  denying body line) withhold the address: every ``gcs``/``gcd`` counts on its own. On real
  hits, where the two agree, this is the same as reading ``gcs`` first and ``gcd`` second.
- A ``%`` that starts no escape (``100%``) goes as ``%25``: decoders keep such a ``%``
  literally, so the parameter reads the same, and the URL stays valid. ``#``, ``[`` and ``]``
  are escaped too (``#`` would end the query; RFC 3986 allows none of them raw in one).
- A header value that cannot go on the wire as sent (non-ASCII, control characters) or is blank
  is left out rather than altered; surrounding blanks, which are no part of a field value, are
  dropped.
- The body is forwarded byte-identical, as SPEC 12 says, so a ``_uip`` a client wrote into a
  body line (gtag never does) is not removed; only the query's are.
- ``sst.gcsub`` is read from the query only (sGTM-bound gtag puts ``sst.*`` there); any
  occurrence with the value ``region1`` counts. MP forwards read it too and copy the same
  allow-listed headers (SPEC 12: "under the same rules").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote

from tiktok_gateway.sources.ga4_consent import decode_gcd, decode_gcs
from tiktok_gateway.sources.ga4_values import decode_component
from tiktok_gateway.sources.request_context import parse_address

IpMode = Literal["full", "truncated", "none"]

WEB_PATH: Final = "/g/collect"
MP_PATH: Final = "/mp/collect"

# Parameters never forwarded, by decoded name.
DROPPED_PARAMS: Final = frozenset({"richsstsse", "_uip", "uip"})
VISITOR_IP_PARAM: Final = "_uip"
REGION_PARAM: Final = "sst.gcsub"
REGION1: Final = "region1"

# Headers copied from the browser's request, in the order they are sent; client hints
# (``sec-ch-ua`` and ``sec-ch-ua-*``) follow, sorted by name.
COPIED_HEADERS: Final = ("user-agent", "accept-language")
CLIENT_HINT_HEADER: Final = "sec-ch-ua"
# A browser never sends a header value this long; anything longer is not worth copying.
MAX_HEADER_VALUE: Final = 8 * 1024

# What may stand raw in a query (RFC 3986: unreserved, sub-delims, ":", "@", "/", "?") plus "%"
# when it starts an escape; every other byte (controls, space, '"', "#", "<", ">", "[", "\\",
# "]", "^", "`", "{", "|", "}", DEL, non-ASCII, a "%" not followed by two hex digits) is escaped.
# "+" stays raw: it means a space to Google as to us.
_UNSAFE: Final = re.compile(rb"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]|%(?![0-9A-Fa-f]{2})")
_ESCAPES: Final = tuple(b"%%%02X" % byte for byte in range(256))
# The bytes _UNSAFE leaves alone ("%" only before two hex digits: _BAD_PERCENT finds the others).
_QUERY_SAFE: Final = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%"
)
_BAD_PERCENT: Final = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_CONSENT_PARAMS: Final = frozenset({"gcs", "gcd"})
_NOTABLE_NAMES: Final = DROPPED_PARAMS | _CONSENT_PARAMS | {REGION_PARAM}
_HINT_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_IPV4_MASK_24: Final = 0xFFFF_FF00
_IPV6_MASK_48: Final = ((1 << 48) - 1) << 80


@dataclass(frozen=True, slots=True)
class Forward:
    """One request to Google Analytics; the caller picks the host from ``region1``."""

    path: str  # WEB_PATH or MP_PATH
    query: str  # the query string sent (ASCII only, no leading "?")
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value) pairs, in a fixed order
    body: bytes  # the incoming body, byte-identical
    region1: bool  # the hit asked for Google's region1 host (sst.gcsub=region1)


@dataclass(frozen=True, slots=True)
class _Query:
    segments: list[str]  # kept, escaped ``name=value`` segments in their order
    region1: bool
    analytics_denied: bool


def _escape(match: re.Match[bytes]) -> bytes:
    return _ESCAPES[match.group()[0]]


def _name(segment: str) -> str:
    """The decoded name of a ``name=value`` segment, as ``parse_qsl`` decodes it."""
    return decode_component(segment.partition("=")[0])


def _denies_analytics(name: str, value: str) -> bool:
    """``gcs`` or ``gcd`` ``value`` (decoded) says analytics_storage is denied."""
    states = decode_gcs(value) if name == "gcs" else decode_gcd(value)
    return states["analytics_storage"] == "denied"


def _escaped(raw_query: bytes) -> str:
    """``raw_query`` with every byte that may not stand raw in a query escaped, as text."""
    # Two scans in C decide whether anything needs escaping at all (most queries: nothing); the
    # substitution's own per-byte pattern costs ~25 ns a byte, 40 us for a 1.6 KB hit.
    if raw_query.translate(None, _QUERY_SAFE) or _BAD_PERCENT.search(raw_query):
        # Escaping first is safe: it turns no byte into "&", "=" or "+", and every escape
        # decodes back to the byte it replaced, so names and values decode as they did.
        raw_query = _UNSAFE.sub(_escape, raw_query)
    return raw_query.decode("ascii")


def _scan_query(raw_query: bytes) -> _Query:
    """One pass over the query: the segments kept, the region asked for, consent in the query."""
    text = _escaped(raw_query)
    segments = text.split("&")
    names = [segment.partition("=")[0] for segment in segments]
    raw_names = "&".join(names)
    notable = _NOTABLE_NAMES.intersection(names)
    if (
        "" in segments
        or "%" in raw_names
        or "+" in raw_names
        or not DROPPED_PARAMS.isdisjoint(notable)
    ):
        # An empty segment or one to leave out, or a name that decodes to something else:
        # segment by segment.
        return _scan_segments(segments)
    # Every segment is kept in its order, so the query is the text itself; only the 2-3
    # segments whose names matter are decoded (a hit has 40-60 segments).
    region1 = denied = False
    for name in notable:
        start = 0
        for _ in range(names.count(name)):
            index = names.index(name, start)
            start = index + 1
            value = decode_component(segments[index].partition("=")[2])
            if name == REGION_PARAM:
                region1 = region1 or value == REGION1
            else:
                denied = denied or _denies_analytics(name, value)
    return _Query(segments=[text], region1=region1, analytics_denied=denied)


def _scan_segments(segments: list[str]) -> _Query:
    """``_scan_query``'s result from the escaped query's ``&``-separated segments, one at a
    time: what the shortcut in ``_scan_query`` must agree with (tested)."""
    kept: list[str] = []
    region1 = False
    denied = False
    for segment in segments:
        if not segment:
            continue
        name = _name(segment)
        if name in DROPPED_PARAMS:
            continue
        kept.append(segment)
        if name == REGION_PARAM:
            region1 = region1 or decode_component(segment.partition("=")[2]) == REGION1
        elif name in _CONSENT_PARAMS:
            value = decode_component(segment.partition("=")[2])
            denied = denied or _denies_analytics(name, value)
    return _Query(segments=kept, region1=region1, analytics_denied=denied)


def _body_denies_analytics(body: bytes) -> bool:
    """Some line of a batched body has a ``gcs``/``gcd`` saying analytics_storage is denied."""
    # Parameter names are compared decoded, so a hit cannot hide its own denial by escaping.
    if not body or (b"gc" not in body and b"%" not in body):
        return False
    for line in body.split(b"\n"):
        for segment in line.rstrip(b"\r").split(b"&"):
            raw_name, _, raw_value = segment.partition(b"=")
            # latin-1 maps every byte to one character: never fails, and "gcs"/"gcd" and their
            # values are ASCII, so nothing that matters changes.
            name = decode_component(raw_name.decode("latin-1"))
            if name in _CONSENT_PARAMS:
                value = decode_component(raw_value.decode("latin-1"))
                if _denies_analytics(name, value):
                    return True
    return False


def forwarded_query(raw_query: bytes, visitor_ip: str | None = None) -> str:
    """The query string to send for ``raw_query`` (the request's query string as received).

    The incoming segments in their order, each as it came but with every byte that may not stand
    raw in a URL query percent-encoded (``%XX``, upper-case hex); empty segments and segments
    whose decoded name is ``richsstsse``, ``_uip`` or ``uip`` are left out. When ``visitor_ip``
    is given, ``_uip=<visitor_ip percent-encoded>`` is appended. The result is ASCII and
    ``parse_qsl`` reads from it the same parameters (bytes) as from ``raw_query``, minus the
    removed ones, plus ``_uip``.
    """
    return _join(_scan_query(raw_query).segments, visitor_ip)


def _join(segments: list[str], visitor_ip: str | None) -> str:
    if visitor_ip is not None:
        segments = [*segments, f"{VISITOR_IP_PARAM}={quote(visitor_ip, safe='')}"]
    return "&".join(segments)


def wants_region1(raw_query: bytes) -> bool:
    """``raw_query`` has a ``sst.gcsub`` parameter whose decoded value is ``region1``."""
    return _scan_query(raw_query).region1


def analytics_denied(raw_query: bytes, body: bytes) -> bool:
    """Some ``gcs`` or ``gcd``, in the query or in any line of the body, denies analytics_storage.

    ``gcs`` denies when its analytics digit is ``0`` (``G100``, ``G110``); ``gcd`` when its
    letter at position 4 decodes to denied (``decode_gcd``). Every occurrence counts on its own:
    a hit whose signals disagree (``gcs=G111`` with a denying ``gcd``, a granted query with a
    denying line) is treated as denied, so a contradiction never sends an address.
    """
    return _scan_query(raw_query).analytics_denied or _body_denies_analytics(body)


def visitor_ip(ip: str | None, mode: IpMode) -> str | None:
    """The visitor's address as sent in ``_uip`` under ``mode``, or ``None`` for none.

    ``full``: the address in its normal text form (``parse_address`` rules: a port or a zone
    dropped, IPv4-mapped IPv6 as IPv4). ``truncated``: IPv4 with its last octet zeroed (/24),
    IPv6 with all but its first 48 bits zeroed, in compressed form. ``none``, any other mode,
    no ``ip``, or an ``ip`` that is not an address: ``None``.
    """
    if ip is None or mode not in ("full", "truncated"):
        return None
    address = parse_address(ip)
    if address is None:
        return None
    if mode == "full":
        return str(address)
    if isinstance(address, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Address(int(address) & _IPV4_MASK_24))
    return str(ipaddress.IPv6Address(int(address) & _IPV6_MASK_48))


def _sendable(value: str) -> str | None:
    """``value`` without surrounding blanks, when it is a plausible browser header value.

    Printable ASCII only: control characters cannot go on the wire, and the HTTP client encodes
    header values as ASCII. Blank or over ``MAX_HEADER_VALUE``: ``None``.
    """
    if len(value) > MAX_HEADER_VALUE:
        return None
    value = value.strip(" \t")
    if value and value.isascii() and value.isprintable():
        return value
    return None


def _is_client_hint(name: str) -> bool:
    return name == CLIENT_HINT_HEADER or (
        name.startswith(CLIENT_HINT_HEADER + "-") and set(name) <= _HINT_NAME_CHARS
    )


def forwarded_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The browser's headers that go to Google: ``(lower-case name, value)`` pairs.

    ``user-agent``, then ``accept-language``, then every ``sec-ch-ua`` / ``sec-ch-ua-*`` header
    sorted by name; each only when the browser sent it with a sendable value (printable ASCII,
    at most ``MAX_HEADER_VALUE`` characters, surrounding blanks dropped, not blank). Nothing
    else: no cookies, credentials, ``Host`` or proxy headers. ``headers`` should have lower-case
    names (``request_context.header_map``); other names are lower-cased, and of two names that
    differ only in case the first one found wins.
    """
    copied: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in copied or not (key in COPIED_HEADERS or _is_client_hint(key)):
            continue
        sendable = _sendable(value)
        if sendable is not None:
            copied[key] = sendable
    fixed = [(name, copied[name]) for name in COPIED_HEADERS if name in copied]
    hints = sorted((name, value) for name, value in copied.items() if name not in COPIED_HEADERS)
    return (*fixed, *hints)


def web_forward(
    raw_query: bytes,
    body: bytes,
    headers: Mapping[str, str],
    client_ip: str | None,
    ip_mode: IpMode,
) -> Forward:
    """The forward of one ``/g/collect`` hit (SPEC 12): see the module docstring.

    ``client_ip`` is the visitor's address as the caller resolved it (peer and trusted proxies);
    ``_uip`` carries ``visitor_ip(client_ip, ip_mode)`` unless ``analytics_denied``.
    """
    scan = _scan_query(raw_query)
    uip = visitor_ip(client_ip, ip_mode)
    # The body is only read when there is an address to withhold.
    if uip is not None and (scan.analytics_denied or _body_denies_analytics(body)):
        uip = None
    return Forward(
        path=WEB_PATH,
        query=_join(scan.segments, uip),
        headers=forwarded_headers(headers),
        body=body,
        region1=scan.region1,
    )


def mp_forward(raw_query: bytes, body: bytes, headers: Mapping[str, str]) -> Forward:
    """The forward of one ``/mp/collect`` request (SPEC 12).

    The query as received (``measurement_id``, ``api_secret``, ... in their order) with
    ``richsstsse``, ``_uip`` and ``uip`` removed and nothing appended; the body unchanged.
    """
    scan = _scan_query(raw_query)
    return Forward(
        path=MP_PATH,
        query=_join(scan.segments, None),
        headers=forwarded_headers(headers),
        body=body,
        region1=scan.region1,
    )
