"""Heartbeat and ListWorkers: which worker processes are alive, and what they do."""

from __future__ import annotations

from application.clock import Clock
from domain.ports import IWorkerRegistry
from domain.values import WorkerInfo


class ListWorkers:
    def __init__(self, registry: IWorkerRegistry, clock: Clock) -> None:
        self._registry = registry
        self._clock = clock

    async def execute(self) -> list[WorkerInfo]:
        return await self._registry.live(self._clock())


class Heartbeat:
    """A worker says it is alive every `interval_ms`; three missed beats and it is gone."""

    def __init__(self, registry: IWorkerRegistry, clock: Clock, interval_ms: int = 5_000) -> None:
        self._registry = registry
        self._clock = clock
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
        await self._registry.heartbeat(info, ttl_ms=3 * self.interval_ms)

    async def stop(self, worker_id: str) -> None:
        await self._registry.forget(worker_id)
