"""What ``serve`` does around uvicorn: start-up leaves the long-lived objects frozen."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette

from tiktok_gateway.cli.serve import _GatewayServer


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test session collects as before


@pytest.mark.usefixtures("unfrozen")
def test_start_up_freezes_what_is_alive_then() -> None:
    app = Starlette()
    server = _GatewayServer(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None), app
    )

    async def start_and_stop() -> int:
        assert gc.get_freeze_count() == 0
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        frozen = gc.get_freeze_count()
        server.should_exit = True
        await serving
        return frozen

    frozen = asyncio.run(start_and_stop())
    assert frozen > 10_000  # the modules, the app, the test session: far more than a few objects
