"""Reading /metrics and log lines in tests."""

from __future__ import annotations

import json
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import HIT, run

__all__ = ["HIT", "Samples", "json_lines", "run", "scrape"]


class Samples:
    """The samples of one /metrics answer, looked up by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self._values[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def get(self, name: str, **labels: str) -> float | None:
        return self._values.get((name, frozenset(labels.items())))

    def __call__(self, name: str, **labels: str) -> float:
        """The value; a missing series is an error (0 is a value, absence is a bug)."""
        value = self.get(name, **labels)
        assert value is not None, f"no sample {name}{labels}"
        return value


async def scrape(client: httpx.AsyncClient) -> Samples:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    return Samples(answer.text)


def json_lines(text: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines() if line]
    return lines
