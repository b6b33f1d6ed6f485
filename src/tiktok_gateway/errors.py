"""The exception tree of the gateway.

Every error the gateway raises on purpose derives from ``GatewayError``::

    GatewayError
    ├── ConfigError            invalid configuration (a key and a reason); CLI exit 2
    └── InputError             client input the gateway cannot use; HTTP 4xx, CLI exit 2
        ├── AuthError          a missing or wrong secret (ingest token, MP api_secret); 401/403
        └── ParseError         a hit, line, body or JSON document that does not parse
            ├── HitError       the whole hit is unusable (no v=2, no tid, ...)
            └── LineError      one event line of a batched hit; the other lines go on

Parsers promise to raise nothing but ``ParseError`` (and its subclasses) for any input,
however malformed; the property-based tests hold them to it.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error raised on purpose by the gateway."""


class ConfigError(GatewayError):
    """The configuration is invalid. ``key`` names the offending setting."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class InputError(GatewayError):
    """Client input that cannot be used. ``reason`` is a short, stable, machine-readable tag."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class AuthError(InputError):
    """A missing or wrong secret. ``status`` is the HTTP status to answer (401 or 403)."""

    def __init__(self, reason: str, detail: str = "", status: int = 403) -> None:
        super().__init__(reason, detail)
        self.status = status


class ParseError(InputError):
    """A hit, a line or a JSON document does not parse."""


class HitError(ParseError):
    """The whole GA4 hit is unusable (for example ``v`` is not 2 or ``tid`` is missing)."""


class LineError(ParseError):
    """One event line of a GA4 hit is unusable; ``line`` is its 0-based index in the body."""

    def __init__(self, reason: str, detail: str = "", line: int = 0) -> None:
        super().__init__(reason, detail)
        self.line = line
