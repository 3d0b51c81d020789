"""What workers count for the operators' alerts: locks taken, denied, renewed and lost,
fenced outcomes refused, stalls recovered, pickup latency, run time, Redis round trips.

A worker counts into its Meter and hands the increments over with each heartbeat; the store
adds them to the deployment's totals, which /metrics reads (whichever API is scraped, the
figures are every worker's, and they outlive the worker that counted them). Every label's
values are bounded: queue names are the configured queues, task names the registered types,
the others a fixed set.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SEPARATOR = "|"  # between a field's parts: metric, label values, bucket


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # a histogram's upper bounds (seconds); () for a counter

    @property
    def is_histogram(self) -> bool:
        return bool(self.buckets)


_FAST = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_SLOW = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

LOCKS_ACQUIRED = Metric(
    "locks_acquired_total",
    "Task locks taken; via=claim when the queue's Redis took it with the claim",
    ("via",),
)
LOCKS_DENIED = Metric(
    "locks_denied_total", "Tasks put back because their lock was held elsewhere (no attempt spent)"
)
LOCK_RENEWALS = Metric(
    "lock_renewals_total", "Lease and lock renewals of running tasks, by result", ("result",)
)
LOCKS_LOST = Metric(
    "locks_lost_total", "Executions stopped because their lease or lock was lost: nothing recorded"
)
FENCING_REFUSALS = Metric(
    "fencing_refusals_total",
    "Outcomes and fenced writes refused: the execution no longer held the task",
    ("what",),
)
STALLS_RECOVERED = Metric(
    "stalls_recovered_total", "Tasks whose lease ran out, recovered by a worker", ("queue",)
)
PICKUP = Metric("pickup_latency_seconds", "From a task's due time to its start", ("queue",), _SLOW)
RUN_TIME = Metric("task_run_seconds", "Handler run time, by task type", ("task_name",), _SLOW)
REDIS_ROUND_TRIP = Metric(
    "redis_round_trip_seconds", "A worker's round trip to the queue's Redis (its heartbeat)",
    buckets=_FAST,
)  # fmt: skip

METRICS = (LOCKS_ACQUIRED, LOCKS_DENIED, LOCK_RENEWALS, LOCKS_LOST, FENCING_REFUSALS,
           STALLS_RECOVERED, PICKUP, RUN_TIME, REDIS_ROUND_TRIP)  # fmt: skip
BY_NAME = {metric.name: metric for metric in METRICS}


class Meter:
    """One process's increments since they were last handed over, as store fields:
    `metric|label values|` for a counter; `...|<le>` per bucket (not cumulative), `...|sum`
    and `...|count` for a histogram."""

    def __init__(self) -> None:
        self._pending: dict[str, float] = {}

    def count(self, metric: Metric, amount: int = 1, *labels: str) -> None:
        self._add(_field(metric, labels, ""), amount)

    def observe(self, metric: Metric, seconds: float, *labels: str) -> None:
        seconds = max(seconds, 0.0)
        bucket = next((bound for bound in metric.buckets if seconds <= bound), math.inf)
        self._add(_field(metric, labels, le_label(bucket)), 1)
        self._add(_field(metric, labels, "sum"), seconds)
        self._add(_field(metric, labels, "count"), 1)

    def drain(self) -> dict[str, float]:
        """The increments so far; the meter starts again from nothing."""
        pending, self._pending = self._pending, {}
        return pending

    def restore(self, increments: Mapping[str, float]) -> None:
        """Increments that could not be handed over: kept for the next time."""
        for field, amount in increments.items():
            self._add(field, amount)

    def _add(self, field: str, amount: float) -> None:
        self._pending[field] = self._pending.get(field, 0) + amount


@dataclass(frozen=True, slots=True)
class Series:
    """One metric's totals for one set of label values."""

    metric: Metric
    labels: tuple[str, ...]
    value: float = 0.0  # a counter's
    buckets: tuple[tuple[float, float], ...] = ()  # a histogram's (upper bound, cumulative)
    total: float = 0.0  # a histogram's sum
    count: float = 0.0


def series(totals: Mapping[str, float]) -> list[Series]:
    """The deployment's totals (fields as Meter writes them) as series; fields of metrics
    this version does not know are left out."""
    counters: dict[tuple[Metric, tuple[str, ...]], float] = {}
    histograms: dict[tuple[Metric, tuple[str, ...]], dict[str, float]] = {}
    for field, value in totals.items():
        parts = field.split(SEPARATOR)
        metric = BY_NAME.get(parts[0])
        if metric is None or len(parts) != len(metric.labels) + 2:
            continue
        key = (metric, tuple(parts[1:-1]))
        if metric.is_histogram:
            histograms.setdefault(key, {})[parts[-1]] = value
        else:
            counters[key] = counters.get(key, 0) + value
    found = [Series(metric, labels, value=value) for (metric, labels), value in counters.items()]
    found += [_histogram(metric, labels, parts) for (metric, labels), parts in histograms.items()]
    return sorted(found, key=lambda one: (one.metric.name, one.labels))


def _histogram(metric: Metric, labels: tuple[str, ...], parts: Mapping[str, float]) -> Series:
    running = 0.0
    cumulative = []
    for bound in (*metric.buckets, math.inf):
        running += parts.get(le_label(bound), 0)
        cumulative.append((bound, running))
    return Series(metric, labels, buckets=tuple(cumulative), total=parts.get("sum", 0.0),
                  count=parts.get("count", 0.0))  # fmt: skip


def _field(metric: Metric, labels: Iterable[str], part: str) -> str:
    values = tuple(value.replace(SEPARATOR, "_") for value in labels)
    if len(values) != len(metric.labels):
        raise ValueError(f"{metric.name} takes labels {metric.labels}, not {values}")
    return SEPARATOR.join((metric.name, *values, part))


def le_label(bound: float) -> str:
    """A bucket's upper bound as Prometheus writes it (`le`), and as its field names it."""
    return "+Inf" if bound == math.inf else repr(bound)
