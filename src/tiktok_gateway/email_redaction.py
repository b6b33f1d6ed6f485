"""E-mail addresses out of URLs and free text (SPEC 13: personal data).

Sites put customers' addresses into URLs (``/account?email=alice%40example.com``, a sign-up
confirmation path, a referrer from a webmail), so the page URL and referrer TikTok receives,
and the text the debug page and the logs show, go through ``redact_emails`` first.

What counts as an address: in the text *as percent-decoded* (up to ``MAX_DEPTH`` times, so
``%40`` and the double-encoded ``%2540`` are ``@``; escaped UTF-8 is decoded, so
``%C3%A9lise%40b%C3%BCcher.de`` is ``élise@bücher.de``), an ``@`` with at least one local-part
character before it (letters and digits of any script, ``.``, ``_``, ``+``, ``-`` and
``!'*^`{|}~``; not the URL delimiters ``/?#&=:;,%``) and a domain after it: two or more labels
of letters, digits and ``-``, separated by dots. The whole address, local part included, is
replaced in the raw text by the marker; every other character stays byte for byte, so a text
without an address is returned unchanged (the same object), and an escaped address is
replaced with its escapes (the rest of the URL keeps its encoding and stays valid: the default
marker ``(redacted)`` is legal in every part of a URL).

``redact_url`` also drops the userinfo of an absolute URL (``https://user:pass@host/`` ->
``https://host/``) and remembers its last ``MEMO_SIZE`` answers: a visitor's page URL repeats on
every event of a page view.

Cost: linear in the text's length, also for adversarial input (no backtracking regular
expression; each character is looked at a bounded number of times per decoding level). Texts
with neither ``@`` nor ``%`` are returned after two substring tests.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final
from urllib.parse import unquote

__all__ = ["MARKER", "MAX_DEPTH", "MEMO_SIZE", "redact_emails", "redact_url", "strip_userinfo"]

MARKER: Final = "(redacted)"
# Percent-decoding levels looked through: a value escaped once, then again by a redirect or a
# tracking link wrapped in another, with room to spare. Each level costs one linear pass.
MAX_DEPTH: Final = 4
MEMO_SIZE: Final = 64

# Combining marks (U+0300..U+036F) belong to the letter before them (NFD-written names).
_LOCAL_CHARS: Final = r"\w.+\-!'*^`{|}~\u0300-\u036f"
_LABEL_CHARS: Final = r"\w\-\u0300-\u036f"
# The local part right before an ``@``, searched for in the text between the previous ``@`` (or
# address) and this one: it starts only where a run of local characters starts (the look-behind)
# and ends at the ``@`` (``\Z``), so each character is looked at a bounded number of times.
_LOCAL: Final = re.compile(rf"(?<![{_LOCAL_CHARS}])[{_LOCAL_CHARS}]+\Z")
# The domain right after an ``@``: label(.label)+. Labels cannot contain ``.`` or ``@``, so the
# match is unambiguous and stops before the next ``@``.
_DOMAIN: Final = re.compile(rf"[{_LABEL_CHARS}]+(?:\.[{_LABEL_CHARS}]+)+")
_ESCAPES: Final = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


def _utf8_length(lead: int) -> int:
    """Bytes of the UTF-8 sequence ``lead`` starts (1 for ASCII and for bytes that start none)."""
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 1


def _decode_level(text: str, starts: list[int]) -> tuple[str, list[int]] | None:
    """One level of percent-decoding of ``text`` (UTF-8, invalid bytes as U+FFFD, as
    ``urllib.parse.unquote`` does), with the raw offsets: character ``i`` of ``text`` came from
    ``raw[starts[i]:starts[i + 1]]`` (``starts`` has one more entry, the raw length), and so
    does character ``i`` of the answer with the answer's offsets. ``None``: nothing to decode."""
    pieces: list[str] = []
    offsets: list[int] = []
    position = 0
    for match in _ESCAPES.finditer(text):
        begin, end = match.span()
        pieces.append(text[position:begin])
        offsets.extend(starts[position:begin])
        data = bytes.fromhex(text[begin:end].replace("%", ""))
        index = 0
        while index < len(data):
            size = _utf8_length(data[index])
            try:
                char = data[index : index + size].decode("utf-8") if size > 1 else None
            except UnicodeDecodeError:
                char, size = "\ufffd", 1
            if char is None:
                char = chr(data[index]) if data[index] < 0x80 else "\ufffd"
            pieces.append(char)
            offsets.append(starts[begin + 3 * index])
            index += size
        position = end
    if not pieces:
        return None
    pieces.append(text[position:])
    offsets.extend(starts[position:])  # with the final entry: the raw length
    return "".join(pieces), offsets


