"""Meter: a worker's counts as store fields, handed over with its heartbeat, kept when the
heartbeat fails; and the totals read back as series."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest

from application.meter import (
    LOCK_RENEWALS,
    LOCKS_DENIED,
    PICKUP,
    REDIS_ROUND_TRIP,
    Meter,
    series,
)
from application.workers import Heartbeat
from domain.errors import QueueUnavailable
from domain.values import WorkerInfo
from tests.fakes import ManualClock


def test_counts_and_observations_become_fields_and_drain_once() -> None:
    meter = Meter()
    meter.count(LOCK_RENEWALS, 2, "ok")
    meter.count(LOCK_RENEWALS, 1, "ok")
    meter.count(LOCKS_DENIED)
    meter.observe(PICKUP, 0.004, "mail")
    meter.observe(PICKUP, -1.0, "mail")  # a clock step back is not a negative latency

    assert meter.drain() == {
        "lock_renewals_total|ok|": 3,
        "locks_denied_total|": 1,
        "pickup_latency_seconds|mail|0.005": 2,
        "pickup_latency_seconds|mail|sum": 0.004,
        "pickup_latency_seconds|mail|count": 2,
    }
    assert meter.drain() == {}


def test_a_label_cannot_break_the_field_apart_and_a_wrong_arity_is_refused() -> None:
    meter = Meter()
    meter.count(LOCK_RENEWALS, 1, "a|b")
    assert meter.drain() == {"lock_renewals_total|a_b|": 1}
    with pytest.raises(ValueError, match="takes labels"):
        meter.count(LOCK_RENEWALS)


def test_series_sum_buckets_cumulatively_and_skip_what_they_do_not_know() -> None:
    meter = Meter()
    for seconds in (0.0001, 0.003, 5.0, 1e9):
        meter.observe(REDIS_ROUND_TRIP, seconds)
    totals = meter.drain() | {"retired_metric_total|": 4.0, "pickup_latency_seconds|x": 1.0}

    (found,) = series(totals)

    assert found.metric is REDIS_ROUND_TRIP
    assert (found.count, found.total) == (4, 0.0001 + 0.003 + 5.0 + 1e9)
    assert dict(found.buckets)[0.0005] == 1
    assert dict(found.buckets)[0.005] == 2
    assert dict(found.buckets)[1.0] == 2
    assert dict(found.buckets)[math.inf] == 4


class Registry:
    """IWorkerRegistry that fails its first heartbeat and keeps the increments it got."""

    def __init__(self) -> None:
        self.failures = 1
        self.handed: list[dict[str, float]] = []

    async def heartbeat(
        self, worker: WorkerInfo, ttl_ms: int, increments: Mapping[str, float]
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise QueueUnavailable("Redis is away")
        self.handed.append(dict(increments))

    async def forget(self, worker_id: str) -> None:
        return None

    async def live(self, now: int) -> list[WorkerInfo]:
        return []

    async def metric_totals(self) -> dict[str, float]:
        return {}


async def test_what_a_failed_heartbeat_carried_goes_with_the_next() -> None:
    meter, registry = Meter(), Registry()
    heartbeat = Heartbeat(registry, ManualClock(0), meter)
    beat = {"queues": ["q"], "concurrency": 1, "running": 0, "processed": 0, "started_at": 0}
    meter.count(LOCKS_DENIED, 2)

    with pytest.raises(QueueUnavailable):
        await heartbeat.beat("w1", **beat)  # type: ignore[arg-type]
    meter.count(LOCKS_DENIED)
    await heartbeat.beat("w1", **beat)  # type: ignore[arg-type]

    (handed,) = registry.handed
    assert handed == {"locks_denied_total|": 3}
    # The beat that went through was timed, and goes with the next one.
    assert meter.drain()["redis_round_trip_seconds|count"] == 1
