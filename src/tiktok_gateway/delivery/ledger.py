"""The worker's ledger: which leased items it still holds, and how each one was finished.

Every leased item is finished exactly once through the ledger: ``ack``, ``nack``, ``release``
or ``dead_letter`` on the queue, *then* forgotten here, then reported as a ``DeliveryResult``.
An item whose finishing call was interrupted (cancelled at shutdown) is still held, so
``release_all`` gives it back to the queue; if the call did reach the queue, the release is a
no-op by the queue contract. Acks are coalesced (``coalesce.py``): the acks of every request
that ends while one ack call runs share the next call.

When the queue cannot be reached (``QueueUnavailable``), a finishing call fails without an
error reaching the lane (``health`` counts it and makes the lanes wait), and what delivery learned
is kept where it can be:

- ``ack`` (the destination has the items): the ids are kept and acked by ``settle`` once the
  queue answers again, so the items are not sent twice; should the process stop first, they
  come back when their leases end and are sent again (at least once).
- ``dead_letter`` (refused for good): the letters, with the destination's words, are kept and
  moved by ``settle``; a stop first brings the items back for one more try.
- ``nack`` and ``release`` (try again): nothing is kept; the items come back when their leases
  end (a nack's attempt is not counted then: at worst one try more before an item expires).

Either way the items are forgotten here (no longer held), and the result is reported as it was
learned (``delivered``, ``retry``, ``rejected``...).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tiktok_gateway.delivery.coalesce import Coalescer
from tiktok_gateway.delivery.destination import Batch
from tiktok_gateway.delivery.health import QueueHealth
from tiktok_gateway.delivery.outcome import Cause, Delivered, Outcome, words
from tiktok_gateway.queue.base import EXPIRED, DeadLetter, LeasedItem, Queue, QueueUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What happened to some items of one batch, for metrics, logs and the debug page.

    ``destination`` is the destination's name, ``kind`` its kind (empty when the destination is
    not configured). ``outcome_kind`` ends the items' attempt: ``delivered``, ``partial``
    (TikTok's 20001), ``retry`` (nacked), ``paused`` (released), or dead-lettered as
    ``rejected``, ``expired``, ``retries_exhausted``, ``invalid_payload``,
    ``unknown_destination``. Two kinds finish nothing, the items are re-sent at once: ``split``
    (too large) and ``bisect`` (a bad item to find). ``sent`` marks the first result of each
    request: observe ``latency_seconds`` and ``cause`` (the class of the answer) for those.
    ``keys`` are the items' delivery keys (``Unit.key``).
    """

    destination: str
    kind: str
    outcome_kind: str
    events: int
    code: int | None = None
    message: str = ""
    request_id: str = ""
    latency_seconds: float = 0.0
    keys: list[str] = field(default_factory=list)
    sent: bool = False
    cause: Cause | None = None