def _decodes_to_at(text: str) -> bool:
    """True when ``text`` percent-decoded up to ``MAX_DEPTH`` times holds an ``@``: the quick
    test (``unquote`` decodes in C-backed steps) before the decoding that keeps offsets. Both
    decode the same escapes; they differ only in how many U+FFFD stand for invalid UTF-8."""
    for _ in range(MAX_DEPTH):
        if "%" not in text:
            return False
        decoded = unquote(text)
        if "@" in decoded:
            return True
        if decoded == text:
            return False
        text = decoded
    return False


def _addresses(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of the addresses in ``text`` (already decoded), in order."""
    spans: list[tuple[int, int]] = []
    floor = 0  # where the next local part may start: after the last ``@`` or address
    at = text.find("@")
    while at >= 0:
        # A slice, not ``search(text, floor, at)``: the look-behind would see the character
        # before ``floor``, the end of the previous address, and refuse a local part right
        # after it (``a@b.c+x@d.e``). The slices between ``@`` do not overlap: linear in all.
        local = _LOCAL.search(text[floor:at])
        domain = _DOMAIN.match(text, at + 1) if local is not None else None
        if local is not None and domain is not None:
            spans.append((floor + local.start(), domain.end()))
            floor = domain.end()
        else:
            floor = at + 1
        at = text.find("@", floor)
    return spans


def redact_emails(text: str, marker: str = MARKER) -> str:
    """``text`` with every e-mail address (module docstring), also percent-encoded up to
    ``MAX_DEPTH`` levels, replaced by ``marker``; ``text`` itself when it holds none.

    Never raises for any ``str``; linear time. Idempotent for a ``marker`` that holds no ``@``,
    ``%`` or address characters at its ends (``(redacted)``, ``[redacted]``, ``[email]``)."""
    if "@" not in text and not ("%" in text and _decodes_to_at(text)):
        return text
    decoded = text
    starts: list[int] | None = None
    for _ in range(MAX_DEPTH):
        if "%" not in decoded:
            break
        step = _decode_level(decoded, starts if starts is not None else list(range(len(text) + 1)))
        if step is None:
            break
        decoded, starts = step
    if "@" not in decoded:
        return text
    spans = _addresses(decoded)
    if not spans:
        return text
    pieces: list[str] = []
    position = 0
    for start, end in spans:
        raw_start = starts[start] if starts is not None else start
        raw_end = starts[end] if starts is not None else end
        pieces.append(text[position:raw_start])
        pieces.append(marker)
        position = raw_end
    pieces.append(text[position:])
    return "".join(pieces)


# An absolute (or scheme-relative) URL's authority: scheme ``//`` then up to the path, query or
# fragment (``\`` ends it too: browsers read it as ``/`` in http(s) URLs).
_AUTHORITY: Final = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//([^/?#\\]*)")


def strip_userinfo(url: str, replacement: str = "") -> str:
    """``url`` with the userinfo of its authority (``user:pass@`` in ``https://user:pass@host/``,
    also scheme-relative ``//user@host/``) replaced by ``replacement``; else ``url`` itself."""
    if "@" not in url:
        return url
    authority = _AUTHORITY.match(url)
    if authority is None or "@" not in authority.group(1):
        return url
    begin = authority.start(1)
    return url[:begin] + replacement + url[begin + authority.group(1).rindex("@") + 1 :]


@lru_cache(maxsize=MEMO_SIZE)
def redact_url(url: str) -> str:
    """``url`` without userinfo and with its e-mail addresses replaced by ``(redacted)``
    (``redact_emails``); ``url`` itself when there is nothing to remove.

    Never raises for any ``str`` (malformed URLs are treated as text); linear time."""
    return redact_emails(strip_userinfo(url))
