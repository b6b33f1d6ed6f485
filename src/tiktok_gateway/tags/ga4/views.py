"""How the operator surfaces show GA4 forwarding: a hit's forward on the debug page, a queued
forward in the dead-letter listings, and what each dead-letter reason means. Redacted as
everything else (``admin/redact.py``): no e-mail address or phone number in clear, and the
Measurement Protocol ``api_secret`` (a secret key) always masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from tiktok_gateway.admin.redact import body_view, mask_text, query_pairs, redact_pair
from tiktok_gateway.ingest import Placement
from tiktok_gateway.sources.ga4_values import decode_component
from tiktok_gateway.tags.ga4.collector import ForwardPlacement
from tiktok_gateway.tags.ga4.destination import KIND
from tiktok_gateway.tags.ga4.forward import Forward
from tiktok_gateway.tags.ga4.payload import QueuedForward
from tiktok_gateway.tags.kind import ItemView, View

MAX_NAMES: Final = 10


def placement_view(placement: Placement) -> View:
    """``{"status": "queued" | "skipped", "reason", "measurement_id", "path", "target",
    "summary"}``."""
    if not isinstance(placement, ForwardPlacement):
        raise TypeError(f"not a GA4 placement: {type(placement).__name__}")
    mid = mask_text(placement.measurement_id)
    return {
        "status": "queued" if placement.key is not None else "skipped",
        "reason": mask_text(placement.reason) if placement.reason else placement.reason,
        "measurement_id": mid,
        "path": placement.path,
        "target": placement.target,
        "summary": f"{mid or '(no measurement id)'} \u2192 {placement.target}{placement.path}",
    }


def event_names(forward: Forward) -> list[str]:
    """The ``en`` parameters of a web forward, query then body lines (at most ``MAX_NAMES``)."""
    names: list[str] = []
    lines = [forward.query, *forward.body.decode("utf-8", "replace").splitlines()]
    for line in lines:
        for segment in line.split("&"):
            name, _, value = segment.partition("=")
            if name == "en" and len(names) < MAX_NAMES:
                names.append(mask_text(decode_component(value)))
    return names


def item_view(payload: bytes) -> ItemView:
    """A queued forward: ``{"measurement_id", "path", "region1", "forward_id", "params",
    "body"}`` (parameters and body redacted) and ``ga4 <measurement id> <path> <events>``."""
    queued = QueuedForward.from_bytes(payload)
    forward = queued.forward
    names = ", ".join(event_names(forward)) or None
    params = query_pairs(forward.query)
    body = body_view(forward.body)
    return ItemView(
        kind=KIND,
        summary=f"ga4 {queued.measurement_id} {forward.path} {names or '-'} ({queued.key})",
        name=names,
        fields={
            "measurement_id": queued.measurement_id,
            "path": forward.path,
            "region1": forward.region1,
            "forward_id": queued.key,
            "params": params,
            "body": body,
        },
        # queue dead --json: the same, with the headers; redacted too, since the body is the
        # browser's own bytes and may hold what the debug page would mask.
        raw={
            "measurement_id": queued.measurement_id,
            "path": forward.path,
            "forward_id": queued.key,
            "params": params,
            "headers": [redact_pair(name, value) for name, value in forward.headers],
            "body": body,
        },
    )


# What each dead-letter reason means for a GA4 forward, for ``queue dead``.
EXPLANATIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "rejected": "Google refused this hit (an HTTP 4xx): replaying sends the same bytes again.",
        "expired": "it kept failing for max_age_hours (72 h); Google records events at most 72"
        " hours late, so a replay would be dropped: purge it.",
        "invalid_payload": "the queued bytes are not a GA4 forward this version can read.",
        "unknown_destination": "GA4 forwarding is off (GATEWAY_GA4_FORWARD); turn it on, then"
        " replay.",
    }
)
