"""docs/metrics.md describes exactly the metrics the gateway registers (DESIGN habit 11)."""

from __future__ import annotations

import re
from pathlib import Path

from tiktok_gateway.telemetry import Telemetry

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
HEADING = re.compile(r"^### `(?P<name>[a-z_:]+)`\s*$", re.MULTILINE)
TYPE = re.compile(r"^- type: (?P<type>counter|gauge|histogram)\b", re.MULTILINE)
LABELS = re.compile(r"^- labels: (?P<labels>.+)$", re.MULTILINE)


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Metric name -> (type, label names) as written in the doc."""
    text = DOC.read_text(encoding="utf-8")
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    headings = list(HEADING.finditer(text))
    for heading, after in zip(headings, [*headings[1:], None], strict=True):
        section = text[heading.end() : after.start() if after else len(text)]
        kind, labels = TYPE.search(section), LABELS.search(section)
        name = heading["name"]
        assert kind is not None, f"{name}: no '- type:' line in docs/metrics.md"
        assert labels is not None, f"{name}: no '- labels:' line in docs/metrics.md"
        names = tuple(re.findall(r"`([a-z_]+)`", labels["labels"]))
        assert name not in found, f"{name} is documented twice"
        found[name] = (kind["type"], names)
    return found


def registered(telemetry: Telemetry) -> dict[str, str]:
    """Exposed metric name -> type, read from the registry itself."""
    names: dict[str, str] = {}
    for family in telemetry.registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        names[family.name + suffix] = family.type
    return names


def test_every_registered_metric_is_documented_and_nothing_else() -> None:
    exposed = registered(Telemetry())
    doc = documented()
    missing = sorted(set(exposed) - set(doc))
    extra = sorted(set(doc) - set(exposed))
    assert not missing, f"metrics missing from docs/metrics.md: {missing}"
    assert not extra, f"docs/metrics.md lists metrics that do not exist: {extra}"
    for name, kind in exposed.items():
        assert doc[name][0] == kind, f"{name}: docs say {doc[name][0]}, registry says {kind}"


def test_documented_labels_match_the_registered_ones() -> None:
    telemetry = Telemetry()
    doc = documented()
    assert {info.name for info in telemetry.catalog} == set(registered(telemetry))
    for info in telemetry.catalog:
        assert doc[info.name][1] == info.labels, f"{info.name}: labels differ from the doc"


def test_labels_are_never_ids_or_urls() -> None:
    allowed = {"source", "outcome", "reason", "kind", "destination", "code_class"}
    for info in Telemetry().catalog:
        assert set(info.labels) <= allowed, info
