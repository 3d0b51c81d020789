"""GET /metrics: Prometheus text, one scrape for the whole deployment.

The queue figures come from Redis, the same counters as /api/stats (O(1) per queue and task
type), and the worker figures from the workers' heartbeats; so whichever API process is
scraped, it reports every queue and every live worker. The HTTP figures are this API
process's own (litestar's Prometheus middleware, one series per route template, not per
path), with the process's CPU, memory and file descriptors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from litestar import Response, get
from litestar.di import NamedDependency
from prometheus_client import REGISTRY, CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from application.get_stats import GetStats, Stats
from application.meter import METRICS, Series, le_label
from application.workers import ListWorkers, WorkerMetrics
from domain.values import WorkerInfo
from interfaces.http.errors import documented

PREFIX = "conveyor"
QUANTILES = (("0.5", "p50_ms"), ("0.95", "p95_ms"))

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twin per series


class Snapshot(Collector):
    """The deployment's figures at one moment, as metric families."""

    def __init__(self, stats: Stats, workers: list[WorkerInfo], counted: list[Series]) -> None:
        self._stats = stats
        self._workers = workers
        self._counted = counted

    def collect(self) -> Iterator[Metric]:
        yield from self._queues()
        yield from self._task_types()
        yield from self._workers_families()
        yield from self._counted_families()

    def _counted_families(self) -> Iterator[Metric]:
        """What the workers counted, every family even before its first count (an alert
        on a series that does not exist yet never fires)."""
        for metric in METRICS:
            name = f"{PREFIX}_{metric.name}"
            labels = list(metric.labels)
            found = [one for one in self._counted if one.metric is metric]
            if metric.is_histogram:
                histogram = HistogramMetricFamily(name, metric.help, labels=labels)
                for one in found:
                    buckets = [(le_label(bound), count) for bound, count in one.buckets]
                    histogram.add_metric(list(one.labels), buckets, one.total)
                yield histogram
            else:
                counter = CounterMetricFamily(name.removesuffix("_total"), metric.help,
                                              labels=labels)  # fmt: skip
                if not labels and not found:
                    counter.add_metric([], 0)
                for one in found:
                    counter.add_metric(list(one.labels), one.value)
                yield counter

    def _queues(self) -> Iterator[Metric]:
        tasks = GaugeMetricFamily(
            f"{PREFIX}_tasks", "Tasks stored, by queue and status", labels=["queue", "status"]
        )
        paused = GaugeMetricFamily(
            f"{PREFIX}_queue_paused", "1 while the queue hands out no new tasks", labels=["queue"]
        )
        for queue in self._stats.queues:
            for status, count in sorted(queue.counts.items()):
                tasks.add_metric([queue.queue, status.value], count)
            paused.add_metric([queue.queue], int(queue.paused))
        yield tasks
        yield paused
        finished = GaugeMetricFamily(
            f"{PREFIX}_tasks_finished_recent",
            "Tasks that finished (completed or failed) in the trailing window",
            labels=["window"],
        )
        finished.add_metric(["1m"], self._stats.last_minute)
        finished.add_metric(["1h"], self._stats.last_hour)
        yield finished

    def _task_types(self) -> Iterator[Metric]:
        by_type = GaugeMetricFamily(
            f"{PREFIX}_task_type_tasks",
            "Tasks stored, by task type and status",
            labels=["task_name", "status"],
        )
        duration = GaugeMetricFamily(
            f"{PREFIX}_task_duration_seconds",
            "Run time of recently completed tasks, by task type (nearest-rank quantiles)",
            labels=["task_name", "quantile"],
        )
        for name, stats in self._stats.task_types.items():
            for status, count in sorted(stats.counts.items()):
                by_type.add_metric([name, status.value], count)
            for quantile, attribute in QUANTILES:
                value = getattr(stats, attribute)
                if value is not None:
                    duration.add_metric([name, quantile], value / 1000)
        yield by_type
        yield duration

    def _workers_families(self) -> Iterator[Metric]:
        live = GaugeMetricFamily(f"{PREFIX}_workers", "Workers whose heartbeat is current")
        live.add_metric([], len(self._workers))
        yield live
        labels = ["worker_id"]
        running = GaugeMetricFamily(
            f"{PREFIX}_worker_running_tasks", "Tasks a worker runs now", labels=labels
        )
        slots = GaugeMetricFamily(
            f"{PREFIX}_worker_concurrency", "Tasks a worker may run at once", labels=labels
        )
        processed = CounterMetricFamily(
            f"{PREFIX}_worker_processed_tasks",
            "Tasks a worker has finished since it started",
            labels=labels,
        )
        for worker in self._workers:
            running.add_metric([worker.worker_id], worker.running)
            slots.add_metric([worker.worker_id], worker.concurrency)
            processed.add_metric([worker.worker_id], worker.processed)
        yield running
        yield slots
        yield processed


def exposition(stats: Stats, workers: list[WorkerInfo], counted: list[Series]) -> bytes:
    """This process's own metrics, then the deployment's: one Prometheus text document."""
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(Snapshot(stats, workers, counted))
    return generate_latest(REGISTRY) + generate_latest(snapshot)


@get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics: queues, task types, workers, this API's requests",
    media_type=CONTENT_TYPE_LATEST,
    responses=documented(),
)
async def metrics(
    get_stats: NamedDependency[GetStats],
    list_workers: NamedDependency[ListWorkers],
    worker_metrics: NamedDependency[WorkerMetrics],
) -> Response[bytes]:
    stats, workers, counted = await asyncio.gather(
        get_stats.execute(), list_workers.execute(), worker_metrics.execute()
    )
    return Response(exposition(stats, workers, counted), media_type=CONTENT_TYPE_LATEST)
