"""``tiktok-gateway queue stats|dead|replay|purge`` against the configured queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click

from tiktok_gateway.cli.common import CONFIG_OPTION, config_or_fail, fail
from tiktok_gateway.delivery.envelope import Envelope
from tiktok_gateway.errors import ConfigError
from tiktok_gateway.queue.base import DeadRecord, Queue, QueueUnavailable
from tiktok_gateway.queue.factory import open_queue, redacted_url

T = TypeVar("T")


def _run(config_path: Path | None, action: Callable[[Queue], Awaitable[T]]) -> T:
    config = config_or_fail(config_path)

    async def main() -> T:
        queue = await open_queue(config.gateway.resolved_queue_url)
        try:
            return await action(queue)
        finally:
            await queue.close()

    try:
        return asyncio.run(main())
    except ConfigError as exc:
        fail(f"configuration: {exc}")
    except QueueUnavailable as exc:  # not the user's input: exit 1, as for any failed command
        url = redacted_url(config.gateway.resolved_queue_url)
        fail(f"the queue at {url} cannot be reached ({exc})", code=1)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _envelope(record: DeadRecord) -> Envelope | None:
    """The dead letter's envelope; ``None`` when its payload is what made it dead (not ours)."""
    try:
        return Envelope.from_bytes(record.payload)
    except (ValueError, KeyError, TypeError):
        return None


def _envelope_json(record: DeadRecord) -> object:
    """The payload as JSON for ``dead --json``: the envelope, else the raw text as it is."""
    envelope = _envelope(record)
    if envelope is not None:
        return json.loads(record.payload)
    return {"unreadable_payload": record.payload.decode("utf-8", "replace")}


def _describe(record: DeadRecord) -> str:
    envelope = _envelope(record)
    what = (
        f"{envelope.tag} {envelope.event.get('event')} {envelope.event.get('event_id')}"
        if envelope is not None
        else "(unreadable payload)"
    )
    code = f" code {record.code}" if record.code is not None else ""
    request = f" request {record.request_id}" if record.request_id else ""
    return (
        f"{record.id}  {_when(record.dead_at)}  {what}  attempts {record.attempts}\n"
        f"    {record.reason}{code}: {record.message or '-'}{request}"
    )


@click.group("queue")
def queue_group() -> None:
    """Look into and repair the delivery queue (the one the configuration names)."""


@queue_group.command("stats")
@CONFIG_OPTION
def stats_command(config_path: Path | None) -> None:
    """Depth, leased, oldest age and dead letters, as JSON."""
    stats = _run(config_path, lambda queue: queue.stats())
    click.echo(json.dumps(stats.to_json(), indent=2))


@queue_group.command("dead")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of text.")
@CONFIG_OPTION
def dead_command(limit: int, as_json: bool, config_path: Path | None) -> None:
    """The newest dead letters, each with TikTok's code and message."""
    records = _run(config_path, lambda queue: queue.dead_letters(limit))
    if as_json:
        rows = [
            {
                "id": r.id,
                "dead_at": _when(r.dead_at),
                "reason": r.reason,
                "code": r.code,
                "message": r.message,
                "request_id": r.request_id,
                "attempts": r.attempts,
                "event": _envelope_json(r),
            }
            for r in records
        ]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not records:
        click.echo("no dead letters")
    for record in records:
        click.echo(_describe(record))


@queue_group.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@CONFIG_OPTION
def replay_command(ids: tuple[str, ...], replay_all: bool, config_path: Path | None) -> None:
    """Put dead letters back into the queue (IDs from `queue dead`, or --all)."""
    if replay_all == bool(ids):
        fail("give dead-letter IDs or --all (not both)")
    count = _run(config_path, lambda queue: queue.replay(None if replay_all else list(ids)))
    click.echo(f"replayed {count} dead letter(s)")


@queue_group.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@CONFIG_OPTION
def purge_command(yes: bool, config_path: Path | None) -> None:
    """Delete every dead letter for good."""
    if not yes:
        click.confirm("Delete every dead letter?", abort=True)
    count = _run(config_path, lambda queue: queue.purge())
    click.echo(f"purged {count} dead letter(s)")
