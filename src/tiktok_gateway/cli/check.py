"""``tiktok-gateway check``: validate the configuration, show each tag, send test events.

The configuration is loaded exactly as ``serve`` loads it (file, then environment). What is printed
about a tag never includes its access token, only whether one is set.

``--send-test`` sends one ``Pageview`` per tag, mapped with the tag's own settings, with a test
event code (TikTok's Test Events tool shows only events carrying its code), through the delivery
code itself (``post_batch`` and ``classify``). Token-less tags go to the built-in sandbox in this
process, as ``serve`` sends them (``runtime.delivery_targets``).

A Redis queue is also connected to: whether it answers, what it holds, and what a restart of
the server would lose. (A SQLite queue is not opened: that would create its file.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click
import httpx
from pydantic import SecretStr, ValidationError
from starlette.applications import Starlette

from tiktok_gateway import __version__, wire_json
from tiktok_gateway.cli.common import CONFIG_OPTION, config_or_fail
from tiktok_gateway.config import Config
from tiktok_gateway.queue.base import QueueUnavailable
from tiktok_gateway.queue.factory import durability_warning, open_queue, redacted_url
from tiktok_gateway.runtime import delivery_client, delivery_targets, sandbox_for
from tiktok_gateway.tags.tiktok.classify import Delivered, Outcome, Pause, Reject, Split
from tiktok_gateway.tags.tiktok.client import post_batch
from tiktok_gateway.tags.tiktok.mapping import DroppedEvent, map_event
from tiktok_gateway.tags.tiktok.payload import TrackResponse, request_body
from tiktok_gateway.tags.tiktok.settings import DEFAULT_API_URL, TikTokTagSettings
from tiktok_gateway.tags.triggers import TriggerSettings

SANDBOX_TARGET = "built-in sandbox"

# The test event's id is this prefix and the unix time of the run: recognisable in TikTok's Test
# Events, and new on every run, since TikTok drops a repeated (pixel, event, event_id) for 48 h.
TEST_EVENT_ID_PREFIX = "tiktok-gateway-check"
TEST_EVENT_NAME = "Pageview"

Status = Literal["delivered", "refused", "failed", "not_sent"]
STATUS_WORDS: dict[Status, str] = {
    "delivered": "delivered",
    "refused": "refused by TikTok",
    "failed": "failed",
    "not_sent": "not sent",
}
STATUS_ORDER: tuple[Status, ...] = ("delivered", "refused", "failed", "not_sent")


# -- describing the configuration -------------------------------------------------------------


def _joined(values: Sequence[str], word: str) -> str:
    """``a``, ``a or b``, ``a, b or c`` (with ``word`` "or" or "and")."""
    if len(values) < 2:
        return "".join(values)
    return f"{', '.join(values[:-1])} {word} {values[-1]}"


def _either(values: Sequence[str]) -> str:
    return _joined(values, "or")


def describe_trigger(trigger: TriggerSettings) -> str:
    """What a trigger fires on, in words (``everything`` when it has no condition)."""
    conditions: list[str] = []
    if trigger.measurement_ids:
        conditions.append(f"measurement id {_either(trigger.measurement_ids)}")
    if trigger.hostnames:
        conditions.append(f"hostname {_either(trigger.hostnames)}")
    if trigger.include_events:
        conditions.append(f"event {_either(trigger.include_events)}")
    excluded = f"except {_joined(trigger.exclude_events, 'and')}" if trigger.exclude_events else ""
    if not conditions:
        return f"every event {excluded}" if excluded else "everything"
    text = " and ".join(conditions)
    return f"{text}, {excluded}" if excluded else text


def trigger_warnings(trigger: TriggerSettings) -> list[str]:
    """Trigger settings that are almost certainly mistakes."""
    if trigger.include_events and set(trigger.include_events) <= set(trigger.exclude_events):
        return ["never fires: every included event is also excluded"]
    return []


def target_name(tag: TikTokTagSettings) -> str:
    """``api_url``, or ``built-in sandbox`` for a tag without an access token."""
    return tag.api_url if tag.access_token is not None else SANDBOX_TARGET


def describe_target(tag: TikTokTagSettings) -> str:
    """Where the tag's events go: its ``api_url``, or the built-in sandbox without a token."""
    if tag.access_token is not None:
        return tag.api_url
    if tag.api_url != DEFAULT_API_URL:
        return f"{SANDBOX_TARGET} (no access token, so api_url {tag.api_url} is not used)"
    return f"{SANDBOX_TARGET} (no access token)"


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


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
    if config.placeholder_pixel:
        lines.append("note: TIKTOK_PIXEL_CODE is not set; a placeholder pixel code is used")
    for tag in config.tags:
        lines.append("")
        lines.extend(describe_tag(tag))
    return lines


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


