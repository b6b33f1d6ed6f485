"""Coalescing: calls that arrive while one runs share the next (the ledger's acks)."""

from __future__ import annotations

import asyncio

import pytest

from tiktok_gateway.delivery.coalesce import Coalescer


def test_calls_arriving_during_one_share_the_next() -> None:
    calls: list[list[str]] = []

    async def slow(ids: list[str]) -> None:
        calls.append(ids)
        await asyncio.sleep(0.01)

    async def main() -> None:
        coalesce = Coalescer(slow)
        first = asyncio.create_task(coalesce(["i0"]))
        await asyncio.sleep(0.005)  # the first call is under way
        await asyncio.gather(first, *(coalesce([f"i{n}"]) for n in range(1, 5)), coalesce([]))
        await coalesce(["later"])

    asyncio.run(main())
    # The first call runs alone; the four that came meanwhile go in one; then the next.
    assert calls == [["i0"], ["i1", "i2", "i3", "i4"], ["later"]]


def test_a_failing_call_fails_each_of_its_waiters_only() -> None:
    calls: list[list[str]] = []

    async def flaky(ids: list[str]) -> None:
        calls.append(ids)
        await asyncio.sleep(0)
        if "bad" in ids:
            raise ConnectionError("queue gone")

    async def main() -> list[BaseException | None]:
        coalesce = Coalescer(flaky)
        first = asyncio.create_task(coalesce(["ok"]))
        await asyncio.sleep(0)  # the first call is under way
        results = await asyncio.gather(
            first, coalesce(["bad"]), coalesce(["with-bad"]), return_exceptions=True
        )
        await coalesce(["after"])
        return list(results)

    first, second, third = asyncio.run(main())
    assert first is None
    assert isinstance(second, ConnectionError)
    assert isinstance(third, ConnectionError)
    assert calls == [["ok"], ["bad", "with-bad"], ["after"]]


def test_nothing_to_call_for_no_ids() -> None:
    async def never(ids: list[str]) -> None:
        pytest.fail("called")

    asyncio.run(Coalescer(never)([]))
