"""What every command shares: failing with exit code 2, loading the configuration, and asking
a Redis queue whether it answers."""

from __future__ import annotations

import os
import resource
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


DEFAULT_MAX_CONNECTIONS = 20_000
RESERVED_FILES = 256  # descriptors kept for the queue, the logs and outbound requests


def raise_open_file_limit() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit (as far as the kernel lets
    it) and return the soft limit then in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1_048_576  # Linux: at most nr_open
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # the kernel's own ceiling (nr_open) is lower: keep the soft one
        return soft
    return target


def connection_limits_or_fail(configured: int | None) -> int:
    """The cap on open connections: ``configured`` (``GATEWAY_MAX_CONNECTIONS``), else
    min(20000, the open-file limit - 256). The open-file limit is raised to its hard limit
    first; a configured cap above what it allows fails (exit 2): the process would run out of
    descriptors before the cap answered 503."""
    maximum = max(1, raise_open_file_limit() - RESERVED_FILES)
    if configured is None:
        return min(DEFAULT_MAX_CONNECTIONS, maximum)
    if configured > maximum:
        fail(
            f"configuration: GATEWAY_MAX_CONNECTIONS={configured} is above the {maximum}"
            f" connections this process can hold (open-file limit minus {RESERVED_FILES});"
            " lower it or raise the limit (ulimit -n)"
        )
    return configured


async def writable_queue(url: str) -> str | None:
    """For ``serve``: why a SQLite queue cannot be opened and written (a full disk, a folder or
    file it may not write), in one line, or ``None``. Opens it (creating the file, as ``serve``
    is about to) and probes one write. Other kinds: ``None`` (``probe_queue`` asks Redis)."""
    if not url.startswith("sqlite:///"):
        return None
    try:
        queue = await open_queue(url)
        try:
            await queue.probe_write()
        finally:
            await queue.close()
    except QueueUnavailable as exc:
        return f"queue cannot be written: {exc}"  # it names the file
    return None


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
