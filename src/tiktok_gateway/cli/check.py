"""``tiktok-gateway check``: validate the configuration, describe every destination, send tests.

The configuration is loaded exactly as ``serve`` loads it (file, then environment). What is
printed never includes a secret, only whether one is set. Each destination kind describes its
own destinations (``Kind.describe``: TikTok tags, GA4 forwarding).

``--send-test`` sends one ``Pageview`` per TikTok tag with a test event code, through the
delivery code itself (``tags/tiktok/check.py``); token-less tags go to the built-in sandbox in
this process, as ``serve`` sends them. (Google offers no test endpoint for ``/g/collect``.)

A Redis queue is also connected to: whether it answers, what it holds, and what a restart of
the server would lose. (A SQLite queue is not opened: that would create its file.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from pydantic import SecretStr

from tiktok_gateway.cli.common import (
    CONFIG_OPTION,
    config_or_fail,
    connection_limits_or_fail,
    probe_queue,
)
from tiktok_gateway.cli.workers import workers_line
from tiktok_gateway.config import Config
from tiktok_gateway.endpoints.limits import HEAD_BYTES
from tiktok_gateway.queue.factory import redacted_url
from tiktok_gateway.runtime import SANDBOX_ORIGIN, delivery_client, sandbox_for
from tiktok_gateway.tags.registry import KINDS
from tiktok_gateway.tags.tiktok.check import (
    STATUS_ORDER,
    STATUS_WORDS,
    SendResult,
    describe_result,
    exit_code,
    send_test_events,
)


def _is_set(secret: SecretStr | None) -> str:
    """Whether a secret is set; says nothing about it but that (and whether it is empty)."""
    if secret is None:
        return "not set"
    return "set" if secret.get_secret_value().strip() else "set but empty"


def describe_config(config: Config, path: Path | None) -> list[str]:
    """The lines ``check`` prints for a valid configuration."""
    gateway = config.gateway
    source = str(path) if path is not None else "environment variables"
    count = len(config.tags)
    lines = [f"configuration OK ({source}): {count} tag{'s' if count != 1 else ''}"]
    lines.append(
        f"gateway: listens on {gateway.host}:{gateway.port}, "
        f"queue {redacted_url(gateway.resolved_queue_url)}, "
        f"admin token {_is_set(gateway.admin_token)}, "
        f"ingest token {_is_set(gateway.ingest_token)}"
    )
    redis = gateway.resolved_queue_url.startswith(("redis://", "rediss://"))
    size = (
        "items only (Redis: its maxmemory bounds the bytes)"
        if redis
        else f"{gateway.queue_max_bytes:,} bytes"
    )
    lines.append(
        f"queue caps: {gateway.queue_max_events:,} items (dead letters included), {size};"
        " past them hits get 503 queue_full"
    )
    for kind in KINDS:
        lines.extend(kind.describe(config))
    return lines


async def send_tests(config: Config, fallback_code: str | None) -> list[SendResult]:
    """One test event per TikTok tag (``tags/tiktok/check.send_test_events``), through a
    client that answers token-less tags with the built-in sandbox, in process."""
    async with delivery_client(config, sandbox_for(config)) as client:
        return await send_test_events(
            config.tags,
            client,
            SANDBOX_ORIGIN,
            fallback_code,
            timeout=config.gateway.request_timeout_seconds,
        )


@click.command("check")
@CONFIG_OPTION
@click.option(
    "--send-test",
    is_flag=True,
    help="Also send one test event (a Pageview) per tag, with its test event code.",
)
@click.option(
    "--test-event-code",
    metavar="CODE",
    help="Test event code for tags without test_event_code (from TikTok's Test Events tab).",
)
def check_command(config_path: Path | None, send_test: bool, test_event_code: str | None) -> None:
    """Validate the configuration and show each destination: TikTok tags (pixel, settings,
    what they fire on) and GA4 forwarding (on or off, endpoint, allow-list, IP mode).

    The configuration is read as `serve` reads it (--config file, then environment). Access
    tokens are never shown, only whether one is set.

    With --send-test, one Pageview per tag is sent with the tag's test_event_code (else
    --test-event-code) to its api_url, or to the built-in sandbox (in this process) when the tag
    has no access token, and TikTok's code, message and request_id are printed.

    A Redis queue (GATEWAY_QUEUE_URL=redis://...) is connected to, and its counts shown.

    \b
    Exit status:
      0  the configuration is valid (and with --send-test every test event was delivered)
      1  a Redis queue cannot be reached; or --send-test: TikTok refused a test event, or
         could not be reached
      2  invalid configuration (the key and the reason on stderr), or a tag has no test
         event code for --send-test
    """
    config = config_or_fail(config_path)
    workers = config.gateway.resolved_workers
    max_connections = connection_limits_or_fail(config.gateway.max_connections, workers)
    for line in describe_config(config, config_path):
        click.echo(line)
    click.echo(workers_line(config))
    each = f", {max_connections} per worker" if workers > 1 else ""
    click.echo(
        f"connections: at most {max_connections * workers} open{each} (request heads:"
        f" {HEAD_BYTES // 1024} KiB within {config.gateway.header_timeout_seconds:g} s)"
    )
    reachable, lines = asyncio.run(probe_queue(config.gateway.resolved_queue_url))
    for line in lines:
        click.echo(line)
    if not reachable:
        raise SystemExit(1)
    if not send_test:
        return
    click.echo("")
    results = asyncio.run(send_tests(config, test_event_code or None))
    for result in results:
        click.echo(describe_result(result))
    counts = {status: sum(r.status == status for r in results) for status in STATUS_ORDER}
    parts = (f"{n} {STATUS_WORDS[status]}" for status, n in counts.items() if n)
    click.echo(f"summary: {', '.join(parts)}")
    code = exit_code(results)
    if code:
        raise SystemExit(code)
