"""The running gateway: queue, ingest, destinations, delivery worker and sandbox, started and
stopped in order. The composition root: the only module (besides ``app.py`` and the CLI) that
knows every destination kind, through ``tags/registry.py``.

Start: open the queue, build each kind's destinations and collector, the HTTP client (whatever
has no real target goes to the built-in sandbox, in process), start the delivery worker.
Stop (DESIGN habit 12; the worker does the middle steps):

1. refuse new hits (``accepting = False``: ingest endpoints answer 503);
2. stop leasing, flush partial batches, wait for in-flight requests up to the deadline;
3. release what is still leased without acknowledging it (it is delivered after a restart);
4. stop reading the queue's numbers (``queue/admission.py``), close the destinations' own
   clients and the HTTP client, then the queue (which finishes its pending commits).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import structlog
from starlette.applications import Starlette

from tiktok_gateway.admin.recorder import DebugRecorder
from tiktok_gateway.config import Config
from tiktok_gateway.delivery.backoff import BackoffPolicy
from tiktok_gateway.delivery.destination import Destination, kinds_of
from tiktok_gateway.delivery.worker import DeliveryWorker
from tiktok_gateway.ingest import Collector, Ingest
from tiktok_gateway.observe import Observers
from tiktok_gateway.queue.admission import Admission
from tiktok_gateway.queue.base import Clock, Queue, wall_clock
from tiktok_gateway.queue.factory import durability_warning, open_queue
from tiktok_gateway.sandbox.app import create_sandbox_app
from tiktok_gateway.sources.request_context import Network, parse_trusted_proxies
from tiktok_gateway.tags.registry import KINDS, config_secrets
from tiktok_gateway.tasks import cancel_and_wait
from tiktok_gateway.telemetry.metrics import Telemetry

log = structlog.get_logger(__name__)

# Destinations without a real target post here; the HTTP client routes this origin to the
# in-process sandbox.
SANDBOX_ORIGIN = "http://sandbox.internal"


@dataclass(slots=True)
class Runtime:
    """Everything a request handler needs, created at start-up (``app.state.runtime``)."""

    config: Config
    queue: Queue
    admission: Admission  # the caps and the storage's health: ingest puts through it
    ingest: Ingest
    trusted_proxies: tuple[Network, ...]
    mp_secrets: dict[str, str]
    destinations: dict[str, Destination]
    client: httpx.AsyncClient
    sandbox: Starlette | None = None
    worker: DeliveryWorker | None = None
    worker_task: asyncio.Task[None] | None = None
    metrics_task: asyncio.Task[None] | None = None  # publishes this worker process's metrics
    observers: Observers = field(default_factory=Observers)
    telemetry: Telemetry = field(default_factory=Telemetry)
    debug: DebugRecorder = field(default_factory=DebugRecorder)
    accepting: bool = True


def build_destinations(config: Config) -> dict[str, Destination]:
    """Every configured destination by name (names are unique: the configuration checks)."""
    return {
        destination.name: destination
        for kind in KINDS
        for destination in kind.destinations(config, SANDBOX_ORIGIN)
    }


def build_collectors(config: Config) -> list[Collector]:
    """The ingest side of every kind that takes something from requests."""
    return [found for kind in KINDS if (found := kind.collector(config)) is not None]


def needs_sandbox(config: Config) -> bool:
    """True when some destination has no real target, so it goes to the built-in sandbox."""
    return any(kind.uses_sandbox(config) for kind in KINDS)


def sandbox_for(config: Config, given: Starlette | None = None) -> Starlette | None:
    """The app that answers destinations without a real target: ``given``, else a new
    sandbox; ``None`` when every destination has a real target."""
    if not needs_sandbox(config):
        return None
    return given or create_sandbox_app()


def delivery_client(
    config: Config, sandbox: Starlette | None, connections: int = 100
) -> httpx.AsyncClient:
    """The HTTP client requests go out with; ``sandbox``, when given, answers the requests
    sent to ``SANDBOX_ORIGIN`` in process. ``connections``: kept open at most (the sum of the
    destinations' requests at once)."""
    mounts: dict[str, httpx.AsyncBaseTransport] = {}
    if sandbox is not None:
        mounts[SANDBOX_ORIGIN] = httpx.ASGITransport(app=sandbox)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        mounts=mounts, timeout=config.gateway.request_timeout_seconds, limits=limits
    )