def describe_tag(tag: TikTokTagSettings) -> list[str]:
    """One tag's lines: settings, token presence (never the token), target and trigger."""
    overrides = ", ".join(f"{ga4} -> {tiktok}" for ga4, tiktok in tag.event_map.items())
    rows = [
        ("pixel code", tag.pixel_code),
        ("access token", _is_set(tag.access_token)),
        ("delivers to", describe_target(tag)),
        ("fires on", describe_trigger(tag.trigger)),
        ("purchase event", tag.purchase_event),
        ("lead event", tag.lead_event),
        ("content type", tag.content_type),
        ("consent", tag.consent),
        ("limited data use", _yes_no(tag.limited_data_use)),
        ("test event code", tag.test_event_code or "none (live events)"),
        ("phone region", tag.phone_region),
        ("unmapped events", tag.unmapped_events),
        ("event map", f"default, with {overrides}" if overrides else "default"),
    ]
    lines = [f"tag {tag.name}"]
    lines.extend(f"  {label + ':':<18}{value}" for label, value in rows)
    lines.extend(f"  warning: {text}" for text in trigger_warnings(tag.trigger))
    return lines


# -- sending test events ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendResult:
    """What became of one tag's test event.

    ``status``: ``delivered`` (TikTok took it), ``refused`` (TikTok answered with a non-zero code),
    ``failed`` (no TikTok answer: connection, timeout, HTTP error) or ``not_sent`` (no test event
    code, or the tag's mapping dropped the event). ``code``, ``message`` and ``request_id`` are
    TikTok's words when it answered; ``detail`` explains the rest in one line.
    """

    tag: str
    status: Status
    target: str
    pixel_code: str
    test_event_code: str | None = None
    event_id: str = ""
    code: int | None = None
    message: str = ""
    request_id: str = ""
    detail: str = ""


def _test_event_data(tag: TikTokTagSettings, code: str, now: int) -> dict[str, object]:
    data: dict[str, object] = {
        "x-ttq-event-name": TEST_EVENT_NAME,
        "x-ttq-event-id": f"{TEST_EVENT_ID_PREFIX}-{now}",
        "x-ttq-timestamp": now,
        "x-ttq-test-event-code": code,
        "x-ttq-ct-user-agent": f"tiktok-gateway/{__version__} (check --send-test)",
    }
    if tag.trigger.hostnames:
        data["x-ttq-ct-page-url"] = f"https://{tag.trigger.hostnames[0]}/"
    return data


def _outcome_detail(outcome: Outcome) -> tuple[Status, str]:
    """The status of a classified answer and what the gateway would do with it, in words."""
    if isinstance(outcome, Delivered):
        return "delivered", "partial success" if outcome.partial else ""
    if isinstance(outcome, Reject):
        return "refused", "the event was rejected"
    if isinstance(outcome, Split):
        return "refused", "the request was too large"
    status: Status = "refused" if outcome.code is not None else "failed"
    why = outcome.reason if outcome.code is not None else f"{outcome.reason} ({outcome.message})"
    if isinstance(outcome, Pause):
        return status, f"{why}; the gateway would pause this tag"
    return status, f"{why}; the gateway would retry"


