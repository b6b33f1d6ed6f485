"""Calls that arrive together share one: ``Coalescer`` runs one call at a time for every id
passed in while the previous one ran (the queue's group commit, for acks).

A GA4 forward is one item per request: acknowledging each on its own would cost a queue
transaction (and with SQLite an fsync) per hit, and the puts of new hits would wait behind them.
Coalesced, the acks of every request that ended during one commit go in the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence


class Coalescer:
    """``await coalescer(ids)`` returns once a call of ``call`` holding ``ids`` returned (or
    raises what that call raised). Use from one event loop."""

    def __init__(self, call: Callable[[list[str]], Awaitable[None]]) -> None:
        self._call = call
        self._ids: list[str] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._running: asyncio.Task[None] | None = None

    async def __call__(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ids.extend(ids)
        self._waiters.append(future)
        if self._running is None:
            self._running = asyncio.create_task(self._drain())
        # A waiter cancelled (shutdown) leaves its ids in the call: acking an item whose finish
        # was interrupted is what the queue contract allows (the ledger still releases it).
        await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._ids:
                ids, self._ids = self._ids, []
                waiters, self._waiters = self._waiters, []
                try:
                    await self._call(ids)
                except Exception as error:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(error)
                else:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
        finally:
            self._running = None
