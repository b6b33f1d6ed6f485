"""Comparing secrets: constant time, so the answer time tells nothing about the secret."""

from __future__ import annotations

import hmac


def same_secret(given: str, expected: str) -> bool:
    """True when ``given`` is ``expected``; as bytes, since a client chooses ``given`` (and
    ``compare_digest`` refuses non-ASCII text)."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
