"""The TikTok kind in ``tiktok-gateway check``: each tag described, and one test event sent.

What is printed about a tag never includes its access token, only whether one is set.

``send_test_events`` sends one ``Pageview`` per tag, mapped with the tag's own settings, with a
test event code (TikTok's Test Events tool shows only events carrying its code), through the
delivery code itself (``TikTokDestination.send``: the request body, the post and ``classify``).
Token-less tags go to the built-in sandbox, as ``serve`` sends them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import SecretStr

from tiktok_gateway import __version__, wire_json
from tiktok_gateway.delivery.destination import Batch
from tiktok_gateway.delivery.outcome import Delivered, Outcome, Pause, Reject, Split, words
from tiktok_gateway.queue.base import LeasedItem
from tiktok_gateway.tags.tiktok.destination import TikTokDestination, tiktok_limits
from tiktok_gateway.tags.tiktok.envelope import RawEnvelope, payload_of
from tiktok_gateway.tags.tiktok.mapping import DroppedEvent, map_event
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
    api_url: str,
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
    # Through the destination, as serve delivers: the same body, post and classification.
    payload = payload_of(tag.name, tag.pixel_code, mapped.test_event_code, mapped.event)
    unit = RawEnvelope.from_bytes(payload)
    item = LeasedItem("check:1", tag.name, payload, 0, float(now))
    destination = TikTokDestination(tag, api_url, tiktok_limits(1, 3600.0, timeout))
    outcome = await destination.send(client, Batch(tag.name, unit.route, (item,), (unit,)))
    status, detail = _outcome_detail(outcome)
    answer_code, message, request_id = words(outcome)
    if isinstance(outcome, Delivered):  # TikTok's code 0 (20001: partial), its message
        answer_code = 20001 if outcome.partial else 0
    elif answer_code is None:  # no TikTok answer (HTTP error, no connection): the detail says
        message = ""
    return SendResult(
        tag.name,
        status,
        where,
        tag.pixel_code,
        mapped.test_event_code,
        str(mapped.event["event_id"]),
        code=answer_code,
        message=message,
        request_id=request_id,
        detail=detail,
    )


async def send_test_events(
    tags: Sequence[TikTokTagSettings],
    client: httpx.AsyncClient,
    sandbox_url: str,
    fallback_code: str | None = None,
    *,
    timeout: float = 10.0,
    now: int | None = None,
) -> list[SendResult]:
    """Send one test event per tag; token-less tags go to ``sandbox_url`` through ``client``.

    A tag's event carries its ``test_event_code``, else ``fallback_code``; without either it is not
    sent. Never raises for what TikTok or the network does.
    """
    stamp = int(time.time()) if now is None else now
    results: list[SendResult] = []
    for tag in tags:
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
        api_url = tag.api_url if tag.access_token is not None else sandbox_url
        results.append(await _send_one(client, tag, api_url, code, stamp, timeout))
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
