"""``tiktok-gateway queue stats|dead|replay|purge`` against the configured queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click

from tiktok_gateway.admin.api import item_view
from tiktok_gateway.cli.common import CONFIG_OPTION, config_or_fail, fail
from tiktok_gateway.delivery.destination import kinds_of
from tiktok_gateway.errors import ConfigError
from tiktok_gateway.queue.base import DeadRecord, Queue, QueueUnavailable
from tiktok_gateway.queue.factory import open_queue, redacted_url
from tiktok_gateway.runtime import build_destinations
from tiktok_gateway.tags.kind import ItemView
from tiktok_gateway.tags.registry import BY_NAME

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


def _views(config_path: Path | None, records: list[DeadRecord]) -> list[ItemView | None]:
    """What each record's destination kind reads from its payload (``None``: unreadable)."""
    kinds = kinds_of(build_destinations(config_or_fail(config_path)))
    return [item_view(kinds.get(record.group), record.payload) for record in records]


def _describe(record: DeadRecord, view: ItemView | None) -> str:
    what = view.summary if view is not None else f"{record.group} (unreadable payload)"
    code = f" code {record.code}" if record.code is not None else ""
    request = f" request {record.request_id}" if record.request_id else ""
    kind = BY_NAME.get(view.kind) if view is not None else None
    meaning = kind.explanations.get(record.reason, "") if kind is not None else ""
    return (
        f"{record.id}  {_when(record.dead_at)}  {what}  attempts {record.attempts}\n"
        f"    {record.reason}{code}: {record.message or '-'}{request}"
        + (f"\n    {meaning}" if meaning else "")
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
    """The newest dead letters, each with the destination's code and message, and what the
    reason means for its kind (e.g. a GA4 forward Google refused)."""
    records = _run(config_path, lambda queue: queue.dead_letters(limit))
    views = _views(config_path, records)  # each payload is read once
    if as_json:
        rows = [
            {
                "id": r.id,
                "destination": r.group,
                "dead_at": _when(r.dead_at),
                "reason": r.reason,
                "code": r.code,
                "message": r.message,
                "request_id": r.request_id,
                "attempts": r.attempts,
                "event": view.raw
                if view is not None
                else {"unreadable_payload": r.payload.decode("utf-8", "replace")},
            }
            for r, view in zip(records, views, strict=True)
        ]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not records:
        click.echo("no dead letters")
    for record, view in zip(records, views, strict=True):
        click.echo(_describe(record, view))


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
