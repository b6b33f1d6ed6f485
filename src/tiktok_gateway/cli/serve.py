"""``tiktok-gateway serve`` (the gateway) and ``tiktok-gateway sandbox`` (TikTok's emulator)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import quote

import click

from tiktok_gateway.cli.common import (
    CONFIG_OPTION,
    config_or_fail,
    connection_limits_or_fail,
    fail,
    open_serving_queue,
)
from tiktok_gateway.cli.serving import bind_sockets, run_server
from tiktok_gateway.cli.workers import (
    Supervisor,
    WorkerSpec,
    metrics_dir_of,
    prepare_metrics_dir,
    workers_line,
)
from tiktok_gateway.config import Config
from tiktok_gateway.endpoints.limits import HttpLimits
from tiktok_gateway.queue.factory import redacted_url
from tiktok_gateway.runtime import needs_sandbox
from tiktok_gateway.sandbox.app import create_sandbox_app
from tiktok_gateway.sandbox.faults import FaultSettings
from tiktok_gateway.sandbox.server import run_sandbox
from tiktok_gateway.tags.registry import KINDS
from tiktok_gateway.telemetry.logs import configure_from_environment

# A GA4 purchase hit as gtag.js sends it, for the first try after `make run`.
SAMPLE_HIT = (
    "v=2&tid=G-DEMO12345&cid=555.1700000000&_p=1700000000001&_s=1&en=purchase&cu=EUR"
    "&ep.transaction_id=T-1001&epn.value=59.90&pr1=idSKU-1~nmT-Shirt~pr19.95~qt2"
    "&pr2=idSKU-2~nmCap~pr20~qt1&dl="
    + quote("https://shop.example.com/thanks?ttclid=E.C.P.demo", "")
    + "&ep.user_data.email_address="
    + quote("alice@example.com", "")
)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _describe(config: Config) -> str:
    gateway = config.gateway
    public = _url(gateway.host, gateway.port)
    admin = _url(gateway.admin_host, gateway.resolved_admin_port)
    queue = redacted_url(gateway.resolved_queue_url)
    lines = [
        f"tiktok-gateway on {public} (public: /g/collect, /mp/collect, /events; queue: {queue})",
        f"  admin on {admin} (/debug, /admin, /metrics, /sandbox; not for the internet)",
        f"  {workers_line(config)}",
        "Send a sample GA4 purchase hit:",
        f"  curl -i '{public}/g/collect?{SAMPLE_HIT}'",
        f"Watch it: {admin}/debug",
    ]
    if gateway.resolved_workers > 1 and needs_sandbox(config):
        lines.append(
            "  note: each worker has its own built-in sandbox: /sandbox lists what the worker"
            " answering the request sent"
        )
    for kind in KINDS:
        lines.extend(kind.startup(config, admin))
    return "\n".join(lines)


@click.command("serve")
@click.option("--host", help="Public address [GATEWAY_HOST, default 127.0.0.1].")
@click.option("--port", type=int, help="Public port [GATEWAY_PORT, default 8080].")
@click.option("--admin-host", help="Admin address [GATEWAY_ADMIN_HOST, default 127.0.0.1].")
@click.option(
    "--admin-port", type=int, help="Admin port [GATEWAY_ADMIN_PORT, default the public port + 1]."
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="Folder of the SQLite queue [GATEWAY_DATA_DIR, default ./data].",
)
@click.option(
    "--workers",
    metavar="N|auto",
    help="Processes serving both listeners [GATEWAY_WORKERS, default 1]; auto: one per CPU"
    " this process may run on, what a multi-core machine wants.",
)
@CONFIG_OPTION
def serve_command(
    host: str | None,
    port: int | None,
    admin_host: str | None,
    admin_port: int | None,
    data_dir: Path | None,
    workers: str | None,
    config_path: Path | None,
) -> None:
    """Run the gateway: accept hits, queue them durably, deliver them to TikTok and forward
    the GA4 hits to Google Analytics.

    Two listeners: the public one (--host/--port) takes hits: /g/collect, /mp/collect, /events,
    /healthz, /readyz; the admin one (--admin-host/--admin-port, loopback by default) serves the
    operator: /debug, /admin, /metrics, /sandbox. Off loopback it needs GATEWAY_ADMIN_TOKEN.

    Without TIKTOK_ACCESS_TOKEN the TikTok events go to the built-in sandbox (listed at
    /sandbox/events on the admin listener); with GATEWAY_GA4_ENDPOINT=sandbox the GA4 hits do
    too (/sandbox/ga4/hits), so everything works offline. GATEWAY_GA4_FORWARD=false keeps GA4
    hits from Google.

    With --workers N (or auto) N processes serve both listeners, sharing the sockets and the
    queue (SQLite or Redis), each with its own delivery lanes; a supervisor restarts one that
    dies, kills and restarts one whose event loop hangs for GATEWAY_WORKER_TIMEOUT_SECONDS (30),
    and SIGTERM stops them all gracefully. /metrics adds up the counts of all of them;
    /readyz, /debug and the built-in sandbox answer for the process that takes the request.
    GATEWAY_MAX_CONNECTIONS is divided among them.
    """
    overrides = {
        name: str(value)
        for name, value in (
            ("GATEWAY_HOST", host),
            ("GATEWAY_PORT", port),
            ("GATEWAY_ADMIN_HOST", admin_host),
            ("GATEWAY_ADMIN_PORT", admin_port),
            ("GATEWAY_DATA_DIR", data_dir),
            ("GATEWAY_WORKERS", workers),
        )
        if value is not None
    }
    config = config_or_fail(config_path, overrides)
    gateway = config.gateway
    count = gateway.resolved_workers
    limits = HttpLimits(
        max_connections=connection_limits_or_fail(gateway.max_connections, count),
        head_timeout_seconds=gateway.header_timeout_seconds,
    )
    try:  # GATEWAY_LOG_FORMAT=json|console, GATEWAY_LOG_LEVEL: uvicorn's lines take the same form
        configure_from_environment()
    except ValueError as exc:
        fail(str(exc))
    if count == 1:
        # The queue is opened once, in the server's loop, and checked before anything else: a
        # Redis queue that does not answer, or a SQLite queue on a full disk or in a folder it
        # may not write, stops serve in one line (exit 1, a supervisor may restart it) rather
        # than in uvicorn's start-up with a traceback.
        run_server(config, limits, describe=_describe(config))
        return
    # Several workers: the parent checks the queue as above, with a connection of its own that
    # it closes again; each worker then opens its own (one per process, never two in one).
    if problem := asyncio.run(_queue_problem(gateway.resolved_queue_url)):
        fail(problem, code=1)
    metrics = metrics_dir_of(config)
    try:
        prepare_metrics_dir(metrics)
    except OSError as exc:
        fail(f"metrics folder {metrics}: {exc.strerror or exc}", code=1)
    click.echo(_describe(config), err=True)
    supervisor = Supervisor(WorkerSpec(config, limits, metrics), bind_sockets(config), count)
    sys.exit(supervisor.run())


async def _queue_problem(url: str) -> str | None:
    """Why the queue cannot serve (``open_serving_queue``), or ``None``; closed again."""
    queue = await open_serving_queue(url)
    if isinstance(queue, str):
        return queue
    await queue.close()
    return None


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9090, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--access-token-env",
    metavar="VAR",
    help="Require the token held by this environment variable (40105 otherwise).",
)
@click.option("--fail-rate", default=0.0, show_default=True, help="Share of 5xx / 50000 answers.")
@click.option("--throttle-rate", default=0.0, show_default=True, help="Share of 40100 answers.")
@click.option("--latency-ms", default=0.0, show_default=True, help="Added to every answer.")
@click.option("--outage-seconds", default=0.0, show_default=True, help="Answer 503 at first.")
@click.option("--ga4-fail-rate", default=0.0, show_default=True, help="GA4: share of 5xx.")
@click.option("--ga4-throttle-rate", default=0.0, show_default=True, help="GA4: share of 429.")
@click.option("--ga4-latency-ms", default=0.0, show_default=True, help="GA4: added latency.")
@click.option("--ga4-outage-seconds", default=0.0, show_default=True, help="GA4: 503 at first.")
@click.option("--seed", type=int, help="Seed for reproducible faults.")
def sandbox_command(
    host: str,
    port: int,
    access_token_env: str | None,
    fail_rate: float,
    throttle_rate: float,
    latency_ms: float,
    outage_seconds: float,
    ga4_fail_rate: float,
    ga4_throttle_rate: float,
    ga4_latency_ms: float,
    ga4_outage_seconds: float,
    seed: int | None,
) -> None:
    """Run the local stand-ins for TikTok's Events API (POST /open_api/v1.3/event/track/)
    and Google Analytics (POST /g/collect, POST /mp/collect).

    GET /sandbox/events lists the TikTok events it accepted, GET /sandbox/ga4/hits the GA4 hits
    it received; POST/DELETE /sandbox/outage and /sandbox/ga4/outage start and end an outage of
    either side. The token is read from an environment variable so it never shows in `ps`.
    Point the gateway at it with TIKTOK_API_URL and GATEWAY_GA4_ENDPOINT=http://HOST:PORT.
    """
    token = os.environ.get(access_token_env, "") if access_token_env else ""
    if access_token_env and not token:
        fail(f"--access-token-env: environment variable {access_token_env} is not set")
    try:
        faults = FaultSettings(
            fail_rate=fail_rate,
            throttle_rate=throttle_rate,
            latency_ms=latency_ms,
            outage_seconds=outage_seconds,
        )
        ga4_faults = FaultSettings(
            fail_rate=ga4_fail_rate,
            throttle_rate=ga4_throttle_rate,
            latency_ms=ga4_latency_ms,
            outage_seconds=ga4_outage_seconds,
        )
    except ValueError as exc:
        fail(str(exc))
    base = f"http://{host}:{port}"
    click.echo(
        f"Sandbox on {base}: TikTok events at {base}/sandbox/events,"
        f" GA4 hits at {base}/sandbox/ga4/hits",
        err=True,
    )
    app = create_sandbox_app(
        access_token=token or None, faults=faults, seed=seed, ga4_faults=ga4_faults
    )
    run_sandbox(host, port, app)
