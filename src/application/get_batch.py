"""GetBatch: the tasks of a bulk enqueue, gathered (seed 004's fan-out and gather)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.ports import ITaskViews
from domain.task import Task, TaskStatus


@dataclass(frozen=True, slots=True)
class Batch:
    batch_id: str
    tasks: list[Task]

    @property
    def counts(self) -> dict[TaskStatus, int]:
        counts = dict.fromkeys(TaskStatus, 0)
        for task in self.tasks:
            counts[task.status] += 1
        return counts

    @property
    def finished(self) -> bool:
        return all(task.status.is_terminal for task in self.tasks)


class GetBatch:
    def __init__(self, queue: ITaskViews) -> None:
        self._queue = queue

    async def execute(self, batch_id: str) -> Batch:
        return Batch(batch_id, await self._queue.batch(batch_id))
