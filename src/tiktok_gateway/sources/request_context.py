"""What a source knows about an HTTP request besides its parameters: client address, cookies, UA.

The client address (``ip_override`` in event data, SPEC 2) is the immediate peer's address, except
when that peer is a configured trusted proxy: then the proxy chain is read from
``X-Forwarded-For`` (or, when absent, the RFC 7239 ``Forwarded`` header) from the right, skipping
trusted proxies, and the first untrusted hop is the client. Values left of it were written by the
client itself and can be forged, so they are never read.

Header names: ``client_ip`` and ``build_context`` look names up in lower case
(``x-forwarded-for``, ``forwarded``) and, when that misses, compare every key case-insensitively,
so any ``Mapping`` works. A repeated header must be passed as one comma-joined value: a mapping
that keeps only the first of several ``X-Forwarded-For`` lines (Starlette's ``Headers.get``) would
hand us the client-written line instead of the proxy's. ``header_map`` builds such a mapping from
raw ``(name, value)`` pairs.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from tiktok_gateway.event_data import RequestContext

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Obfuscated identifiers of RFC 7239 (section 6.3) start with "_"; "unknown" is its explicit
# "this hop is not known". Either one ends the walk: the hops left of it cannot be attributed.
_UNKNOWN_NODE = "unknown"


def parse_trusted_proxies(values: Iterable[str]) -> tuple[Network, ...]:
    """Parse trusted proxy entries: CIDRs (``10.0.0.0/8``, ``fd00::/8``) or single addresses.

    Blank entries are skipped (a trailing comma in an environment variable is not an error). Host
    bits are allowed and masked (``10.0.0.1/8`` means ``10.0.0.0/8``). A bad entry raises
    ``ValueError`` naming it.
    """
    networks: list[Network] = []
    for raw in values:
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(
                f"invalid trusted proxy {entry!r}: expected an IP address or a CIDR ({exc})"
            ) from None
    return tuple(networks)


def header_map(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case header names and join repeated headers: ``", "`` in general, ``"; "`` for cookies.

    Pass Starlette's ``request.headers.items()`` (which keeps repeated headers) to get the mapping
    ``client_ip`` expects.
    """
    joined: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key in joined:
            separator = "; " if key == "cookie" else ", "
            joined[key] = f"{joined[key]}{separator}{value}"
        else:
            joined[key] = value
    return joined


# Parsing an address with ``ipaddress`` costs microseconds on every hit; most hits come from a
# peer (a proxy, a returning visitor) seen a moment ago. Addresses are immutable: safe to share.
@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> Address | None:
    """A bare address, ``ip:port`` or ``[v6]:port``; ``None`` when it is none of those.

    IPv4-mapped IPv6 addresses (``::ffff:1.2.3.4``, what dual-stack sockets report for IPv4
    clients) become IPv4, and a zone (``%eth0``) is dropped: neither means anything to TikTok.
    """
    host = text.strip()
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or (host[end + 1 :] and not host[end + 1 :].startswith(":")):
            return None
        host = host[1:end]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    host = host.partition("%")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=4096)
def _text(address: Address) -> str:
    return str(address)


def normalised_ip(text: str) -> str | None:
    """``text`` as an IP address in its normal text form (``parse_address``'s rules: a port or a
    zone dropped, IPv4-mapped IPv6 as IPv4), or ``None`` when it is none. For addresses that
    come in event data (``ip_override``, ``x-ttq-ip``), so they read as the peer's own do."""
    address = parse_address(text)
    return None if address is None else _text(address)


def _is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split on ``separator`` except inside double-quoted strings (RFC 7230 quoted-string)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if char == "\\" and not escaped:
                escaped = True
                continue
            escaped = False
            out.append(char)
        return "".join(out)
    return value


def _forwarded_for_nodes(value: str) -> list[str]:
    """The ``for=`` node of each ``Forwarded`` element; ``""`` for an element without one."""
    nodes: list[str] = []
    for element in _split_outside_quotes(value, ","):
        node = ""
        for pair in _split_outside_quotes(element, ";"):
            key, sep, raw = pair.partition("=")
            if sep and key.strip().lower() == "for":
                node = _unquote(raw)
                break
        nodes.append(node)
    return nodes


