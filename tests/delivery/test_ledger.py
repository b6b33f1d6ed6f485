"""The ledger's reports of items dead-lettered outside a batch: one log line and one result
each, with the text and fields the metrics, the debug page and operators' log searches read."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.fakes import FakeClock
from tiktok_gateway.delivery.ledger import DeliveryResult, Ledger
from tiktok_gateway.queue.base import NewItem
from tiktok_gateway.queue.memory import MemoryQueue


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    ledger = [r for r in caplog.records if r.name == "tiktok_gateway.delivery.ledger"]
    return [(r.levelno, r.getMessage()) for r in ledger]


def test_an_item_dead_lettered_on_its_own_is_logged_and_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tiktok_gateway")
    results: list[DeliveryResult] = []

    async def main() -> None:
        queue = MemoryQueue(FakeClock())
        ledger = Ledger(queue, results.append, {"shop": "tiktok"})
        await queue.put([NewItem("shop", b"not json")])
        [item] = await queue.lease(10, 60.0)
        ledger.hold(item)
        await ledger.dead_letter_item(item, "invalid_payload", "ValueError: bad")
        [dead] = await queue.dead_letters()
        assert (dead.reason, dead.code, dead.message) == (
            "invalid_payload",
            None,
            "ValueError: bad",
        )
        assert lines(caplog) == [
            (
                logging.WARNING,
                f"queue item {item.id} dead-lettered: invalid_payload ValueError: bad",
            )
        ]

    asyncio.run(main())
    assert results == [
        DeliveryResult("shop", "tiktok", "invalid_payload", 1, None, "ValueError: bad")
    ]


def test_items_the_queue_expired_are_logged_and_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tiktok_gateway")
    results: list[DeliveryResult] = []
    ledger = Ledger(MemoryQueue(FakeClock()), results.append, {"shop": "tiktok"})
    ledger.expired("shop", 7, "not sent while the destination was paused")
    ledger.expired("gone", 1, "held")  # not configured: no kind
    assert lines(caplog) == [
        (
            logging.WARNING,
            "7 item(s) of destination shop dead-lettered: expired"
            " not sent while the destination was paused",
        ),
        (logging.WARNING, "1 item(s) of destination gone dead-lettered: expired held"),
    ]
    assert results == [
        DeliveryResult(
            "shop", "tiktok", "expired", 7, None, "not sent while the destination was paused"
        ),
        DeliveryResult("gone", "", "expired", 1, None, "held"),
    ]
