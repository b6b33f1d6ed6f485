"""Metrics of several worker processes (``serve --workers``): each process counts in files of
one folder, and a scrape by any of them adds them up (prometheus_client's multiprocess mode).

Each worker here is a real process (the mode is chosen when prometheus_client is imported);
the scrape is this test's, which reads the files as a worker's scrape would."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

from tiktok_gateway.queue.memory import MemoryQueue
from tiktok_gateway.telemetry import Telemetry

WORKER = """
import os, sys
from pathlib import Path
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
from tiktok_gateway.telemetry import Telemetry

telemetry = Telemetry(Path(sys.argv[1]))
hits, in_flight, paused = (int(value) for value in sys.argv[2:5])
telemetry.hits.labels("ga4", "accepted").inc(hits)
telemetry.request_seconds.labels("ga4").observe(0.002)
telemetry.in_flight.set(in_flight)
telemetry.destination_paused.labels("tiktok", "shop").set(paused)
print(os.getpid())
"""


def _worker(folder: Path, hits: int, in_flight: int, paused: int) -> int:
    command = [sys.executable, "-c", WORKER, str(folder), str(hits), str(in_flight), str(paused)]
    return int(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def _samples(telemetry: Telemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = asyncio.run(telemetry.scrape(MemoryQueue(), None, {})).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counters_add_up_over_the_workers_and_gauges_combine_as_documented(
    tmp_path: Path,
) -> None:
    first = _worker(tmp_path, hits=3, in_flight=2, paused=0)
    second = _worker(tmp_path, hits=5, in_flight=1, paused=1)
    samples = _samples(Telemetry(tmp_path))
    accepted = ("gateway_hits_total", (("outcome", "accepted"), ("source", "ga4")))
    assert samples[accepted] == 8
    assert samples[("gateway_request_seconds_count", (("source", "ga4"),))] == 2
    assert samples[("gateway_delivery_in_flight", ())] == 3  # livesum
    paused = ("gateway_destination_paused", (("destination", "shop"), ("kind", "tiktok")))
    assert samples[paused] == 1  # livemax: paused in one worker
    assert not any("pid" in dict(labels) for _, labels in samples)  # one series, not one a PID

    # The supervisor reaps the second worker: its live gauges go, its counts stay.
    multiprocess.mark_process_dead(second, str(tmp_path))  # type: ignore[no-untyped-call]
    samples = _samples(Telemetry(tmp_path))
    assert samples[accepted] == 8
    assert samples[("gateway_delivery_in_flight", ())] == 2
    assert samples[paused] == 0
    assert first != second
