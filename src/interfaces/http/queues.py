"""Queue-wide routes: stats, pause and resume, and the gathering of a batch."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from application.get_batch import GetBatch
from application.get_stats import GetStats, Stats
from application.pause_queue import PauseQueue
from domain.errors import TaskNotFound
from domain.task import TaskStatus
from interfaces.http.auth import Principal, may_read
from interfaces.http.errors import QUERY, documented
from interfaces.http.schemas import (
    BatchOut,
    DurationsOut,
    MinuteOut,
    QueueStateOut,
    QueueStatsOut,
    StatsOut,
    TaskOut,
    ThroughputOut,
    TypeStatsOut,
)


def stats_out(stats: Stats) -> StatsOut:
    return StatsOut(
        **_counts(stats.totals),
        queues={q.queue: QueueStatsOut(**_counts(q.counts), paused=q.paused) for q in stats.queues},
        task_types={
            name: TypeStatsOut(
                counts={status.value: n for status, n in types.counts.items()},
                duration_ms=DurationsOut(p50=types.p50_ms, p95=types.p95_ms),
            )
            for name, types in stats.task_types.items()
        },
        throughput=ThroughputOut(
            last_minute=stats.last_minute,
            last_hour=stats.last_hour,
            per_minute=[MinuteOut.model_validate(minute) for minute in stats.per_minute],
        ),
    )


def _counts(counts: dict[TaskStatus, int]) -> dict[str, int]:
    return {status.value: counts.get(status, 0) for status in TaskStatus}


class QueueController(Controller):
    tags = ["queues"]  # noqa: RUF012 - litestar reads it as a class attribute

    @get("/api/stats", summary="Counts, durations and throughput", responses=documented())
    async def stats(self, get_stats: NamedDependency[GetStats]) -> StatsOut:
        return stats_out(await get_stats.execute())

    @post(
        "/api/queues/{queue:str}/pause",
        status_code=200,
        summary="Hand out no new tasks",
        responses=documented(*QUERY),
    )
    async def pause(
        self,
        queue: FromPath[str],
        pause_queue: NamedDependency[PauseQueue],
        principal: NamedDependency[Principal],
    ) -> QueueStateOut:
        await pause_queue.execute(queue, paused=True, actor=principal.name)
        return QueueStateOut(queue=queue, paused=True)

    @post(
        "/api/queues/{queue:str}/resume",
        status_code=200,
        summary="Hand out tasks again",
        responses=documented(*QUERY),
    )
    async def resume(
        self,
        queue: FromPath[str],
        pause_queue: NamedDependency[PauseQueue],
        principal: NamedDependency[Principal],
    ) -> QueueStateOut:
        await pause_queue.execute(queue, paused=False, actor=principal.name)
        return QueueStateOut(queue=queue, paused=False)

    @get(
        "/api/batches/{batch_id:str}",
        summary="A bulk enqueue's counts and results",
        responses=documented(*QUERY, 404),
    )
    async def batch(
        self,
        batch_id: FromPath[str],
        get_batch: NamedDependency[GetBatch],
        principal: NamedDependency[Principal],
    ) -> BatchOut:
        batch = await get_batch.execute(batch_id)
        if not all(may_read(principal, task.created_by) for task in batch.tasks):
            raise TaskNotFound(batch_id)  # another key's batch: as if it did not exist
        return BatchOut(
            batch_id=batch.batch_id,
            total=len(batch.tasks),
            finished=batch.finished,
            counts=_counts(batch.counts),
            tasks=[TaskOut.model_validate(task) for task in batch.tasks],
        )
