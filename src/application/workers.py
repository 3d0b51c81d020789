"""Heartbeat and ListWorkers: which worker processes are alive, and what they do."""

from __future__ import annotations

import time

from application.clock import Clock
from application.meter import REDIS_ROUND_TRIP, Meter, Series, series
from domain.ports import IWorkerRegistry
from domain.values import WorkerInfo


class ListWorkers:
    def __init__(self, registry: IWorkerRegistry, clock: Clock) -> None:
        self._registry = registry
        self._clock = clock

    async def execute(self) -> list[WorkerInfo]:
        return await self._registry.live(self._clock())


class WorkerMetrics:
    """The totals of what every worker counted (see application.meter)."""

    def __init__(self, registry: IWorkerRegistry) -> None:
        self._registry = registry

    async def execute(self) -> list[Series]:
        return series(await self._registry.metric_totals())


class Heartbeat:
    """A worker says it is alive every `interval_ms`; three missed beats and it is gone."""

    def __init__(
        self,
        registry: IWorkerRegistry,
        clock: Clock,
        meter: Meter | None = None,
        interval_ms: int = 5_000,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._meter = meter or Meter()
        self.interval_ms = interval_ms

    async def beat(
        self,
        worker_id: str,
        *,
        queues: list[str],
        concurrency: int,
        running: int,
        processed: int,
        started_at: int,
    ) -> None:
        info = WorkerInfo(
            worker_id, queues, concurrency, running, processed, started_at, self._clock()
        )
        increments = self._meter.drain()
        began = time.perf_counter()
        try:
            await self._registry.heartbeat(info, 3 * self.interval_ms, increments)
        except BaseException:
            self._meter.restore(increments)  # not recorded: handed over with the next beat
            raise
        self._meter.observe(REDIS_ROUND_TRIP, time.perf_counter() - began)

    async def stop(self, worker_id: str) -> None:
        await self._registry.forget(worker_id)
