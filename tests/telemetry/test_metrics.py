"""/metrics moves as hits flow and deliveries finish (issue 4, item 2)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from tests.harness import config_of, running
from tests.telemetry.helpers import HIT, run, scrape
from tiktok_gateway.delivery.holds import BackoffState, PauseState
from tiktok_gateway.errors import LineError
from tiktok_gateway.observe import HitRecord
from tiktok_gateway.queue.base import NewItem
from tiktok_gateway.tags.tiktok.mapping import DroppedEvent, MappedEvent
from tiktok_gateway.telemetry import Telemetry
from tiktok_gateway.telemetry.metrics import Children, _word

DENIED = HIT + "&gcs=G100"  # ad_storage denied: the default "respect" policy drops it
LEAVE = HIT.replace("en=page_view", "en=user_engagement")  # no trigger fires on it
BATCH = "en=page_view\r\nfoo=bar\r\nen=scroll\r\n"  # the middle line has no event name

# /metrics is on the admin listener, which answers loopback peers when no token is set.
LOOPBACK = "127.0.0.1"


def test_every_telemetry_has_its_own_registry() -> None:
    first, second = Telemetry(), Telemetry()
    assert isinstance(first.registry, CollectorRegistry)
    assert first.registry is not second.registry
    first.hits.labels("ga4", "accepted").inc()
    assert (
        second.registry.get_sample_value(
            "gateway_hits_total", {"source": "ga4", "outcome": "accepted"}
        )
        == 0.0
    )


def test_metrics_answer_in_the_prometheus_format_with_zero_series() -> None:
    async def scenario() -> None:
        async with running(peer=LOOPBACK) as gw:
            answer = await gw.admin.get("/metrics")
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/plain; version=")
            metrics = await scrape(gw.admin)
            assert metrics("gateway_hits_total", source="ga4", outcome="accepted") == 0
            assert metrics("gateway_events_dropped_total", reason="unrouted") == 0
            assert metrics("gateway_items_queued_total", kind="tiktok", destination="default") == 0
            assert metrics("gateway_destination_paused", kind="tiktok", destination="default") == 0
            assert metrics("gateway_queue_up") == 1
            assert metrics("gateway_queue_depth") == 0
            assert metrics("gateway_dead_letters") == 0
            assert metrics("gateway_delivery_in_flight") == 0

    run(scenario())


def test_hit_counters_and_queue_gauges_move_as_hits_flow() -> None:
    environ = {"GATEWAY_INGEST_TOKEN": "ingest-secret", "GATEWAY_MAX_BODY_BYTES": "1000"}

    async def scenario() -> None:
        async with running(config_of(environ), peer=LOOPBACK) as gw:
            client = gw.client
            assert (await client.get(f"/g/collect?{HIT}")).status_code == 204
            assert (await client.get(f"/g/collect?{HIT}")).status_code == 204
            metrics = await scrape(gw.admin)
            assert metrics("gateway_hits_total", source="ga4", outcome="accepted") == 2
            assert metrics("gateway_events_received_total", source="ga4") == 2
            assert metrics("gateway_items_queued_total", kind="tiktok", destination="default") == 2
            assert metrics("gateway_request_seconds_count", source="ga4") == 2
            assert metrics("gateway_queue_depth") == 2
            assert metrics("gateway_queue_oldest_age_seconds") >= 0

            await client.get(f"/g/collect?{DENIED}")
            await client.get(f"/g/collect?{LEAVE}")
            batch = await client.post("/g/collect?v=2&tid=G-1&cid=1.2", content=BATCH)
            assert batch.status_code == 400
            assert (await client.get("/g/collect?v=1&tid=G-1&en=x")).status_code == 400
            assert (await client.post("/events", json={"event_name": "x"})).status_code == 401
            too_large = await client.post(f"/g/collect?{HIT}", content=b"en=x&" + b"a" * 2000)
            assert too_large.status_code == 413
            metrics = await scrape(gw.admin)
            assert metrics("gateway_hits_total", source="ga4", outcome="accepted") == 4
            assert metrics("gateway_hits_total", source="ga4", outcome="partial") == 1
            assert metrics("gateway_hits_total", source="ga4", outcome="invalid") == 1
            assert metrics("gateway_hits_total", source="ga4", outcome="too_large") == 1
            assert metrics("gateway_hits_total", source="events", outcome="unauthorized") == 1
            assert metrics("gateway_events_dropped_total", reason="consent") == 1
            assert metrics("gateway_events_dropped_total", reason="unrouted") == 1
            assert (
                metrics("gateway_events_invalid_total", source="ga4", reason="missing_event_name")
                == 1
            )
            assert (
                metrics(
                    "gateway_hit_errors_total", source="ga4", reason="unsupported_protocol_version"
                )
                == 1
            )
            assert metrics("gateway_hit_errors_total", source="ga4", reason="body_too_large") == 1
            assert metrics("gateway_hit_errors_total", source="events", reason="unauthorized") == 1
            # 2 + the denied one + the unrouted one + 2 lines of the batch
            assert metrics("gateway_events_received_total", source="ga4") == 6
            assert metrics("gateway_items_queued_total", kind="tiktok", destination="default") == 4
            assert metrics("gateway_queue_depth") == 4
            assert metrics("gateway_request_seconds_count", source="ga4") == 7

    run(scenario())


def test_delivery_counters_after_a_drain() -> None:
    async def scenario() -> None:
        async with running(peer=LOOPBACK) as gw:
            for _ in range(3):
                await gw.client.get(f"/g/collect?{HIT}")
            assert gw.runtime.worker is not None
            await gw.runtime.worker.drain()
            metrics = await scrape(gw.admin)
            assert (
                metrics(
                    "gateway_delivery_events_total",
                    kind="tiktok",
                    destination="default",
                    outcome="delivered",
                )
                == 3
            )
            assert (
                metrics(
                    "gateway_delivery_requests_total",
                    kind="tiktok",
                    destination="default",
                    code_class="ok",
                )
                == 1
            )
            assert (
                metrics(
                    "gateway_delivery_request_seconds_count", kind="tiktok", destination="default"
                )
                == 1
            )
            assert metrics("gateway_delivery_batch_events_count", kind="tiktok") == 1
            assert metrics("gateway_delivery_batch_events_sum", kind="tiktok") == 3
            assert metrics("gateway_queue_depth") == 0
            assert metrics("gateway_queue_leased") == 0

    run(scenario())


def test_server_errors_count_as_retries_of_class_server() -> None:
    async def scenario() -> None:
        async with running(peer=LOOPBACK) as gw:  # the mounted sandbox is loopback-only
            await gw.client.get(f"/g/collect?{HIT}")
            assert (await gw.admin.post("/sandbox/outage", json={})).status_code == 200
            assert gw.runtime.worker is not None
            await gw.runtime.worker.drain()
            metrics = await scrape(gw.admin)
            assert (
                metrics(
                    "gateway_delivery_events_total",
                    kind="tiktok",
                    destination="default",
                    outcome="retry",
                )
                == 1
            )
            assert (
                metrics(
                    "gateway_delivery_requests_total",
                    kind="tiktok",
                    destination="default",
                    code_class="server",
                )
                == 1
            )
            assert metrics("gateway_queue_depth") == 1  # waiting for its retry
            assert (
                metrics.get(
                    "gateway_delivery_events_total",
                    kind="tiktok",
                    destination="default",
                    outcome="delivered",
                )
                is None
            )

    run(scenario())


def test_dead_letters_gauge_and_unreadable_items() -> None:
    async def scenario() -> None:
        async with running(peer=LOOPBACK) as gw:
            await gw.queue.put([NewItem("default", b"{not json")])
            assert gw.runtime.worker is not None
            await gw.runtime.worker.drain()
            metrics = await scrape(gw.admin)
            assert metrics("gateway_dead_letters") == 1
            assert metrics("gateway_queue_depth") == 0
            outcome = "invalid_payload"
            assert (
                metrics(
                    "gateway_delivery_events_total",
                    kind="tiktok",
                    destination="default",
                    outcome=outcome,
                )
                == 1
            )
            # never sent to TikTok: no request counted
            assert metrics.get("gateway_delivery_batch_events_count", kind="tiktok") is None

    run(scenario())


def test_paused_and_backing_off_tags_show_at_scrape_time() -> None:
    async def scenario() -> None:
        async with running(peer=LOOPBACK) as gw:
            worker = gw.runtime.worker
            assert worker is not None
            hold = worker.lanes["default"].hold
            hold.pause = PauseState("token_invalid", 40105, "bad token", 0.0, 1e12)
            metrics = await scrape(gw.admin)
            assert metrics("gateway_destination_paused", kind="tiktok", destination="default") == 1
            hold.pause = None
            assert (await scrape(gw.admin))(
                "gateway_destination_paused", kind="tiktok", destination="default"
            ) == 0
            assert (
                metrics("gateway_destination_backing_off", kind="tiktok", destination="default")
                == 0
            )
            hold.backoff = BackoffState("server_error", 3, 0.0, 1e12)
            assert (await scrape(gw.admin))(
                "gateway_destination_backing_off", kind="tiktok", destination="default"
            ) == 1

    run(scenario())


def _sample(telemetry: Telemetry, name: str, **labels: str) -> float | None:
    value: float | None = telemetry.registry.get_sample_value(name, labels)
    return value


def test_children_are_the_metrics_own_and_cleaned_once() -> None:
    telemetry = Telemetry()
    children = Children(telemetry.hit_errors, _word)
    first = children("ga4", "Not A Word!")
    assert first is telemetry.hit_errors.labels("ga4", "other")
    assert children("ga4", "Not A Word!") is first
    first.inc()
    children("ga4", "Not A Word!").inc(2)
    assert _sample(telemetry, "gateway_hit_errors_total", source="ga4", reason="other") == 3


def test_children_past_the_limit_still_count() -> None:
    telemetry = Telemetry()
    children = Children(telemetry.items_queued, limit=2)
    for round_ in range(3):
        for tag in ("a", "b", "c", "d"):
            children("tiktok", tag).inc()
        assert len(children._cache) == 2, round_
    for tag in ("a", "b", "c", "d"):
        labels = {"kind": "tiktok", "destination": tag}
        assert _sample(telemetry, "gateway_items_queued_total", **labels) == 3


def test_on_hit_counts_what_labels_would() -> None:
    """Each record's counts, through the cached children, land in the series ``labels`` names."""
    telemetry = Telemetry()
    mapped = MappedEvent("shop", "C1", None, {})
    dropped = DroppedEvent("shop", "page_view", "consent")
    errors = [LineError("missing_event_name", line=1), LineError("Odd Reason", line=2)]
    hits = [
        HitRecord("r1", "ga4", 0.0, 204, "accepted", events=[{}], outcomes=[[mapped]], queued=1),
        HitRecord(
            "r2",
            "ga4",
            0.0,
            400,
            "partial",
            events=[{}, {}, {}],
            outcomes=[[mapped, dropped], [], [mapped]],
            errors=errors,
            queued=2,
            dropped={"consent": 1},
            unrouted=1,
            duration_seconds=0.003,
        ),
        HitRecord("r3", "mp", 0.0, 403, "unauthorized", error="bad_api_secret"),
        HitRecord("r4", "Weird Source", 0.0, 400, "invalid", error="x y"),
    ]
    for _ in range(2):
        for hit in hits:
            telemetry.on_hit(hit)
    expected = {
        ("gateway_hits_total", (("source", "ga4"), ("outcome", "accepted"))): 2,
        ("gateway_hits_total", (("source", "ga4"), ("outcome", "partial"))): 2,
        ("gateway_hits_total", (("source", "mp"), ("outcome", "unauthorized"))): 2,
        ("gateway_hits_total", (("source", "other"), ("outcome", "invalid"))): 2,
        ("gateway_hit_errors_total", (("source", "mp"), ("reason", "bad_api_secret"))): 2,
        ("gateway_hit_errors_total", (("source", "other"), ("reason", "other"))): 2,
        ("gateway_events_received_total", (("source", "ga4"),)): 8,
        ("gateway_events_invalid_total", (("source", "ga4"), ("reason", "missing_event_name"))): 2,
        ("gateway_events_invalid_total", (("source", "ga4"), ("reason", "other"))): 2,
        ("gateway_items_queued_total", (("kind", "tiktok"), ("destination", "shop"))): 6,
        ("gateway_events_dropped_total", (("reason", "consent"),)): 2,
        ("gateway_events_dropped_total", (("reason", "unrouted"),)): 2,
        ("gateway_request_seconds_count", (("source", "ga4"),)): 4,
        ("gateway_request_seconds_count", (("source", "mp"),)): 2,
        ("gateway_request_seconds_count", (("source", "other"),)): 2,
        ("gateway_request_seconds_sum", (("source", "ga4"),)): 0.006,
    }
    for (name, labels), value in expected.items():
        assert _sample(telemetry, name, **dict(labels)) == pytest.approx(value), (name, labels)
