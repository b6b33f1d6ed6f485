"""Ending the gateway's background tasks.

Python 3.11's ``asyncio.wait_for`` drops a cancel that lands as the awaited call finishes: it
returns the result, and the cancelled task runs on (fixed in 3.12). The gateway bounds its own
waits with ``asyncio.timeout`` instead (ruff bans ``asyncio.wait_for``, pyproject.toml), but
redis-py awaits ``wait_for`` when it writes a command, so a cancel can still be lost in a Redis
call: a task that loops also ends on a flag its ``stop`` sets, and a stop never relies on the
cancel alone.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and return once it has ended; raise what it raised other than its
    cancellation. A cancel of the caller meanwhile is raised too, where ``await task`` inside
    ``contextlib.suppress(CancelledError)`` would swallow it."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.result()
