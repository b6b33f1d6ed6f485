"""Running the gateway's server in this process: the listening sockets, uvicorn as ``serve``
sets it up, and the queue opened once, in the loop that then serves with it.

``serve`` runs ``run_server`` itself (one process), or each of its worker processes runs it
(``cli/workers.py``) on the sockets the parent bound.
"""

from __future__ import annotations

import gc
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import click
import uvicorn
from uvicorn._compat import asyncio_run

from tiktok_gateway.app import Listeners, create_app
from tiktok_gateway.cli.common import fail, open_serving_queue
from tiktok_gateway.config import Config
from tiktok_gateway.endpoints.limits import HttpLimits, limited_protocol
from tiktok_gateway.runtime import Runtime

LOOP = "uvloop"


class GatewayServer(uvicorn.Server):
    """uvicorn waits for open responses before the lifespan ends; /debug streams never end by
    themselves, so they are closed first, or every stop would wait for the full grace period.

    Once started, everything alive (modules, configuration, the pipeline: ~50,000 objects) is
    moved out of the garbage collector's sight (``gc.freeze``): they live as long as the process,
    and a full collection no longer walks them on every hit it interrupts (measured on the app
    in process after 20,000 hits: 80,000 -> 4,000 tracked objects, 32-35 -> 0.4 ms a full
    collection).

    ``on_started`` is called once the server listens (a worker tells its supervisor).
    ``graceful_only``: a second SIGINT or SIGTERM does not force the exit (uvicorn's force skips
    the lifespan's end, so leases would not be released): a worker may get SIGINT from the
    terminal and SIGTERM from its supervisor for one Ctrl+C; the supervisor's own deadline ends
    a worker that does not stop."""

    def __init__(
        self,
        config: uvicorn.Config,
        app: Listeners,
        on_started: Callable[[], None] | None = None,
        graceful_only: bool = False,
    ) -> None:
        super().__init__(config)
        self._app = app
        self._on_started = on_started
        self._graceful_only = graceful_only

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        gc.collect()  # what start-up left as garbage is freed, not frozen
        gc.freeze()
        if self._on_started is not None and self.started:
            self._on_started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._graceful_only and self.should_exit:
            return
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        runtime: Runtime | None = getattr(self._app.state, "runtime", None)
        if runtime is not None:
            runtime.debug.close()
        await super().shutdown(sockets)


def bind_sockets(config: Config) -> list[socket.socket]:
    """The public and the admin listening sockets, bound here (once, by the parent when there
    are workers: they share them). A Config applies its log_config when made: uvicorn's
    default would add an access log that prints every query string (page URLs, e-mail
    addresses), so these bind with logging off."""
    gateway = config.gateway
    return [
        uvicorn.Config(
            "unused:app",
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            proxy_headers=False,
        ).bind_socket()
        for host, port in (
            (gateway.host, gateway.port),
            (gateway.admin_host, gateway.resolved_admin_port),
        )
    ]


def uvicorn_config(app: Listeners, config: Config, limits: HttpLimits) -> uvicorn.Config:
    """uvicorn as the gateway runs it: uvloop, the bounded httptools protocol, no proxy headers,
    no access log, logging left to ``telemetry/logs.py``."""
    gateway = config.gateway
    return uvicorn.Config(
        app,
        host=gateway.host,
        port=gateway.port,
        loop=LOOP,
        # httptools bounded: heads of 16 KiB, a deadline to send them, a connection cap
        http=limited_protocol(limits),
        # Client IPs come from GATEWAY_TRUSTED_PROXIES only (the app's own handling):
        # uvicorn's would take X-Forwarded-For from any peer on 127.0.0.1.
        proxy_headers=False,
        lifespan="on",
        access_log=False,
        log_config=None,  # configured by serve; uvicorn's loggers propagate to the root handler
        log_level="warning",
        ws="none",
        timeout_graceful_shutdown=int(gateway.shutdown_seconds) + 1,
    )


def run_server(
    config: Config,
    limits: HttpLimits,
    *,
    sockets: list[socket.socket] | None = None,
    describe: str = "",
    failure_code: int = 1,
    metrics_dir: Path | None = None,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Serve until a signal stops it, in this process, on a uvloop loop.

    The queue is opened first, in that loop, and checked (``open_serving_queue``): one that
    cannot serve stops here in one line (exit ``failure_code``). Then ``describe`` is printed
    (stderr), the sockets bound unless given, and the app serves with that same queue."""

    async def main() -> None:
        queue = await open_serving_queue(config.gateway.resolved_queue_url)
        if isinstance(queue, str):
            fail(queue, code=failure_code)
        try:
            if describe:
                click.echo(describe, err=True)
            bound = sockets if sockets is not None else bind_sockets(config)
        except BaseException:
            await queue.close()
            raise
        app = create_app(config, queue=queue, metrics_dir=metrics_dir)
        server = GatewayServer(
            uvicorn_config(app, config, limits),
            app,
            on_started=on_started,
            graceful_only=on_started is not None,
        )
        await server.serve(sockets=bound)
        if not server.started:  # the lifespan or a socket failed; uvicorn said why
            sys.exit(uvicorn.config.STARTUP_FAILURE)

    factory = uvicorn.Config("unused:app", loop=LOOP, log_config=None).get_loop_factory()
    asyncio_run(main(), loop_factory=factory)
