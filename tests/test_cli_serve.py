"""What ``serve`` does around uvicorn: start-up freezes the long-lived objects; a Redis queue
that does not answer stops it in one line."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner
from starlette.applications import Starlette

from tests.system.processes import free_port
from tiktok_gateway.app import Listeners
from tiktok_gateway.cli import main
from tiktok_gateway.cli.serve import _describe
from tiktok_gateway.cli.serving import GatewayServer
from tiktok_gateway.config import load_config


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test session collects as before


@pytest.mark.usefixtures("unfrozen")
def test_start_up_freezes_what_is_alive_then() -> None:
    app = Listeners(Starlette(), Starlette(), admin_port=0)
    server = GatewayServer(
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


def test_serve_stops_in_one_line_when_its_redis_queue_does_not_answer() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    result = CliRunner(env={"GATEWAY_QUEUE_URL": url}).invoke(main, ["serve"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: queue: {url.replace('hunter2', '***')} cannot be reached (redis: ConnectionError)"
    ]


@pytest.mark.parametrize("damage", ["not a database", "a folder in the way"])
def test_serve_stops_in_one_line_when_its_sqlite_queue_cannot_be_written(
    tmp_path: Path, damage: str
) -> None:
    """(A full disk is tests/system/test_full_disk.py's.)"""
    path = tmp_path / "queue.db"
    if damage == "not a database":
        path.write_bytes(b"this is not a SQLite file" * 100)
        cause = "SQLite: file is not a database"
    else:
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / "queue.db"  # its folder would be a file
        cause = "SQLite: File exists"  # mkdir of its folder
    result = CliRunner(env={"GATEWAY_QUEUE_URL": f"sqlite:///{path}"}).invoke(main, ["serve"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"error: queue cannot be written: {cause} ({path})"]


def test_serve_prints_both_listeners() -> None:
    text = _describe(load_config(None, {"GATEWAY_PORT": "9000"}))
    assert "tiktok-gateway on http://127.0.0.1:9000 (public:" in text
    assert "admin on http://127.0.0.1:9001 (/debug" in text
    assert "curl -i 'http://127.0.0.1:9000/g/collect?" in text
    assert "Watch it: http://127.0.0.1:9001/debug" in text
    environ = {"GATEWAY_ADMIN_HOST": "::1", "GATEWAY_ADMIN_PORT": "7000"}
    assert "admin on http://[::1]:7000 " in _describe(load_config(None, environ))


def test_workers_need_a_queue_they_share() -> None:
    env = {"GATEWAY_QUEUE_URL": "memory://"}
    result = CliRunner(env=env).invoke(main, ["serve", "--workers", "2"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: configuration: GATEWAY_WORKERS: above 1 needs a queue the processes share"
        " (sqlite:///... or redis://...), not memory://"
    ]
    # check reads the same configuration and says the same (it once passed it)
    checked = CliRunner(env={**env, "GATEWAY_WORKERS": "2"}).invoke(main, ["check"])
    assert checked.exit_code == 2
    assert "GATEWAY_WORKERS: above 1 needs a queue the processes share" in checked.stderr


def test_workers_stop_in_one_line_when_the_redis_queue_does_not_answer() -> None:
    """The parent checks the queue before it starts any worker."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = CliRunner(env={"GATEWAY_QUEUE_URL": url}).invoke(main, ["serve", "--workers", "2"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: queue: {url} cannot be reached (redis: ConnectionError)"
    ]


def test_a_bad_workers_value_names_the_key() -> None:
    result = CliRunner().invoke(main, ["serve", "--workers", "many"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: configuration: GATEWAY_WORKERS: ")


def test_serve_help_documents_workers() -> None:
    text = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--workers N|auto" in text
    assert "GATEWAY_WORKERS" in text


def test_the_start_up_lines_say_how_many_workers() -> None:
    one = _describe(load_config(None, {}))
    assert "  workers: 1 process; GATEWAY_WORKERS=auto: one per CPU" in one
    two = _describe(load_config(None, {"GATEWAY_WORKERS": "2"}))
    assert "  workers: 2 processes sharing both listeners and the queue\n" in two
    # token-less: each worker's own sandbox
    assert "each worker has its own built-in sandbox" in two
