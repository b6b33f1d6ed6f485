"""Redis killed for 3 s under two gateways' load (issue 14): the gateways wait instead of
spinning, say so in a few lines, and deliver every hit they acknowledged."""

from __future__ import annotations

from pathlib import Path

from tests.system.outage import run_outage


def test_a_redis_outage_costs_a_few_log_lines_and_no_acknowledged_event(tmp_path: Path) -> None:
    report = run_outage(tmp_path, outage=3.0)
    assert report.accepted > 100  # hits flowed before and after
    assert report.refused > 0  # and were refused (503) while Redis was gone
    assert report.lost == set()
    for lines, tracebacks, cpu in zip(report.lines, report.tracebacks, report.cpu, strict=True):
        # Before: about 850 warning lines a second, each with a traceback, and a busy core.
        assert lines <= 30, report
        assert tracebacks <= 5, report
        assert cpu < 0.5, report