async def _send_one(
    client: httpx.AsyncClient,
    tag: TikTokTagSettings,
    target: TikTokTagSettings,
    code: str,
    now: int,
    timeout: float,
) -> SendResult:
    where = target_name(tag)
    mapped = map_event(_test_event_data(tag, code, now), tag)
    if isinstance(mapped, DroppedEvent):
        return SendResult(
            tag.name,
            "not_sent",
            where,
            tag.pixel_code,
            code,
            detail=f"the tag's mapping drops the test event ({mapped.reason})",
        )
    body = wire_json.dumps(request_body(tag.pixel_code, [mapped.event], mapped.test_event_code))
    token = tag.access_token.get_secret_value() if tag.access_token is not None else None
    reply = await post_batch(client, target.api_url, token, body, timeout)
    status, detail = _outcome_detail(reply.classify(time.time()))
    answer: TrackResponse | None = None
    if reply.body:
        try:
            answer = TrackResponse.model_validate_json(reply.body)
        except ValidationError:
            answer = None
    return SendResult(
        tag.name,
        status,
        where,
        tag.pixel_code,
        mapped.test_event_code,
        str(mapped.event["event_id"]),
        code=answer.code if answer is not None else None,
        message=answer.message if answer is not None else "",
        request_id=answer.request_id if answer is not None else "",
        detail=detail,
    )


async def send_test_events(
    config: Config,
    fallback_code: str | None = None,
    *,
    sandbox: Starlette | None = None,
    now: int | None = None,
) -> list[SendResult]:
    """Send one test event per tag; token-less tags go to ``sandbox`` (a new one by default).

    A tag's event carries its ``test_event_code``, else ``fallback_code``; without either it is not
    sent. Never raises for what TikTok or the network does.
    """
    stamp = int(time.time()) if now is None else now
    targets = delivery_targets(config.tags)
    timeout = config.gateway.request_timeout_seconds
    results: list[SendResult] = []
    async with delivery_client(config, sandbox_for(config, sandbox)) as client:
        for tag in config.tags:
            code = tag.test_event_code or fallback_code
            if not code:
                results.append(
                    SendResult(
                        tag.name,
                        "not_sent",
                        target_name(tag),
                        tag.pixel_code,
                        detail="no test event code: set test_event_code for this tag or pass "
                        "--test-event-code; TikTok's Test Events tool shows only events with "
                        "its code",
                    )
                )
                continue
            results.append(await _send_one(client, tag, targets[tag.name], code, stamp, timeout))
    return results


def describe_result(result: SendResult) -> str:
    """One line per tag: status, TikTok's code / message / request id, where it went."""
    words = STATUS_WORDS[result.status]
    facts: list[str] = []
    if result.code is not None:
        facts.append(f"code {result.code}")
        facts.append(f"message {wire_json.dumps(result.message).decode()}")
    if result.request_id:
        facts.append(f"request_id {result.request_id}")
    if result.detail:
        facts.append(result.detail)
    where = [f"pixel {result.pixel_code}"]
    if result.test_event_code:
        where.append(f"test event code {result.test_event_code}")
    if result.event_id:
        where.append(f"event_id {result.event_id}")
    where.append(f"to {result.target}")
    head = f"send-test {result.tag}: {words}"
    return (
        f"{head}: {'; '.join(facts)} ({', '.join(where)})"
        if facts
        else f"{head} ({', '.join(where)})"
    )


def exit_code(results: Sequence[SendResult]) -> int:
    """0 all delivered; 1 TikTok refused one or was not reached; 2 one was not sent (usage)."""
    if any(result.status in ("refused", "failed") for result in results):
        return 1
    if any(result.status == "not_sent" for result in results):
        return 2
    return 0


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
    """Validate the configuration and show each tag: pixel, settings, what it fires on.

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
    for line in describe_config(config, config_path):
        click.echo(line)
    reachable, lines = asyncio.run(probe_queue(config.gateway.resolved_queue_url))
    for line in lines:
        click.echo(line)
    if not reachable:
        raise SystemExit(1)
    if not send_test:
        return
    click.echo("")
    results = asyncio.run(send_test_events(config, test_event_code or None))
    for result in results:
        click.echo(describe_result(result))
    counts = {status: sum(r.status == status for r in results) for status in STATUS_ORDER}
    parts = (f"{n} {STATUS_WORDS[status]}" for status, n in counts.items() if n)
    click.echo(f"summary: {', '.join(parts)}")
    code = exit_code(results)
    if code:
        raise SystemExit(code)
