"""The running gateway: queue, ingest, delivery worker and sandbox, started and stopped in order.

Start: open the queue, build the HTTP client (token-less tags go to the built-in sandbox, in
process), start the delivery worker. Stop (DESIGN habit 12; the worker does the middle steps):

1. refuse new hits (``accepting = False``: ingest endpoints answer 503);
2. stop leasing, flush partial batches, wait for in-flight requests up to the deadline;
3. release what is still leased without acknowledging it (it is delivered after a restart);
4. close the HTTP client, then the queue (which finishes its pending commits).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import httpx
import structlog
from starlette.applications import Starlette

from tiktok_gateway.admin.debug import DebugRecorder
from tiktok_gateway.config import Config
from tiktok_gateway.delivery.backoff import BackoffPolicy
from tiktok_gateway.delivery.worker import DeliveryWorker
from tiktok_gateway.ingest import Ingest
from tiktok_gateway.observe import Observers
from tiktok_gateway.queue.base import Clock, Queue, wall_clock
from tiktok_gateway.queue.factory import durability_warning, open_queue
from tiktok_gateway.sandbox.app import create_sandbox_app
from tiktok_gateway.sources.request_context import Network, parse_trusted_proxies
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings
from tiktok_gateway.telemetry import Telemetry, config_secrets

log = structlog.get_logger(__name__)

# Token-less tags post here; the HTTP client routes this origin to the in-process sandbox.
SANDBOX_ORIGIN = "http://tiktok-sandbox.internal"


@dataclass(slots=True)
class Runtime:
    """Everything a request handler needs, created at start-up (``app.state.runtime``)."""

    config: Config
    queue: Queue
    ingest: Ingest
    trusted_proxies: tuple[Network, ...]
    mp_secrets: dict[str, str]
    delivery_tags: dict[str, TikTokTagSettings]
    client: httpx.AsyncClient
    sandbox: Starlette | None = None
    worker: DeliveryWorker | None = None
    worker_task: asyncio.Task[None] | None = None
    observers: Observers = field(default_factory=Observers)
    telemetry: Telemetry = field(default_factory=Telemetry)
    debug: DebugRecorder = field(default_factory=DebugRecorder)
    accepting: bool = True


def delivery_targets(tags: tuple[TikTokTagSettings, ...]) -> dict[str, TikTokTagSettings]:
    """Tags by name, each token-less one pointed at the built-in sandbox."""
    return {
        tag.name: tag
        if tag.access_token is not None
        else tag.model_copy(update={"api_url": SANDBOX_ORIGIN})
        for tag in tags
    }


def needs_sandbox(config: Config) -> bool:
    """True when some tag has no access token, so its events go to the built-in sandbox."""
    return any(tag.access_token is None for tag in config.tags)


def sandbox_for(config: Config, given: Starlette | None = None) -> Starlette | None:
    """The app that answers the token-less tags' requests: ``given``, else a new sandbox;
    ``None`` when every tag has a token."""
    if not needs_sandbox(config):
        return None
    return given or create_sandbox_app()


def delivery_client(config: Config, sandbox: Starlette | None) -> httpx.AsyncClient:
    """The HTTP client TikTok requests go out with; ``sandbox``, when given, answers the
    requests of token-less tags in process (they are sent to ``SANDBOX_ORIGIN``)."""
    mounts: dict[str, httpx.AsyncBaseTransport] = {}
    if sandbox is not None:
        mounts[SANDBOX_ORIGIN] = httpx.ASGITransport(app=sandbox)
    return httpx.AsyncClient(mounts=mounts, timeout=config.gateway.request_timeout_seconds)


async def start_runtime(
    config: Config,
    *,
    sandbox: Starlette | None = None,
    queue: Queue | None = None,
    clock: Clock = wall_clock,
    run_worker: bool = True,
) -> Runtime:
    """Open the queue (unless given), build the client and start the worker (unless told not to).

    ``sandbox`` receives the token-less tags' requests; one is created when needed and not given.
    """
    queue = queue or await open_queue(config.gateway.resolved_queue_url, clock=clock)
    if warning := durability_warning(queue):
        log.warning("queue_not_durable", detail=warning)
    targets = delivery_targets(config.tags)
    sandbox = sandbox_for(config, sandbox)
    client = delivery_client(config, sandbox)
    runtime = Runtime(
        config=config,
        queue=queue,
        ingest=Ingest(config.tags, queue),
        trusted_proxies=parse_trusted_proxies(config.gateway.trusted_proxies),
        mp_secrets={
            mid: secret.get_secret_value() for mid, secret in config.gateway.mp_api_secrets.items()
        },
        delivery_tags=targets,
        client=client,
        sandbox=sandbox,
    )
    runtime.observers.add(runtime.telemetry)
    runtime.telemetry.set_secrets(config_secrets(config))  # masked in every log line
    if config.gateway.debug:  # off: /debug answers 404, so nothing need be recorded per hit
        runtime.observers.add(runtime.debug)
    gateway = config.gateway
    runtime.worker = DeliveryWorker(
        queue,
        targets,
        client,
        clock=clock,
        on_result=runtime.observers.on_delivery,
        max_wait=gateway.batch_max_wait_ms / 1000,
        max_in_flight=gateway.max_in_flight,
        request_timeout=gateway.request_timeout_seconds,
        # Events leased by a crashed process come back when their lease ends. A batch's
        # slowest path (bisecting a bad event against a slow TikTok) may outlast it: the events
        # are then sent twice, and TikTok's event_id deduplication absorbs the repeat.
        lease_seconds=gateway.lease_seconds,
        policy=BackoffPolicy(
            base=gateway.retry_base_seconds,
            cap=gateway.retry_max_seconds,
            expiry=gateway.event_expiry_seconds,
            probe_interval=gateway.probe_interval_seconds,
        ),
    )
    if run_worker:
        runtime.worker_task = asyncio.create_task(runtime.worker.run(), name="delivery")
    return runtime


async def stop_runtime(runtime: Runtime) -> None:
    """Shut down in the order of the module docstring."""
    runtime.accepting = False
    if runtime.worker is not None:
        await runtime.worker.stop(deadline=runtime.config.gateway.shutdown_seconds)
    if runtime.worker_task is not None:
        runtime.worker_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runtime.worker_task
    await runtime.client.aclose()
    await runtime.queue.close()
