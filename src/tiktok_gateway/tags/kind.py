"""A destination kind's definition: what the shared layers may ask of a folder under ``tags/``.

One object per kind (``tags/<kind>/kind.py`` exports ``KIND``), listed in ``tags/registry.py``
(Segment's ``DestinationDefinition`` plus ``register``). The shared layers (runtime, ingest,
delivery, metrics, ``/debug``, the admin API, ``check``, ``serve`` and the queue CLI) reach a
kind only through these hooks; the kind's own words (pixels, tokens, measurement ids) stay in
its folder. Every hook is a plain function of the configuration or of one record, so a kind is
data plus functions, never a subclass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tiktok_gateway.config import Config
from tiktok_gateway.delivery.destination import Destination
from tiktok_gateway.ingest import Collector, Placement

View = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ItemView:
    """What a kind reads from one of its queued payloads, for dead letters (admin API, CLI).

    ``fields`` are merged into the admin API's dead-letter view (redacted: no personal data in
    clear, no secret); ``summary`` is the one-line description ``queue dead`` prints; ``name`` is
    the event name (or names) shown first on the debug page; ``raw`` is the payload as JSON
    values, for ``queue dead --json`` (an operator's own tool: not redacted, but never a
    secret).
    """

    kind: str
    summary: str
    name: str | None = None
    fields: View = field(default_factory=dict)
    raw: object = None


@dataclass(frozen=True, slots=True)
class Kind:
    """A destination kind.

    - ``destinations(config, sandbox_url)``: the configured destinations of this kind;
      ``sandbox_url`` is where the built-in sandbox answers in process (for destinations that
      have no real target configured).
    - ``collector(config)``: its ingest side, ``None`` when it takes nothing from requests.
    - ``uses_sandbox(config)``: whether any of its destinations sends to the built-in sandbox.
    - ``describe(config)``: the lines ``check`` prints about it (never a secret).
    - ``startup(config, admin_url)``: the lines ``serve`` prints at start (where things go, and
      where the admin listener at ``admin_url`` shows them).
    - ``secrets(config)``: secret values to mask in every log line.
    - ``placement_view(placement)``: a placement as the debug page shows it (redacted).
    - ``item_view(payload)``: a queued payload as dead-letter listings show it (redacted);
      raises ``ValueError``/``KeyError``/``TypeError`` for a payload it did not write.
    - ``explanations``: what each dead-letter reason means for this kind and what to do about
      it, in one sentence (a reason not listed needs none).
    """

    name: str
    destinations: Callable[[Config, str], list[Destination]]
    collector: Callable[[Config], Collector | None]
    uses_sandbox: Callable[[Config], bool]
    describe: Callable[[Config], list[str]]
    startup: Callable[[Config, str], list[str]]
    secrets: Callable[[Config], list[str]]
    placement_view: Callable[[Placement], View]
    item_view: Callable[[bytes], ItemView]
    explanations: Mapping[str, str]