async def start_runtime(
    config: Config,
    *,
    sandbox: Starlette | None = None,
    queue: Queue | None = None,
    clock: Clock = wall_clock,
    run_worker: bool = True,
    metrics_dir: Path | None = None,
) -> Runtime:
    """Open the queue (unless given), build the client and start the worker (unless told not to).

    ``sandbox`` receives the requests of destinations without a real target; one is created
    when needed and not given. ``metrics_dir``: this is one of several worker processes, which
    count in that folder (``telemetry/metrics.py``); this one publishes its state there every
    second.
    """
    queue = queue or await open_queue(config.gateway.resolved_queue_url, clock=clock)
    if warning := durability_warning(queue):
        log.warning("queue_not_durable", detail=warning)
    destinations = build_destinations(config)
    sandbox = sandbox_for(config, sandbox)
    connections = sum(d.limits.max_in_flight for d in destinations.values())
    client = delivery_client(config, sandbox, max(connections, 1))
    admission = Admission(
        queue, max_items=config.gateway.queue_max_events, max_bytes=config.gateway.queue_max_bytes
    )
    await admission.refresh()  # a queue over its caps (or failing) at start refuses the first hit
    admission.start()
    runtime = Runtime(
        config=config,
        queue=queue,
        admission=admission,
        ingest=Ingest(build_collectors(config), admission),
        trusted_proxies=parse_trusted_proxies(config.gateway.trusted_proxies),
        mp_secrets={
            mid: secret.get_secret_value() for mid, secret in config.gateway.mp_api_secrets.items()
        },
        destinations=destinations,
        client=client,
        sandbox=sandbox,
        telemetry=Telemetry(metrics_dir),
    )
    runtime.observers.add(runtime.telemetry)
    runtime.telemetry.set_secrets(config_secrets(config))  # masked in every log line
    if config.gateway.debug:  # off: /debug answers 404, so nothing need be recorded per hit
        runtime.observers.add(runtime.debug)
    gateway = config.gateway
    runtime.worker = DeliveryWorker(
        queue,
        destinations,
        client,
        clock=clock,
        on_result=runtime.observers.on_delivery,
        max_wait=gateway.batch_max_wait_ms / 1000,
        # Items leased by a crashed process come back when their lease ends. A batch's
        # slowest path (bisecting a bad event against a slow TikTok) may outlast it: the items
        # are then sent twice, and the destinations' deduplication absorbs the repeat.
        lease_seconds=gateway.lease_seconds,
        policy=BackoffPolicy(
            base=gateway.retry_base_seconds,
            cap=gateway.retry_max_seconds,
            probe_interval=gateway.probe_interval_seconds,
        ),
    )
    if run_worker:
        runtime.worker_task = asyncio.create_task(runtime.worker.run(), name="delivery")
    if metrics_dir is not None:
        runtime.metrics_task = asyncio.create_task(
            runtime.telemetry.publish_every(
                runtime.worker, kinds_of(runtime.destinations), admission
            ),
            name="metrics",
        )
    return runtime


async def stop_runtime(runtime: Runtime) -> None:
    """Shut down in the order of the module docstring."""
    runtime.accepting = False
    if runtime.worker is not None:
        await runtime.worker.stop(deadline=runtime.config.gateway.shutdown_seconds)
    if runtime.worker_task is not None:
        await cancel_and_wait(runtime.worker_task)
    if runtime.metrics_task is not None:  # the last counts of this process, then no more
        await cancel_and_wait(runtime.metrics_task)
        runtime.telemetry.publish(runtime.worker, kinds_of(runtime.destinations), runtime.admission)
    await runtime.admission.stop()
    for destination in runtime.destinations.values():
        await destination.aclose()
    await runtime.client.aclose()
    await runtime.queue.close()
