"""What every command shares: failing with exit code 2, loading the configuration, and asking
a Redis queue whether it answers."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import click

from tiktok_gateway.config import Config, load_config
from tiktok_gateway.errors import ConfigError
from tiktok_gateway.queue.base import QueueUnavailable
from tiktok_gateway.queue.factory import durability_warning, open_queue, redacted_url

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="TOML configuration file (environment variables win over it).",
)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line reason and exit with ``code`` (2: bad usage or input)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def config_or_fail(path: Path | None, overrides: Mapping[str, str] | None = None) -> Config:
    """The validated configuration; ``GATEWAY_*`` ``overrides`` come from command-line options."""
    environ = {**os.environ, **(overrides or {})}
    try:
        return load_config(path, environ)
    except ConfigError as exc:
        fail(f"configuration: {exc}")


async def probe_queue(url: str) -> tuple[bool, list[str]]:
    """``(reachable, lines)`` for a Redis queue; ``(True, [])`` for any other kind."""
    if not url.startswith(("redis://", "rediss://")):
        return True, []
    try:
        queue = await open_queue(url)
    except QueueUnavailable as exc:
        return False, [f"queue: {redacted_url(url)} cannot be reached ({exc})"]
    try:
        stats = await queue.stats()
    finally:
        await queue.close()
    lines = [f"queue: Redis answers; {stats.depth} queued, {stats.dead} dead letters"]
    if warning := durability_warning(queue):
        lines.append(f"note: {warning}")
    return True, lines
