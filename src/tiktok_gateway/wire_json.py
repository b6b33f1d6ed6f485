"""Compact JSON bytes for the queue and for TikTok requests (orjson, with a safe fallback).

orjson writes the same bytes as ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``
encoded as UTF-8, about 15 times faster (bench/mapping.py). It refuses what is not valid UTF-8
(a lone surrogate) and integers beyond 64 bits; such values are written by the standard library
with ASCII escapes instead, so serialising never fails for a JSON-compatible value.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON bytes."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes made by ``dumps`` (raises ``ValueError`` for anything else)."""
    return orjson.loads(data)
