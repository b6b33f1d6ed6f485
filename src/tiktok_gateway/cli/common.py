"""What every command shares: failing with exit code 2, loading the configuration, the
connection cap, and asking the queue whether it answers."""

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
from tiktok_gateway.queue.base import Queue, QueueUnavailable
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


def connection_limits_or_fail(configured: int | None, workers: int = 1) -> int:
    """The cap on open connections of each of ``workers`` processes. ``configured``
    (``GATEWAY_MAX_CONNECTIONS``) is the whole server's, divided among them (rounded down); by
    default the server holds min(20000, the open-file limit - 256 per process). The open-file
    limit is raised to its hard limit first (the workers inherit it); a share above what it
    allows fails (exit 2): the process would run out of descriptors before the cap answered
    503."""
    maximum = max(1, raise_open_file_limit() - RESERVED_FILES)
    if configured is None:
        return min(max(1, DEFAULT_MAX_CONNECTIONS // workers), maximum)
    share = max(1, configured // workers)
    if share > maximum:
        per = f" ({share} per worker)" if workers > 1 else ""
        fail(
            f"configuration: GATEWAY_MAX_CONNECTIONS={configured}{per} is above the {maximum}"
            f" connections {'each' if workers > 1 else 'this'} process can hold (open-file limit"
            f" minus {RESERVED_FILES}); lower it or raise the limit (ulimit -n)"
        )
    return share


def _unreachable(url: str, error: QueueUnavailable) -> str:
    """Why a Redis queue cannot serve, in one line (its password masked)."""
    return f"queue: {redacted_url(url)} cannot be reached ({error})"


async def open_serving_queue(url: str) -> Queue | str:
    """For ``serve``: the queue opened and checked, or why it cannot serve, in one line. A
    Redis queue must answer (its counts are read); a SQLite queue must take a write (a full
    disk, a folder or file it may not write: ``probe_write``, creating the file first). The
    open queue is what the pipeline then uses: one connection, not a probe and then another."""
    redis = url.startswith(("redis://", "rediss://"))
    queue: Queue | None = None
    try:
        queue = await open_queue(url)
        await (queue.stats() if redis else queue.probe_write())
    except BaseException as exc:
        if queue is not None:
            await queue.close()
        if not isinstance(exc, QueueUnavailable):
            raise
        return _unreachable(url, exc) if redis else f"queue cannot be written: {exc}"
    return queue


async def probe_queue(url: str) -> tuple[bool, list[str]]:
    """``(reachable, lines)`` for a Redis queue; ``(True, [])`` for any other kind."""
    if not url.startswith(("redis://", "rediss://")):
        return True, []
    try:
        queue = await open_queue(url)
    except QueueUnavailable as exc:
        return False, [_unreachable(url, exc)]
    try:
        stats = await queue.stats()
    finally:
        await queue.close()
    lines = [f"queue: Redis answers; {stats.depth} queued, {stats.dead} dead letters"]
    if warning := durability_warning(queue):
        lines.append(f"note: {warning}")
    return True, lines
