"""The ``/debug`` page's script (plain JavaScript, no build step), served at ``/debug/debug.js``.

It listens to ``/debug/stream`` (server-sent events ``hit`` and ``delivery``), renders every
value with ``textContent`` (never as HTML), filters rows client-side, polls ``/admin/queue``
every 3 s and ``/admin/dead-letters`` every 5 s, and replays dead letters with
``POST /admin/dead-letters/replay``. Requests go same-origin with the session cookie.
"""

from __future__ import annotations

from typing import Final

SCRIPT: Final = r""""use strict";
const MAX_HITS = 200;
const FAILED = new Set(["rejected", "expired", "retries_exhausted", "invalid_payload",
  "unknown_destination"]);
const hitsBox = document.getElementById("hits");
const hits = new Map();  // request_id -> {hit, rows: [element]}
const $ = (id) => document.getElementById(id);

function h(tag, props, ...kids) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) node.append(kid);
  return node;
}
const pretty = (value) => JSON.stringify(value, null, 2);
const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString();
function age(seconds) {
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
async function getJSON(url, options) {
  const response = await fetch(url, {credentials: "same-origin", ...(options || {})});
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${response.status} ${body.error || ""} ${body.detail || ""}`);
  return body;
}

function deliveryNode(delivery) {
  const parts = [delivery.outcome];
  if (delivery.code !== null && delivery.code !== undefined) parts.push(`code ${delivery.code}`);
  if (delivery.message) parts.push(delivery.message);
  if (delivery.request_id) parts.push(`request ${delivery.request_id}`);
  return h("div", {class: FAILED.has(delivery.outcome) ? "delivery failed" : "delivery",
    "data-testid": "delivery", "data-outcome": delivery.outcome,
    "data-code": delivery.code ?? ""}, parts.join(" \u00b7 "));
}

function tagNode(tag) {
  if (tag.status === "dropped") {
    return h("section", {class: "tag-result dropped", "data-testid": "tag-result",
      "data-tag": tag.tag}, `${tag.tag}: dropped (${tag.reason})`);
  }
  const ids = Object.entries(tag.identifiers).map(([name, present]) =>
    h("span", {class: present ? "present" : "", "data-identifier": name,
      "data-present": present ? "yes" : "no"}, name));
  ids.push(h("span", {class: `quality ${tag.match_quality}`, "data-testid": "match-quality",
    title: "strong identifiers: email, phone, external_id, ttclid (2+ good, 1 ok, 0 weak)"},
    `match ${tag.match_quality} (${tag.strong} strong)`));
  return h("section", {class: "tag-result", "data-testid": "tag-result", "data-tag": tag.tag,
    "data-event-id": tag.key},
    h("h4", {}, `${tag.tag} \u00b7 ${tag.pixel} \u2192 `,
      h("span", {class: "tiktok-name", "data-testid": "tiktok-event-name"}, tag.event_name),
      tag.test_event_code ? ` (test ${tag.test_event_code})` : ""),
    h("div", {class: "identifiers", "data-testid": "identifiers"}, ids),
    deliveryNode(tag.delivery),
    tag.warnings.length ? h("div", {class: "muted"}, `warnings: ${tag.warnings.join(", ")}`) : null,
    h("details", {open: true}, h("summary", {}, "TikTok event"),
      h("pre", {class: "tiktok-event", "data-testid": "tiktok-event"}, pretty(tag.event))));
}

function forwardNode(forward) {
  return h("section", {class: forward.key === null ? "forward-result skipped" : "forward-result",
    "data-testid": "forward-result", "data-destination": forward.destination,
    "data-key": forward.key ?? ""},
    h("h4", {}, `${forward.destination} \u00b7 ${forward.summary}`),
    forward.key === null
      ? h("div", {class: "delivery", "data-testid": "delivery", "data-outcome": "skipped"},
        `not forwarded: ${forward.reason}`)
      : deliveryNode(forward.delivery));
}

function rawNode(hit) {
  const rows = hit.params.map(([name, value]) =>
    h("tr", {}, h("td", {}, name), h("td", {}, value)));
  return h("details", {class: "raw"}, h("summary", {}, `Raw parameters (${hit.params.length})`),
    h("table", {class: "params", "data-testid": "raw-params"}, rows),
    hit.body ? h("pre", {class: "raw-body"}, pretty(hit.body)) : null);
}

function outcomesOf(hit, event) {
  const labels = [hit.outcome === "partial" ? "partial_hit" : hit.outcome];
  for (const tag of event ? event.tags : []) {
    labels.push(tag.status === "dropped" ? "dropped" : tag.delivery.outcome);
  }
  for (const forward of hit.forwards) {
    labels.push(forward.key === null ? "skipped" : forward.delivery.outcome);
  }
  return labels;
}

function rowNode(hit, event) {
  const tags = event ? event.tags : [];
  const queued = [...tags.filter((t) => t.key !== null), ...hit.forwards.filter((f) =>
    f.key !== null)];
  const good = hit.status < 300 && queued.every((p) => !FAILED.has(p.delivery.outcome));
  const names = event ? [event.name || "", ...tags.map((t) => t.event_name || "")] : [];
  const row = h("article", {class: good ? "hit ok" : "hit bad", "data-testid": "hit",
    "data-request-id": hit.request_id, "data-source": hit.source,
    "data-event": event ? event.name || "" : "",
    "data-tags": [...tags, ...hit.forwards].map((p) => p.destination).join(" "),
    "data-outcomes": outcomesOf(hit, event).join(" ")},
    h("header", {class: "hit-head"}, h("time", {}, clock(hit.time)),
      h("span", {class: "source"}, hit.source),
      h("strong", {class: "event-name", "data-testid": "event-name"},
        event ? event.name || "(no event name)" : "(no event)"),
      h("span", {class: "http-status"}, `${hit.status} ${hit.outcome}`),
      hit.error ? h("span", {class: "error"}, hit.error) : null,
      h("span", {class: "muted request-id"}, `request ${hit.request_id}`)),
    hit.errors.map((e) => h("div", {class: "error"}, `line ${e.line}: ${e.reason} ${e.detail}`)),
    tags.length ? h("div", {class: "tags"}, tags.map(tagNode))
      : (event ? h("div", {class: "muted"}, "no tag fired") : null),
    hit.forwards.length ? h("div", {class: "forwards", "data-testid": "forwards"},
      hit.forwards.map(forwardNode)) : null,
    rawNode(hit),
    event ? h("details", {class: "data"}, h("summary", {}, "Event data"),
      h("pre", {class: "event-data", "data-testid": "event-data"}, pretty(event.data))) : null);
  row.searchNames = names.map((n) => n.toLowerCase());
  return row;
}

function matches(row) {
  const tag = $("filter-tag").value;
  const text = $("filter-event").value.trim().toLowerCase();
  const outcome = $("filter-outcome").value;
  if (tag && !row.dataset.tags.split(" ").includes(tag)) return false;
  if (text && !row.searchNames.some((name) => name.includes(text))) return false;
  return !outcome || row.dataset.outcomes.split(" ").includes(outcome);
}
function filterRow(row) { row.hidden = !matches(row); }
function applyFilters() {
  for (const entry of hits.values()) entry.rows.forEach(filterRow);
  const shown = hitsBox.querySelectorAll("article.hit:not([hidden])").length;
  $("hit-count").textContent = `${hits.size} hits, ${shown} rows shown`;
  $("no-hits").hidden = hits.size > 0;
}

function addHit(hit) {
  const rows = hit.events.length ? hit.events.map((e) => rowNode(hit, e)) : [rowNode(hit, null)];
  const known = hits.get(hit.request_id);
  if (known) {
    known.rows[0].before(...rows);
    known.rows.forEach((row) => row.remove());
  } else {
    hitsBox.prepend(...rows);
  }
  hits.set(hit.request_id, {hit, rows});
  while (hits.size > MAX_HITS) {
    const [oldest, entry] = hits.entries().next().value;
    entry.rows.forEach((row) => row.remove());
    hits.delete(oldest);
  }
  applyFilters();
}

function applyDelivery(update) {
  const entry = hits.get(update.request_id);
  if (!entry) return;
  const keys = new Set(update.keys);
  const hit = entry.hit;
  const ours = (p) => p.key !== null && p.destination === update.destination && keys.has(p.key);
  let forwarded = false;
  for (const forward of hit.forwards) {
    if (ours(forward)) { forward.delivery = update.delivery; forwarded = true; }
  }
  const events = hit.events.length ? hit.events : [null];
  events.forEach((event, index) => {
    let changed = forwarded;
    for (const tag of event ? event.tags : []) {
      if (ours(tag)) { tag.delivery = update.delivery; changed = true; }
    }
    if (!changed) return;
    const row = entry.rows[index];
    for (const box of row.querySelectorAll(".tag-result[data-event-id], .forward-result")) {
      const destination = box.dataset.tag ?? box.dataset.destination;
      const key = box.dataset.eventId ?? box.dataset.key;
      if (destination === update.destination && keys.has(key)) {
        box.querySelector(".delivery").replaceWith(deliveryNode(update.delivery));
      }
    }
    row.dataset.outcomes = outcomesOf(hit, event).join(" ");
    filterRow(row);
  });
}

function connect() {
  const status = $("stream-status");
  const source = new EventSource("/debug/stream");
  source.onopen = () => { status.textContent = "live"; status.className = "status live"; };
  source.onerror = () => {
    const closed = source.readyState === EventSource.CLOSED;
    status.textContent = closed ? "disconnected (reload; token expired?)" : "reconnecting";
    status.className = "status down";
  };
  source.addEventListener("hit", (e) => addHit(JSON.parse(e.data)));
  source.addEventListener("delivery", (e) => applyDelivery(JSON.parse(e.data)));
}

async function refreshQueue() {
  try {
    const q = await getJSON("/admin/queue");
    $("queue-depth").textContent = q.depth;
    $("queue-leased").textContent = q.leased;
    $("queue-oldest").textContent = age(q.oldest_age_seconds);
    $("queue-dead").textContent = q.dead_letters;
    const items = q.paused.map((p) => h("li", {class: "paused-tag", "data-tag": p.tag},
      h("strong", {}, p.tag), ` ${p.reason}`, p.code !== null ? ` (code ${p.code})` : "",
      h("div", {class: "muted"}, p.message),
      h("div", {class: "muted"}, `next probe ${clock(p.probe_at)}`)));
    items.push(...q.backing_off.map((b) => h("li", {class: "backing-off-tag", "data-tag": b.tag},
      h("strong", {}, b.tag), ` backing off: ${b.reason}, ${b.failures} failed in a row`,
      h("div", {class: "muted"}, `next probe ${clock(b.retry_at)}`))));
    $("paused-tags").replaceChildren(...(items.length ? items : [h("li", {class: "none"},
      "none")]));
    $("queue-error").hidden = true;
  } catch (error) {
    $("queue-error").textContent = `queue: ${error.message}`;
    $("queue-error").hidden = false;
  }
}

let deadGeneration = 0;  // a listing fetched before a replay is stale: dropped
async function replay(body, label) {
  deadGeneration += 1;
  try {
    const result = await getJSON("/admin/dead-letters/replay", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    deadGeneration += 1;
    $("dead-status").textContent = `${label}: replayed ${result.replayed}`;
    return result.replayed;
  } catch (error) {
    $("dead-status").textContent = `replay failed: ${error.message}`;
    return -1;
  }
}

function letterNode(letter) {
  const button = h("button", {type: "button", class: "replay", "data-testid": "replay"}, "Replay");
  const node = h("li", {class: "dead-letter", "data-testid": "dead-letter", "data-id": letter.id},
    h("div", {}, h("strong", {}, letter.event_name || "(unreadable)"), ` \u00b7 ${letter.tag}`,
      button),
    letter.summary ? h("div", {class: "muted"}, letter.summary) : null,
    h("div", {class: "why"}, letter.reason, letter.code !== null ? ` \u00b7 code ${letter.code}`
      : "", letter.message ? ` \u00b7 ${letter.message}` : ""),
    h("div", {class: "muted"}, `dead ${clock(letter.dead_at)} \u00b7 attempts ${letter.attempts}`,
      letter.request_id ? ` \u00b7 request ${letter.request_id}` : "",
      letter.event_id ? ` \u00b7 event ${letter.event_id}` : ""),
    letter.event ? h("details", {}, h("summary", {}, "TikTok event"),
      h("pre", {}, pretty(letter.event))) : null,
    letter.params ? h("details", {}, h("summary", {}, "Forwarded hit"),
      h("pre", {}, pretty(letter.params))) : null);
  button.addEventListener("click", async () => {
    button.disabled = true;
    if (await replay({ids: [letter.id]}, letter.event_name || letter.id) >= 0) {
      node.remove();
      refreshQueue();
    } else {
      button.disabled = false;
    }
  });
  return node;
}

async function refreshDead() {
  const generation = deadGeneration;
  try {
    const body = await getJSON("/admin/dead-letters?limit=50");
    if (generation !== deadGeneration) return;
    const items = body.dead_letters.map(letterNode);
    $("dead-letters").replaceChildren(...(items.length ? items : [h("li", {class: "none"},
      "none")]));
  } catch (error) {
    $("dead-status").textContent = `dead letters: ${error.message}`;
  }
}

$("replay-all").addEventListener("click", async () => {
  if (await replay({all: true}, "all") >= 0) { refreshDead(); refreshQueue(); }
});
for (const id of ["filter-tag", "filter-event", "filter-outcome"]) {
  $(id).addEventListener("input", applyFilters);
}
$("filters").addEventListener("submit", (e) => e.preventDefault());
connect();
refreshQueue();
refreshDead();
setInterval(refreshQueue, 3000);
setInterval(refreshDead, 5000);
"""