def _walk_chain(nodes: list[str], trusted: Sequence[Network]) -> str | None:
    """Read hops from the right; the first untrusted one is the client.

    An invalid, ``unknown`` or obfuscated hop stops the walk with ``None``: the hops to its left
    may be forged, so skipping it would let a client choose its own address. When every hop is a
    trusted proxy (an internal caller), the leftmost one is the client.
    """
    leftmost: Address | None = None
    for node in reversed(nodes):
        text = node.strip()
        if not text or text.lower() == _UNKNOWN_NODE or text.startswith("_"):
            return None
        address = parse_address(text)
        if address is None:
            return None
        if not _is_trusted(address, trusted):
            return _text(address)
        leftmost = address
    return None if leftmost is None else _text(leftmost)


def client_ip(
    peer: str | None, headers: Mapping[str, str], trusted: Sequence[Network]
) -> str | None:
    """The client's address as normalised text, or ``None`` when it cannot be known.

    ``headers`` has lower-case names, as ``header_map`` gives them.

    - peer missing or not an IP address: ``None``;
    - peer not a trusted proxy: the peer (forwarding headers are ignored: anyone can send them);
    - peer trusted: the chain of ``X-Forwarded-For`` (or, when that header is absent or blank,
      the ``for=`` values of ``Forwarded``) read as ``_walk_chain`` says; ``None`` when the trusted
      proxy sent neither header, since the proxy's own address is not the user's.

    Never raises, whatever the header values.
    """
    if peer is None:
        return None
    peer_address = parse_address(peer)
    if peer_address is None:
        return None
    if not _is_trusted(peer_address, trusted):
        return _text(peer_address)
    forwarded_for = headers.get("x-forwarded-for")
    if forwarded_for is not None and forwarded_for.strip():
        return _walk_chain(forwarded_for.split(","), trusted)
    forwarded = headers.get("forwarded")
    if forwarded is not None and forwarded.strip():
        return _walk_chain(_forwarded_for_nodes(forwarded), trusted)
    return None


def forwarded_proto(
    peer: str | None, headers: Mapping[str, str], trusted: Sequence[Network]
) -> str | None:
    """The scheme the client used, as a trusted proxy reports it (``X-Forwarded-Proto``, else
    the ``proto=`` of ``Forwarded``), lower-cased; ``None`` when the peer is not a trusted proxy
    or says nothing. ``headers`` has lower-case names."""
    address = parse_address(peer) if peer is not None else None
    if address is None or not _is_trusted(address, trusted):
        return None
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if proto:
        return proto
    for element in headers.get("forwarded", "").split(",")[:1]:
        for pair in element.split(";"):
            name, _, value = pair.strip().partition("=")
            if name.strip().lower() == "proto":
                return _unquote(value.strip()).lower() or None
    return None


def parse_cookie_header(value: str) -> dict[str, str]:
    """Parse a ``Cookie`` header tolerantly; never raises.

    Pairs are split on ``;`` and at their first ``=``; names and values are stripped, one pair of
    surrounding double quotes is removed from a value, pairs without ``=`` or without a name are
    skipped, and the first occurrence of a name wins (browsers send the most specific path
    first). Values are not URL-decoded. ``http.cookies.SimpleCookie`` is not used because it gives
    up on whole headers that real browsers send (a single unusual character in any cookie).
    """
    cookies: dict[str, str] = {}
    for pair in value.split(";"):
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name or name in cookies:
            continue
        cookie = raw.strip()
        if len(cookie) >= 2 and cookie[0] == cookie[-1] == '"':
            cookie = cookie[1:-1]
        cookies[name] = cookie
    return cookies


# Browsers' user agents run to a few hundred characters (in-app browsers the longest).
MAX_USER_AGENT = 1024


def build_context(
    *,
    received_at: float,
    user_agent: str | None,
    peer: str | None,
    headers: Mapping[str, str],
    trusted: Sequence[Network],
    cookie_header: str | None,
) -> RequestContext:
    """Resolve the request's facts once, for every event of the request.

    A blank user agent becomes ``None``, and so does one longer than ``MAX_USER_AGENT``: no
    browser sends one, and it would be copied into every event, the queue and /debug. All
    cookies are kept here; ``RequestContext.apply`` copies only the ones tags read into event
    data.
    """
    agent = user_agent.strip() if user_agent and len(user_agent) <= MAX_USER_AGENT else ""
    return RequestContext(
        received_at=received_at,
        user_agent=agent or None,
        ip=client_ip(peer, headers, trusted),
        cookies=parse_cookie_header(cookie_header) if cookie_header else {},
    )