class Ledger:
    """Held items and their finishing calls. ``latency`` arguments are the request's seconds
    for the first result of a request, ``None`` for further results of the same request."""

    def __init__(
        self,
        queue: Queue,
        on_result: Callable[[DeliveryResult], None] | None,
        kinds: Mapping[str, str] | None = None,
        health: QueueHealth | None = None,
    ) -> None:
        self._queue = queue
        self._on_result = on_result
        self._kinds = kinds or {}  # destination name -> kind, for the results
        self._health = health if health is not None else QueueHealth()
        self._held: dict[str, LeasedItem] = {}
        self._acks = Coalescer(self._ack_now)
        self._unacked: list[str] = []  # delivered; the ack failed (module docstring)
        self._unmoved: list[DeadLetter] = []  # refused; the move failed

    async def _ack_now(self, ids: list[str]) -> None:
        await self._queue.ack(ids)

    @property
    def unsettled(self) -> int:
        """Acks and dead-letter moves kept for when the queue answers again."""
        return len(self._unacked) + len(self._unmoved)

    def hold(self, item: LeasedItem) -> None:
        self._held[item.id] = item

    async def ack(self, batch: Batch, outcome: Delivered, latency: float | None) -> None:
        try:
            await self._acks(batch.ids)
        except QueueUnavailable as error:
            self._health.failed(error)
            self._unacked.extend(batch.ids)
        self._forget(batch.ids)
        self.report(batch, "partial" if outcome.partial else "delivered", outcome, latency)

    async def nack(
        self, batch: Batch, delay: float, outcome: Outcome, latency: float | None
    ) -> None:
        try:
            await self._queue.nack(batch.ids, delay)
        except QueueUnavailable as error:  # the items come back when their leases end
            self._health.failed(error)
        self._forget(batch.ids)
        self.report(batch, "retry", outcome, latency)

    async def release(self, ids: Sequence[str]) -> None:
        """Give items back untried (attempts unchanged); ids not held are fine too."""
        if ids:
            try:
                await self._queue.release(ids)
            except QueueUnavailable as error:  # the items come back when their leases end
                self._health.failed(error)
            self._forget(ids)

    async def settle(self) -> None:
        """Make the acks and dead-letter moves that failed; raises ``QueueUnavailable`` (and
        keeps them) while the queue still cannot be reached."""
        if self._unacked:
            ids, self._unacked = self._unacked, []
            try:
                await self._queue.ack(ids)
            except QueueUnavailable:
                self._unacked = ids + self._unacked
                raise
        if self._unmoved:
            letters, self._unmoved = self._unmoved, []
            try:
                await self._queue.dead_letter(letters)
            except QueueUnavailable:
                self._unmoved = letters + self._unmoved
                raise

    async def release_all(self) -> None:
        """At shutdown: settle what can be, give back everything still held."""
        try:
            await self.settle()
        except QueueUnavailable:
            log.warning(
                "%d ack(s) and dead-letter move(s) could not be made: those items will be"
                " delivered again after the restart",
                self.unsettled,
            )
        await self.release(list(self._held))

    async def dead_letter(
        self, batch: Batch, reason: str, outcome: Outcome, latency: float | None
    ) -> None:
        code, message, request_id = words(outcome)
        letters = [DeadLetter(i, reason, code, message, request_id) for i in batch.ids]
        await self._move(letters)
        self._forget(batch.ids)
        _log_dead(len(batch), batch.destination, reason, message)
        self.report(batch, reason, outcome, latency)

    async def dead_letter_item(self, item: LeasedItem, reason: str, message: str) -> None:
        """An item that never made it into a batch (bad payload, unknown destination)."""
        await self._move([DeadLetter(item.id, reason, None, message)])
        self._forget([item.id])
        log.warning("queue item %s dead-lettered: %s %s", item.id, reason, message)
        self._report_unbatched(item.group, reason, 1, message)

    def expired(self, destination: str, count: int, message: str) -> None:
        """Report items the queue moved itself (``Queue.expire``: none was held here)."""
        _log_dead(count, destination, EXPIRED, message)
        self._report_unbatched(destination, EXPIRED, count, message)

    def _report_unbatched(self, destination: str, reason: str, count: int, message: str) -> None:
        """The result of ``count`` items dead-lettered outside a batch: no request, so no
        code, latency or keys."""
        kind = self._kinds.get(destination, "")
        self._emit(DeliveryResult(destination, kind, reason, count, None, message))

    async def _move(self, letters: list[DeadLetter]) -> None:
        try:
            await self._queue.dead_letter(letters)
        except QueueUnavailable as error:
            self._health.failed(error)
            self._unmoved.extend(letters)

    def report(self, batch: Batch, kind: str, outcome: Outcome, latency: float | None) -> None:
        code, message, request_id = words(outcome)
        sent = latency is not None
        self._emit(
            DeliveryResult(
                batch.destination,
                self._kinds.get(batch.destination, ""),
                kind,
                len(batch),
                code,
                message,
                request_id,
                latency or 0.0,
                batch.keys,
                sent,
                outcome.cause if sent else None,
            )
        )

    def _forget(self, ids: Sequence[str]) -> None:
        for item_id in ids:
            self._held.pop(item_id, None)

    def _emit(self, result: DeliveryResult) -> None:
        if self._on_result is None:
            return
        try:
            self._on_result(result)
        except Exception:  # an observer must never stop delivery
            log.exception("on_result callback failed")


def _log_dead(count: int, destination: str, reason: str, message: str) -> None:
    """The line for ``count`` items of one destination moved to the dead letters."""
    log.warning(
        "%d item(s) of destination %s dead-lettered: %s %s", count, destination, reason, message
    )
