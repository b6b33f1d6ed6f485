"""Request ids (``X-Request-ID``, the ``hit`` log line, ``/debug``): 16 hex digits.

A process draws a random 64-bit start from ``secrets`` once (again in a forked child) and counts
up from it. So ids never repeat within a process (before 2**64 requests), and two processes or
two runs repeat one another's ids only when their ranges overlap: for runs of at most ``n``
requests each, about ``2 * n / 2**64`` per pair. The random ids they replace
(``secrets.token_hex(8)``) cost a ``getrandom`` system call per request and could repeat.

The ids are consecutive, so the difference between two of them tells how many ingest requests
the process answered in between; they are identifiers, not secrets, and authorise nothing.
"""

from __future__ import annotations

import itertools
import os
import secrets

__all__ = ["new_request_id"]

_MASK = (1 << 64) - 1


def _fresh_counter() -> itertools.count[int]:
    return itertools.count(secrets.randbits(64))


_counter = _fresh_counter()


def _reseed() -> None:
    """A forked child must not count on from its parent's position (the same ids)."""
    global _counter
    _counter = _fresh_counter()


os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    """The next id of this process: 16 lower-case hex digits, unique as the module says.

    ``next`` on ``itertools.count`` is one C call, so threads never get the same number."""
    return format(next(_counter) & _MASK, "016x")
