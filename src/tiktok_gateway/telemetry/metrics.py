"""Prometheus metrics of the gateway, and the log line of every hit and delivery (DESIGN habit 11).

``Telemetry`` is an observer (``observe.py``): it counts each ``HitRecord`` and
``DeliveryResult`` and logs one line for each. It owns its own ``CollectorRegistry`` (never the
process-wide one: tests run many apps in one process). Gauges that describe a state (queue depth,
paused destinations) are refreshed when ``/metrics`` is scraped.

Several worker processes (``serve --workers N``): every process counts in memory-mapped files
in one folder (prometheus_client's multiprocess mode, switched on by ``PROMETHEUS_MULTIPROC_DIR``
before the library is imported; ``cli/workers.py`` sets it and wipes the folder at start), and
``/metrics`` answers from all of them, whichever process takes the scrape. Counters and
histograms add up over every process that ever ran since the start (a dead worker's counts stay);
gauges say how they combine (``multiprocess_mode``): the queue's, read from the shared queue at
scrape time, are the answering process's (``livemostrecent``), the delivery worker's add up
(``livesum``: batches in flight) or take the largest (``livemax``: a destination paused or
backing off in any process). Each process publishes its own state every second
(``publish_every``), not only when it happens to take a scrape.

Labels stay low-cardinality: sources, outcomes, reasons and causes are fixed words of the code,
kinds and destinations are names from the code and the configuration; never ids, URLs or raw
error text. Every metric is described in
``docs/metrics.md`` (a test compares it with ``Telemetry().catalog``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, TypeVar

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector

from tiktok_gateway.delivery.ledger import DeliveryResult
from tiktok_gateway.delivery.worker import DeliveryWorker
from tiktok_gateway.observe import HitRecord
from tiktok_gateway.queue.admission import REASONS as REFUSAL_REASONS
from tiktok_gateway.queue.admission import Admission
from tiktok_gateway.queue.base import Queue, stats_within_timeout
from tiktok_gateway.telemetry.logs import register_secrets, scrub_text, write_json_line

__all__ = ["CONTENT_TYPE_LATEST", "Children", "MetricInfo", "Telemetry"]

log = logging.getLogger(__name__)

_LOGGER = "tiktok_gateway.telemetry"  # the logger of the hit and delivery lines

SOURCES = ("ga4", "mp", "events")
HIT_OUTCOMES = ("accepted", "partial", "invalid", "too_large", "unauthorized", "unavailable")
DROP_REASONS = ("consent", "invalid_event_name", "missing_event_name", "unmapped_event", "unrouted")
# Delivery outcomes logged as warnings: the events were not delivered (yet).
_WARN_OUTCOMES = frozenset(
    {
        "retry",
        "paused",
        "rejected",
        "expired",
        "retries_exhausted",
        "invalid_payload",
        "unknown_destination",
    }
)

HIT_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REQUEST_SECONDS_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_EVENTS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

# A label taken from a record must look like a stable reason word, or it becomes "other".
_WORD = re.compile(r"[a-z0-9_]{1,48}")


def _word(value: str) -> str:
    return value if _WORD.fullmatch(value) else "other"


M = TypeVar("M", bound=MetricWrapperBase)
GaugeMode = Literal["livemostrecent", "livesum", "livemax"]

# Seconds between two publications of a worker process's own state (``publish_every``).
PUBLISH_SECONDS = 1.0

# Children kept per metric by ``Children``; past it, lookups go to ``labels`` every time.
CHILDREN_LIMIT = 1024


class Children(Generic[M]):
    """The labelled children of one metric, each looked up through ``labels`` only once.

    ``children(*raw)`` is ``metric.labels(*(clean(v) for v in raw))``: the same child, so the
    same series and values, without ``labels``' validation, string conversion and lock and
    without ``clean`` (the ``_word`` regex) on every hit. Keyed by the raw values; at most
    ``limit`` are kept (label values are fixed words and configured destination names, so a handful
    are ever seen; the limit only stops odd input from growing the dict). Children are never
    removed from the metrics here; one that was would go on being counted but not shown.
    """

    __slots__ = ("_cache", "_clean", "_limit", "_metric")

    def __init__(
        self,
        metric: M,
        clean: Callable[[str], str] = str,
        limit: int = CHILDREN_LIMIT,
    ) -> None:
        self._metric = metric
        self._clean = clean
        self._limit = limit
        self._cache: dict[tuple[str, ...], M] = {}

    def __call__(self, *raw: str) -> M:
        child = self._cache.get(raw)
        if child is None:
            child = self._metric.labels(*map(self._clean, raw))
            if len(self._cache) < self._limit:
                self._cache[raw] = child
        return child


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """A registered metric as exposed: name (counters with ``_total``), type and label names."""

    name: str
    type: str
    labels: tuple[str, ...]


class Telemetry:
    """Observer that counts hits and deliveries in Prometheus metrics and logs one line each.

    ``set_secrets`` tells it the configured secret values, masked in every log line.
    ``multiprocess_dir``: the folder every worker process counts in (module docstring); the
    scrape then reads all of them. ``None``: this process's registry alone."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._exposed = self.registry
        if multiprocess_dir is not None:
            self._exposed = CollectorRegistry()
            MultiProcessCollector(  # type: ignore[no-untyped-call]
                self._exposed, path=str(multiprocess_dir)
            )
        self.catalog: list[MetricInfo] = []
        self._log = structlog.get_logger(_LOGGER)

        # -- hits (ingest) --
        self.hits = self._counter(
            "gateway_hits", "Ingest requests by source and outcome.", ("source", "outcome")
        )
        self.hit_errors = self._counter(
            "gateway_hit_errors",
            "Ingest requests refused as a whole, by source and reason.",
            ("source", "reason"),
        )
        self.request_seconds = self._histogram(
            "gateway_request_seconds",
            "Time to answer an ingest request (events committed), by source.",
            ("source",),
            HIT_SECONDS_BUCKETS,
        )
        self.events_received = self._counter(
            "gateway_events_received", "Events parsed from ingest requests.", ("source",)
        )
        self.events_invalid = self._counter(
            "gateway_events_invalid",
            "Event lines or entries that did not parse (the request's others went on).",
            ("source", "reason"),
        )
        self.items_queued = self._counter(
            "gateway_items_queued",
            "Items committed to the queue for a destination (a TikTok event per tag that mapped"
            " it, a GA4 forward per hit).",
            ("kind", "destination"),
        )
        self.events_dropped = self._counter(
            "gateway_events_dropped", "Events not queued for a TikTok tag, by reason.", ("reason",)
        )
        self.not_forwarded = self._counter(
            "gateway_hits_not_forwarded",
            "Hits a forwarding destination (GA4) did not queue, by reason.",
            ("kind", "destination", "reason"),
        )
        # -- queue (refreshed at scrape time) --
        self.queue_up = self._gauge("gateway_queue_up", "1 when the queue answered the scrape.")
        self.queue_depth = self._gauge("gateway_queue_depth", "Items not yet delivered.")
        self.queue_leased = self._gauge(
            "gateway_queue_leased", "Items held by the delivery workers now."
        )
        self.queue_oldest_age = self._gauge(
            "gateway_queue_oldest_age_seconds", "Age of the oldest undelivered item."
        )
        self.dead_letters = self._gauge("gateway_dead_letters", "Items in the dead letters.")
        self.queue_failures = self._counter(
            "gateway_queue_failures",
            "Queue calls of the delivery worker that failed: the queue could not be reached.",
        )
        self._queue_failures_seen = 0
        self.queue_refusals = self._counter(
            "gateway_queue_refusals",
            "Ingest requests refused (503) because the queue is full or cannot be written.",
            ("reason",),
        )
        for reason in REFUSAL_REASONS:
            self.queue_refusals.labels(reason)
        self._refusals_seen: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
        self.queue_bytes = self._gauge(
            "gateway_queue_bytes", "Bytes the queue's storage holds (SQLite; 0 for Redis)."
        )
        # -- delivery --
        self.delivery_events = self._counter(
            "gateway_delivery_events",
            "Items by what their delivery attempt ended with, by destination.",
            ("kind", "destination", "outcome"),
        )
        self.delivery_requests = self._counter(
            "gateway_delivery_requests",
            "Requests to a destination by the class of the answer.",
            ("kind", "destination", "code_class"),
        )
        self.delivery_seconds = self._histogram(
            "gateway_delivery_request_seconds",
            "Latency of requests to a destination.",
            ("kind", "destination"),
            REQUEST_SECONDS_BUCKETS,
        )
        self.batch_events = self._histogram(
            "gateway_delivery_batch_events",
            "Items per request to a destination.",
            ("kind",),
            BATCH_EVENTS_BUCKETS,
        )
        self.in_flight = self._gauge(
            "gateway_delivery_in_flight",
            "Batches being sent to the destinations now.",
            mode="livesum",
        )
        self.destination_paused = self._gauge(
            "gateway_destination_paused",
            "1 while a destination refuses its credentials or permission (paused).",
            ("kind", "destination"),
            mode="livemax",
        )
        self.destination_backing_off = self._gauge(
            "gateway_destination_backing_off",
            "1 while a destination waits after it (or the network) failed its requests.",
            ("kind", "destination"),
            mode="livemax",
        )
        for source in SOURCES:
            self.events_received.labels(source)
            for outcome in HIT_OUTCOMES:
                self.hits.labels(source, outcome)
        for reason in DROP_REASONS:
            self.events_dropped.labels(reason)
        # The children the observer methods count in, looked up once per label values.
        self._hits = Children(self.hits, _word)
        self._hit_errors = Children(self.hit_errors, _word)
        self._request_seconds = Children(self.request_seconds, _word)
        self._events_received = Children(self.events_received, _word)
        self._events_invalid = Children(self.events_invalid, _word)
        # Kinds and destination names come from the code and the configuration; reasons are
        # passed through _word.
        self._items_queued = Children(self.items_queued)
        self._events_dropped = Children(self.events_dropped, _word)
        self._not_forwarded = Children(self.not_forwarded, _word)
        self._delivery_events = Children(self.delivery_events)  # (kind, destination, a _word)
        self._delivery_requests = Children(self.delivery_requests)
        self._delivery_seconds = Children(self.delivery_seconds)
        self._batch_events = Children(self.batch_events)

    # -- registration ---------------------------------------------------------------------------

    def _note(self, name: str, kind: str, labels: tuple[str, ...]) -> None:
        self.catalog.append(MetricInfo(name, kind, labels))

    def _counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        self._note(f"{name}_total", "counter", labels)
        return Counter(name, doc, labels, registry=self.registry)

    def _gauge(
        self,
        name: str,
        doc: str,
        labels: tuple[str, ...] = (),
        mode: GaugeMode = "livemostrecent",
    ) -> Gauge:
        """A gauge; ``mode``: how several processes' values combine (module docstring)."""
        self._note(name, "gauge", labels)
        return Gauge(name, doc, labels, registry=self.registry, multiprocess_mode=mode)

    def _histogram(
        self, name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> Histogram:
        self._note(name, "histogram", labels)
        return Histogram(name, doc, labels, registry=self.registry, buckets=buckets)

    # -- configuration --------------------------------------------------------------------------

    def set_secrets(self, secrets: Iterable[str]) -> None:
        """The configured secret values: masked in every log line (TikTok's messages included)."""
        register_secrets(secrets)

    # -- the observer ---------------------------------------------------------------------------

    def on_hit(self, hit: HitRecord) -> None:
        source = hit.source
        self._hits(source, hit.outcome).inc()
        self._request_seconds(source).observe(hit.duration_seconds)
        if hit.error:
            self._hit_errors(source, hit.error).inc()
        if hit.events:
            self._events_received(source).inc(len(hit.events))
        for error in hit.errors:
            self._events_invalid(source, error.reason).inc()
        queued: dict[tuple[str, str], int] = {}  # a plain dict: a collections.Counter costs more
        for placements in hit.outcomes:
            for placement in placements:
                if placement.key is not None:
                    where = (placement.kind, placement.destination)
                    queued[where] = queued.get(where, 0) + 1
        for forward in hit.forwards:
            if forward.key is not None:
                where = (forward.kind, forward.destination)
                queued[where] = queued.get(where, 0) + 1
            else:
                self._not_forwarded(forward.kind, forward.destination, forward.reason or "").inc()
        for (kind, destination), count in queued.items():
            self._items_queued(kind, destination).inc(count)
        for reason, count in hit.dropped.items():
            self._events_dropped(reason).inc(count)
        if hit.unrouted:
            self._events_dropped("unrouted").inc(hit.unrouted)
        if structlog.is_configured():
            fields = {
                "request_id": hit.request_id,
                "source": hit.source,
                "status": hit.status,
                "outcome": hit.outcome,
                "events": len(hit.events),
                "queued": hit.queued,
                "dropped": hit.dropped,
                "unrouted": hit.unrouted,
                "forwards": {f.destination: f.reason or "queued" for f in hit.forwards} or None,
                "errors": len(hit.errors),
                "error": hit.error or None,
                "ms": round(hit.duration_seconds * 1000, 3),
            }
            # Every field is the gateway's own (ids, counts, reason words, destination names).
            if not write_json_line(_LOGGER, logging.INFO, "hit", fields):
                self._log.info("hit", **fields)

    def on_delivery(self, result: DeliveryResult) -> None:
        kind, destination = result.kind, result.destination
        outcome = _word(result.outcome_kind)
        self._delivery_events(kind, destination, outcome).inc(result.events)
        if result.sent:
            self._delivery_requests(kind, destination, result.cause or "unknown").inc()
            self._delivery_seconds(kind, destination).observe(result.latency_seconds)
            self._batch_events(kind).observe(result.events)
        if structlog.is_configured():
            fields = {
                "destination": destination,
                "kind": kind,
                "outcome": result.outcome_kind,
                "events": result.events,
                "code": result.code,
                "code_class": result.cause if result.sent else None,
                # The destination's own words: scrubbed (secrets, addresses, long numbers).
                "message": scrub_text(result.message) if result.message else None,
                "destination_request_id": result.request_id or None,
                "latency_ms": round(result.latency_seconds * 1000, 3) if result.sent else None,
            }
            level = logging.WARNING if outcome in _WARN_OUTCOMES else logging.INFO
            if not write_json_line(_LOGGER, level, "delivery", fields):
                self._log.log(level, "delivery", **fields)

    # -- scraping -------------------------------------------------------------------------------

    def publish(
        self,
        worker: DeliveryWorker | None,
        kinds: Mapping[str, str],
        admission: Admission | None = None,
    ) -> None:
        """Bring this process's own numbers into the metrics: the refusals the admission check
        and the queue failures the worker counted (the counters catch up), the batches in
        flight, which destinations are paused or backing off; ``kinds`` maps every configured
        destination to its kind."""
        if admission is not None:  # it counts; the counter catches up here, as queue_failures
            for reason, count in admission.refusals.items():
                self.queue_refusals.labels(reason).inc(count - self._refusals_seen[reason])
                self._refusals_seen[reason] = count
        if worker is not None:  # the worker counts; the counter catches up at each scrape
            self.queue_failures.inc(worker.health.failures - self._queue_failures_seen)
            self._queue_failures_seen = worker.health.failures
        paused = set(worker.paused) if worker is not None else set()
        backing_off = set(worker.backing_off) if worker is not None else set()
        self.in_flight.set(worker.in_flight if worker is not None else 0)
        for destination, kind in kinds.items():
            self.destination_paused.labels(kind, destination).set(destination in paused)
            self.destination_backing_off.labels(kind, destination).set(destination in backing_off)
            # every configured destination shows, 0 until it queues one
            self.items_queued.labels(kind, destination)

    async def publish_every(
        self,
        worker: DeliveryWorker | None,
        kinds: Mapping[str, str],
        admission: Admission | None = None,
        seconds: float = PUBLISH_SECONDS,
    ) -> None:
        """``publish`` every ``seconds`` until cancelled: with several worker processes, a
        scrape is answered by one of them, and the others' state must be in the files too."""
        while True:
            self.publish(worker, kinds, admission)
            await asyncio.sleep(seconds)

    async def refresh(
        self,
        queue: Queue,
        worker: DeliveryWorker | None,
        kinds: Mapping[str, str],
        admission: Admission | None = None,
    ) -> None:
        """Set the state gauges from the queue, the worker and the admission check (this
        process's: ``publish``; the queue's, shared by every process, read now)."""
        self.publish(worker, kinds, admission)
        if admission is not None:
            self.queue_bytes.set(admission.bytes)
        try:
            stats = await stats_within_timeout(queue)
        except Exception as exc:  # a failing queue must not fail the scrape: queue_up says it
            log.warning("queue stats failed for /metrics: %s", type(exc).__name__)
            self.queue_up.set(0)
        else:
            self.queue_up.set(1)
            self.queue_depth.set(stats.depth)
            self.queue_leased.set(stats.leased)
            self.queue_oldest_age.set(stats.oldest_age)
            self.dead_letters.set(stats.dead)

    async def scrape(
        self,
        queue: Queue,
        worker: DeliveryWorker | None,
        kinds: Mapping[str, str],
        admission: Admission | None = None,
    ) -> bytes:
        """The registry in the Prometheus text format, gauges refreshed; with several worker
        processes, every process's counts (module docstring)."""
        await self.refresh(queue, worker, kinds, admission)
        return generate_latest(self._exposed)
