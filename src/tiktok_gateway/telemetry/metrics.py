"""Prometheus metrics of the gateway, and the log line of every hit and delivery (DESIGN habit 11).

``Telemetry`` is an observer (``observe.py``): it counts each ``HitRecord`` and
``DeliveryResult`` and logs one line for each. It owns its own ``CollectorRegistry`` (never the
process-wide one: tests run many apps in one process). Gauges that describe a state (queue depth,
paused tags) are refreshed when ``/metrics`` is scraped.

Labels stay low-cardinality: sources, outcomes and reasons are fixed words of the code, tags are
names from the configuration; never ids, URLs or raw error text. Every metric is described in
``docs/metrics.md`` (a test compares it with ``Telemetry().catalog``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

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
from starlette.requests import Request
from starlette.responses import Response

from tiktok_gateway.delivery.ledger import DeliveryResult
from tiktok_gateway.endpoints.access import runtime_of
from tiktok_gateway.observe import HitRecord
from tiktok_gateway.queue.base import stats_within_timeout
from tiktok_gateway.tags.tiktok.classify import Rule, rule_for_code, rule_for_status
from tiktok_gateway.tags.tiktok.mapping import DroppedEvent
from tiktok_gateway.telemetry.logs import register_secrets

if TYPE_CHECKING:
    from tiktok_gateway.runtime import Runtime

__all__ = ["CODE_CLASSES", "Children", "MetricInfo", "Telemetry", "code_class", "metrics_endpoint"]

log = logging.getLogger(__name__)

SOURCES = ("ga4", "mp", "events")
HIT_OUTCOMES = ("accepted", "partial", "invalid", "too_large", "unauthorized", "unavailable")
DROP_REASONS = ("consent", "invalid_event_name", "missing_event_name", "unmapped_event", "unrouted")
CODE_CLASSES = (
    "ok",
    "partial",
    "invalid",
    "too_large",
    "auth",
    "throttled",
    "server",
    "transport",
    "unexpected",
    "unknown",
)
# Delivery outcomes logged as warnings: the events were not delivered (yet).
_WARN_OUTCOMES = frozenset(
    {
        "retry",
        "paused",
        "rejected",
        "expired",
        "retries_exhausted",
        "invalid_payload",
        "unknown_tag",
    }
)

HIT_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REQUEST_SECONDS_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_EVENTS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

# A label taken from a record must look like a stable reason word, or it becomes "other".
_WORD = re.compile(r"[a-z0-9_]{1,48}")
_HTTP_STATUS = re.compile(r"HTTP (\d{3})\b")


def _word(value: str) -> str:
    return value if _WORD.fullmatch(value) else "other"


M = TypeVar("M", bound=MetricWrapperBase)

# Children kept per metric by ``Children``; past it, lookups go to ``labels`` every time.
CHILDREN_LIMIT = 1024


class Children(Generic[M]):
    """The labelled children of one metric, each looked up through ``labels`` only once.

    ``children(*raw)`` is ``metric.labels(*(clean(v) for v in raw))``: the same child, so the
    same series and values, without ``labels``' validation, string conversion and lock and
    without ``clean`` (the ``_word`` regex) on every hit. Keyed by the raw values; at most
    ``limit`` are kept (label values are fixed words and configured tag names, so a handful
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


def _class_of_rule(rule: Rule, code: int | None, status: int | None) -> str:
    if rule.kind == "pause":
        return "auth"
    if rule.kind == "split":
        return "too_large"
    if rule.kind in ("delivered", "partial"):
        return "unexpected"  # TikTok's success code on an answer that did not deliver
    if rule.reason in ("throttled", "too_early"):
        return "throttled"
    if rule.reason in ("server_error", "maintenance", "unknown_server_code"):
        return "server"
    if rule.reason == "timeout":
        return "transport"
    if rule.kind in ("reject_event", "reject_batch"):
        return "invalid"
    if (code is not None and 40000 <= code < 50000) or (status and 400 <= status < 500):
        return "invalid"
    return "unknown"


def code_class(result: DeliveryResult) -> str:
    """The class of TikTok's answer to a request (``CODE_CLASSES``, see docs/metrics.md).

    From the result's TikTok ``code`` (the same table as ``classify``), else the HTTP status
    named in its message (``HTTP 503``), else ``transport`` (no answer: timeout, connection)."""
    kind = result.outcome_kind
    if kind == "delivered":
        return "ok"
    if kind == "partial":
        return "partial"
    if result.code is not None:
        return _class_of_rule(rule_for_code(result.code), result.code, None)
    match = _HTTP_STATUS.match(result.message)
    if match is None:
        return "transport"
    status = int(match.group(1))
    if 200 <= status < 300:
        return "unexpected"  # 2xx without TikTok's answer: a proxy or a truncated body
    return _class_of_rule(rule_for_status(status), None, status)


class Telemetry:
    """Observer that counts hits and deliveries in Prometheus metrics and logs one line each.

    ``set_secrets`` tells it the configured secret values, masked in every log line."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.catalog: list[MetricInfo] = []
        self._log = structlog.get_logger("tiktok_gateway.telemetry")

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
        self.events_mapped = self._counter(
            "gateway_events_mapped", "TikTok events mapped and queued, by tag.", ("tag",)
        )
        self.events_dropped = self._counter(
            "gateway_events_dropped", "Events not queued for a tag, by reason.", ("reason",)
        )
        # -- queue (refreshed at scrape time) --
        self.queue_up = self._gauge("gateway_queue_up", "1 when the queue answered the scrape.")
        self.queue_depth = self._gauge("gateway_queue_depth", "Events not yet delivered.")
        self.queue_leased = self._gauge(
            "gateway_queue_leased", "Events held by the delivery worker now."
        )
        self.queue_oldest_age = self._gauge(
            "gateway_queue_oldest_age_seconds", "Age of the oldest undelivered event."
        )
        self.dead_letters = self._gauge("gateway_dead_letters", "Events in the dead letters.")
        # -- delivery --
        self.delivery_events = self._counter(
            "gateway_delivery_events",
            "Events by what their delivery attempt ended with, by tag.",
            ("tag", "outcome"),
        )
        self.delivery_requests = self._counter(
            "gateway_delivery_requests",
            "Requests to TikTok by the class of the answer, by tag.",
            ("tag", "code_class"),
        )
        self.delivery_seconds = self._histogram(
            "gateway_delivery_request_seconds",
            "Latency of requests to TikTok, by tag.",
            ("tag",),
            REQUEST_SECONDS_BUCKETS,
        )
        self.batch_events = self._histogram(
            "gateway_delivery_batch_events",
            "Events per request to TikTok.",
            (),
            BATCH_EVENTS_BUCKETS,
        )
        self.in_flight = self._gauge(
            "gateway_delivery_in_flight", "Batches being sent to TikTok now."
        )
        self.tag_paused = self._gauge(
            "gateway_tag_paused", "1 while TikTok refuses a tag's token or permission.", ("tag",)
        )
        self.tag_backing_off = self._gauge(
            "gateway_tag_backing_off",
            "1 while a tag waits after TikTok or the network failed its requests.",
            ("tag",),
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
        self._events_mapped = Children(self.events_mapped)  # tag names, from the configuration
        self._events_dropped = Children(self.events_dropped, _word)
        self._delivery_events = Children(self.delivery_events)  # (tag, a _word)
        self._delivery_requests = Children(self.delivery_requests)
        self._delivery_seconds = Children(self.delivery_seconds)

    # -- registration ---------------------------------------------------------------------------

    def _note(self, name: str, kind: str, labels: tuple[str, ...]) -> None:
        self.catalog.append(MetricInfo(name, kind, labels))

    def _counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        self._note(f"{name}_total", "counter", labels)
        return Counter(name, doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        self._note(name, "gauge", labels)
        return Gauge(name, doc, labels, registry=self.registry)

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
        mapped: dict[str, int] = {}  # a plain dict: building a collections.Counter costs more
        for outcomes in hit.outcomes:
            for outcome in outcomes:
                if not isinstance(outcome, DroppedEvent):
                    mapped[outcome.tag] = mapped.get(outcome.tag, 0) + 1
        for tag, count in mapped.items():
            self._events_mapped(tag).inc(count)
        for reason, count in hit.dropped.items():
            self._events_dropped(reason).inc(count)
        if hit.unrouted:
            self._events_dropped("unrouted").inc(hit.unrouted)
        if structlog.is_configured():
            self._log.info(
                "hit",
                request_id=hit.request_id,
                source=hit.source,
                status=hit.status,
                outcome=hit.outcome,
                events=len(hit.events),
                queued=hit.queued,
                dropped=hit.dropped,
                unrouted=hit.unrouted,
                errors=len(hit.errors),
                error=hit.error or None,
                ms=round(hit.duration_seconds * 1000, 3),
            )

    def on_delivery(self, result: DeliveryResult) -> None:
        tag, kind = result.tag, _word(result.outcome_kind)
        self._delivery_events(tag, kind).inc(result.events)
        code_cls = None
        if result.sent:
            code_cls = code_class(result)
            self._delivery_requests(tag, code_cls).inc()
            self._delivery_seconds(tag).observe(result.latency_seconds)
            self.batch_events.observe(result.events)
        if structlog.is_configured():
            emit = self._log.warning if kind in _WARN_OUTCOMES else self._log.info
            emit(
                "delivery",
                tag=tag,
                outcome=result.outcome_kind,
                events=result.events,
                code=result.code,
                code_class=code_cls,
                message=result.message or None,  # scrubbed, as every field, by the log chain
                tiktok_request_id=result.request_id or None,
                latency_ms=round(result.latency_seconds * 1000, 3) if result.sent else None,
            )

    # -- scraping -------------------------------------------------------------------------------

    async def refresh(self, runtime: Runtime) -> None:
        """Set the state gauges from the queue and the worker."""
        try:
            stats = await stats_within_timeout(runtime.queue)
        except Exception as exc:  # a failing queue must not fail the scrape: queue_up says it
            log.warning("queue stats failed for /metrics: %s", type(exc).__name__)
            self.queue_up.set(0)
        else:
            self.queue_up.set(1)
            self.queue_depth.set(stats.depth)
            self.queue_leased.set(stats.leased)
            self.queue_oldest_age.set(stats.oldest_age)
            self.dead_letters.set(stats.dead)
        worker = runtime.worker
        paused = set(worker.paused) if worker is not None else set()
        backing_off = set(worker.backing_off) if worker is not None else set()
        self.in_flight.set(worker.in_flight if worker is not None else 0)
        for tag in set(runtime.delivery_tags) | paused | backing_off:
            self.tag_paused.labels(tag).set(1 if tag in paused else 0)
            self.tag_backing_off.labels(tag).set(1 if tag in backing_off else 0)
            self.events_mapped.labels(tag)  # every configured tag shows, 0 until it maps one

    async def scrape(self, runtime: Runtime) -> bytes:
        """The registry in the Prometheus text format, gauges refreshed."""
        await self.refresh(runtime)
        return generate_latest(self.registry)


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics`` in the Prometheus text format."""
    runtime = runtime_of(request)
    body = await runtime.telemetry.scrape(runtime)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
