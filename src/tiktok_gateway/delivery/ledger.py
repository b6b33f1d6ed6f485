"""The worker's ledger: which leased items it still holds, and how each one was finished.

Every leased item is finished exactly once through the ledger: ``ack``, ``nack``, ``release``
or ``dead_letter`` on the queue, *then* forgotten here, then reported as a ``DeliveryResult``.
An item whose finishing call was interrupted (cancelled at shutdown) is still held, so
``release_all`` gives it back to the queue; if the call did reach the queue, the release is a
no-op by the queue contract.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tiktok_gateway.delivery.batcher import Batch
from tiktok_gateway.delivery.envelope import split_group
from tiktok_gateway.queue.base import DeadLetter, LeasedItem, Queue
from tiktok_gateway.tags.tiktok.classify import Delivered, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What happened to some events of one batch, for metrics, logs and the debug page.

    ``outcome_kind`` ends the events' attempt: ``delivered``, ``partial`` (20001), ``retry``
    (nacked), ``paused`` (released), or dead-lettered as ``rejected``, ``expired``,
    ``retries_exhausted``, ``invalid_payload``, ``unknown_tag``. Two kinds finish nothing, the
    events are re-sent at once: ``split`` (too large) and ``bisect`` (a bad event to find).
    ``sent`` marks the first result of each HTTP request: observe ``latency_seconds`` for those.
    """

    tag: str
    group: str
    outcome_kind: str
    events: int
    code: int | None = None
    message: str = ""
    request_id: str = ""
    latency_seconds: float = 0.0
    event_ids: list[str] = field(default_factory=list)
    sent: bool = False


def words(outcome: Outcome) -> tuple[int | None, str, str]:
    """TikTok's code, message (or detail) and request id in an outcome."""
    if isinstance(outcome, Delivered):
        return None, outcome.detail, outcome.request_id
    return outcome.code, outcome.message, outcome.request_id


class Ledger:
    """Held items and their finishing calls. ``latency`` arguments are the request's seconds
    for the first result of a request, ``None`` for further results of the same request."""

    def __init__(self, queue: Queue, on_result: Callable[[DeliveryResult], None] | None) -> None:
        self._queue = queue
        self._on_result = on_result
        self._held: dict[str, LeasedItem] = {}

    def hold(self, item: LeasedItem) -> None:
        self._held[item.id] = item

    async def ack(self, batch: Batch, outcome: Delivered, latency: float | None) -> None:
        await self._queue.ack(batch.ids)
        self._forget(batch.ids)
        self.report(batch, "partial" if outcome.partial else "delivered", outcome, latency)

    async def nack(
        self, batch: Batch, delay: float, outcome: Outcome, latency: float | None
    ) -> None:
        await self._queue.nack(batch.ids, delay)
        self._forget(batch.ids)
        self.report(batch, "retry", outcome, latency)

    async def release(self, ids: Sequence[str]) -> None:
        """Give items back untried (attempts unchanged); ids not held are fine too."""
        if ids:
            await self._queue.release(ids)
            self._forget(ids)

    async def release_all(self) -> None:
        await self.release(list(self._held))

    async def dead_letter(
        self, batch: Batch, reason: str, outcome: Outcome, latency: float | None
    ) -> None:
        code, message, request_id = words(outcome)
        letters = [DeadLetter(i, reason, code, message, request_id) for i in batch.ids]
        await self._queue.dead_letter(letters)
        self._forget(batch.ids)
        log.warning(
            "%d event(s) of tag %s dead-lettered: %s %s", len(batch), batch.tag, reason, message
        )
        self.report(batch, reason, outcome, latency)

    async def dead_letter_item(self, item: LeasedItem, reason: str, message: str) -> None:
        """An item that never made it into a batch (bad payload, unknown tag)."""
        await self._queue.dead_letter([DeadLetter(item.id, reason, None, message)])
        self._forget([item.id])
        log.warning("queue item %s dead-lettered: %s %s", item.id, reason, message)
        self._emit(DeliveryResult(split_group(item.group)[0], item.group, reason, 1, None, message))

    def report(self, batch: Batch, kind: str, outcome: Outcome, latency: float | None) -> None:
        code, message, request_id = words(outcome)
        self._emit(
            DeliveryResult(
                batch.tag,
                batch.group,
                kind,
                len(batch),
                code,
                message,
                request_id,
                latency or 0.0,
                batch.event_ids,
                latency is not None,
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
