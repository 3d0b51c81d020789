"""The README's sample alerts and docs/grafana-dashboard.json ask only for series that
/metrics serves, with labels those series have: a renamed metric breaks them here, not in
an operator's silent alert."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import interfaces.http.request_metrics  # noqa: F401 - registers the API's request metrics
from application.meter import LOCKS_ACQUIRED, METRICS, PICKUP, RUN_TIME, Meter, series
from interfaces.http.metrics import PREFIX, exposition
from tests.unit.test_metrics_exposition import snapshot

ROOT = Path(__file__).resolve().parents[2]
SERIES = re.compile(r"\b(conveyor_[a-z0-9_]+)")
GROUPED = re.compile(r"\bby \(([^)]*)\)")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def served() -> dict[str, set[str]]:
    """Every conveyor_ family /metrics can serve, with its label names."""
    meter = Meter()
    meter.count(LOCKS_ACQUIRED, 1, "claim")
    meter.observe(PICKUP, 0.1, "default")
    meter.observe(RUN_TIME, 0.1, "echo")
    text = exposition(snapshot(), [], series(meter.drain())).decode()
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        labels = found.setdefault(family.name, set())
        for sample in family.samples:
            labels.update(sample.labels)
    for metric in REGISTRY.collect():
        if metric.name.startswith(PREFIX):
            found.setdefault(metric.name, set()).update(
                ("method", "path", "status_code", "app_name", "le")
            )
    for metric in METRICS:  # present before their first count, their labels as declared
        name = f"{PREFIX}_{metric.name}".removesuffix("_total")
        found.setdefault(name, set()).update(metric.labels, ("le",) if metric.buckets else ())
    return found


def family_of(name: str, known: dict[str, set[str]]) -> str | None:
    for candidate in (name, *(name.removesuffix(end) for end in SUFFIXES)):
        if candidate in known:
            return candidate
    return None


def alert_rules() -> list[dict[str, Any]]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- alerts -->", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    rules: list[dict[str, Any]] = yaml.safe_load(block)["groups"][0]["rules"]
    return rules


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


EXPRESSIONS = [rule["expr"] for rule in alert_rules()] + dashboard_exprs()


def test_the_readme_gives_three_alerts_each_with_a_name_and_a_duration() -> None:
    rules = alert_rules()
    assert [rule["alert"] for rule in rules] == [
        "ConveyorQueueFallingBehind",
        "ConveyorWorkersGone",
        "ConveyorLocksLost",
    ]
    assert all(rule.get("for") or "increase(" in rule["expr"] for rule in rules)


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_every_series_asked_for_is_served_with_the_labels_grouped_by(expr: str) -> None:
    known = served()
    names = SERIES.findall(expr)
    assert names, expr
    families = {name: family_of(name, known) for name in names}
    assert None not in families.values(), (expr, families)
    labels = set().union(*(known[family] for family in families.values() if family))
    for group in GROUPED.findall(expr):
        wanted = {label.strip() for label in group.split(",") if label.strip()}
        assert wanted <= labels, (expr, wanted - labels)


def test_a_misspelt_series_would_be_caught() -> None:
    assert family_of("conveyor_locks_losts_total", served()) is None
