"""cancel_and_wait: the task has ended when it returns, its error is raised, and a cancel of the
caller is not swallowed."""

from __future__ import annotations

import asyncio

import pytest

from tests.harness import run
from tiktok_gateway.tasks import cancel_and_wait


def test_returns_once_the_task_has_ended_and_raises_its_error() -> None:
    async def scenario() -> None:
        async def slow_to_end() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await asyncio.sleep(0.01)  # cleaning up
                raise ValueError("failed while ending") from None

        task = asyncio.create_task(slow_to_end())
        await asyncio.sleep(0)
        with pytest.raises(ValueError, match="failed while ending"):
            await cancel_and_wait(task)
        assert task.done()

        quiet = asyncio.create_task(asyncio.Event().wait())
        await cancel_and_wait(quiet)
        assert quiet.cancelled()

    run(scenario())


def test_a_cancel_of_the_caller_is_raised_not_swallowed() -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def stubborn() -> None:  # outlives its first cancel
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await release.wait()

        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        stopper = asyncio.create_task(cancel_and_wait(task))
        await asyncio.sleep(0)
        stopper.cancel()
        try:
            await asyncio.wait([stopper], timeout=5)
            assert stopper.cancelled()
            assert not task.done()  # the caller's cancel was its own, not passed on
        finally:
            release.set()
        await task

    run(scenario())
