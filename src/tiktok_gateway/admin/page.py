"""The ``/debug`` page's HTML and CSS (server-rendered; the script is ``page_js.SCRIPT``).

Kept as Python strings so the page ships without package data. Element ids, classes and
``data-testid`` attributes are stable: the browser test and operators' scripts select them.
The inline ``<style>`` is allowed by its hash in the Content-Security-Policy (``CSP``), which
admits no inline script and no other origin.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from html import escape
from typing import Final

STYLE: Final = """
:root { --ok: #17803d; --warn: #a15c00; --bad: #b3261e; --muted: #666; --line: #ddd; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: #1b1b1b; background: #f6f6f4; }
[hidden] { display: none !important; }
body > header { display: flex; gap: 1rem; align-items: center; padding: .6rem 1rem;
  background: #111; color: #fff; }
h1 { font-size: 1.1rem; margin: 0; } h1 span { color: #25f4ee; }
h2 { font-size: 1rem; margin: 0 0 .4rem; } h3 { font-size: .9rem; margin: .6rem 0 .2rem; }
h4 { font-size: .9rem; margin: 0 0 .3rem; }
.status { padding: .1rem .5rem; border-radius: 1rem; background: #444; font-size: .8rem; }
.status.live { background: var(--ok); } .status.down { background: var(--bad); }
main { display: grid; grid-template-columns: 22rem 1fr; gap: 1rem; padding: 1rem; }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .7rem;
  margin-bottom: 1rem; }
dl { display: grid; grid-template-columns: auto 1fr; gap: .2rem .8rem; margin: 0; }
dt { color: var(--muted); } dd { margin: 0; font-weight: 600; }
ul { list-style: none; margin: 0; padding: 0; }
.paused-tag, .dead-letter { border-top: 1px solid var(--line); padding: .4rem 0;
  overflow-wrap: anywhere; }
.dead-letter button { float: right; }
.dead-letter .why { color: var(--bad); }
.muted, .none, .empty { color: var(--muted); }
.error { color: var(--bad); }
button { cursor: pointer; border: 1px solid #999; border-radius: 4px; background: #fafafa;
  padding: .15rem .6rem; }
#filters { display: flex; flex-wrap: wrap; gap: 1rem; align-items: end; margin-bottom: .8rem; }
#filters label { display: flex; flex-direction: column; font-size: .8rem; color: var(--muted); }
.hit { background: #fff; border: 1px solid var(--line); border-left: 4px solid #999;
  border-radius: 6px; padding: .6rem .8rem; margin-bottom: .7rem; }
.hit.ok { border-left-color: var(--ok); } .hit.bad { border-left-color: var(--bad); }
.hit-head { display: flex; flex-wrap: wrap; gap: .8rem; align-items: baseline; }
.hit-head .event-name { font-size: 1rem; }
.source { text-transform: uppercase; font-size: .75rem; background: #eee; padding: 0 .4rem; }
.tags { display: grid; grid-template-columns: repeat(auto-fit, minmax(26rem, 1fr));
  gap: 0 .6rem; }
.tag-result { border: 1px solid var(--line); border-radius: 4px; padding: .4rem .6rem;
  margin-top: .5rem; }
.tag-result.dropped, .forward-result.skipped { color: var(--muted); }
.forward-result { border: 1px dashed #bbb; border-radius: 4px; padding: .3rem .6rem;
  margin-top: .5rem; }
.identifiers span { display: inline-block; margin: 0 .3rem .2rem 0; padding: 0 .35rem;
  border-radius: 3px; font-size: .75rem; background: #eee; color: #999;
  text-decoration: line-through; }
.identifiers span.present { background: #e3f4e8; color: var(--ok); text-decoration: none; }
.identifiers span.quality { text-decoration: none; color: #fff; font-weight: 600; }
.quality.good { background: var(--ok); } .quality.ok { background: var(--warn); }
.quality.weak { background: var(--bad); }
.delivery { font-size: .85rem; margin: .2rem 0; }
.delivery[data-outcome=delivered], .delivery[data-outcome=partial] { color: var(--ok); }
.delivery[data-outcome=queued], .delivery[data-outcome=retry],
.delivery[data-outcome=paused] { color: var(--warn); }
.delivery.failed { color: var(--bad); }
pre { background: #f3f3f0; padding: .4rem; margin: .3rem 0; max-height: 16rem; overflow: auto;
  font-size: .75rem; }
table.params { border-collapse: collapse; font-size: .75rem; }
table.params td { border-bottom: 1px solid var(--line); padding: .1rem .5rem .1rem 0;
  word-break: break-all; }
summary { cursor: pointer; color: #333; font-size: .85rem; }
"""

CSP: Final = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; "
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_OUTCOMES: Final = (
    ("Delivery", ("queued", "delivered", "partial", "retry", "paused", "rejected", "expired")),
    ("", ("retries_exhausted", "invalid_payload", "unknown_destination", "dropped", "skipped")),
    ("Hit", ("accepted", "partial_hit", "invalid", "too_large", "unauthorized", "unavailable")),
)

_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>tiktok-gateway debug</title>
<style>@STYLE@</style>
</head>
<body>
<header>
<h1>tiktok-gateway <span>debug</span></h1>
<span id="stream-status" class="status" data-testid="stream-status">connecting</span>
<span id="hit-count" class="muted" data-testid="hit-count"></span>
</header>
<main>
<aside>
<section id="queue-panel" class="panel" data-testid="queue-panel">
<h2>Queue</h2>
<dl>
<dt>Depth</dt><dd id="queue-depth" data-testid="queue-depth">-</dd>
<dt>Leased</dt><dd id="queue-leased" data-testid="queue-leased">-</dd>
<dt>Oldest</dt><dd id="queue-oldest" data-testid="queue-oldest">-</dd>
<dt>Dead letters</dt><dd id="queue-dead" data-testid="queue-dead">-</dd>
</dl>
<h3>Paused or backing-off destinations</h3>
<ul id="paused-tags" data-testid="paused-tags"><li class="none">none</li></ul>
<p id="queue-error" class="error" hidden></p>
</section>
<section id="dead-letter-panel" class="panel" data-testid="dead-letter-panel">
<h2>Dead letters <button id="replay-all" type="button" data-testid="replay-all">Replay all</button>
</h2>
<p id="dead-status" class="muted" data-testid="dead-status"></p>
<ul id="dead-letters" data-testid="dead-letters"></ul>
</section>
</aside>
<section id="stream">
<form id="filters" data-testid="filters">
<label>Destination<select id="filter-tag" data-testid="filter-tag">
<option value="">all</option>@TAGS@</select></label>
<label>Event name<input id="filter-event" data-testid="filter-event" type="search"
placeholder="purchase, Pageview..."></label>
<label>Outcome<select id="filter-outcome" data-testid="filter-outcome">
<option value="">all</option>@OUTCOMES@</select></label>
</form>
<p id="no-hits" class="empty">Waiting for hits: send one to /g/collect, /mp/collect or /events.</p>
<div id="hits" data-testid="hits"></div>
</section>
</main>
<script src="/debug/debug.js"></script>
</body>
</html>
"""


def _outcome_options() -> str:
    parts: list[str] = []
    for label, values in _OUTCOMES:
        options = "".join(f'<option value="{v}">{v.replace("_", " ")}</option>' for v in values)
        parts.append(f'<optgroup label="{label}">{options}</optgroup>' if label else options)
    return "".join(parts)


def render_page(destinations: Sequence[tuple[str, str]]) -> str:
    """The page for the configured ``(destination name, kind)`` pairs (escaped)."""
    options = "".join(
        f'<option value="{escape(name)}">{escape(name)} ({escape(kind)})</option>'
        for name, kind in destinations
    )
    return (
        _PAGE.replace("@STYLE@", STYLE)
        .replace("@TAGS@", options)
        .replace("@OUTCOMES@", _outcome_options())
    )
