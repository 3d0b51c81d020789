"""GetTask: read one task by id."""

from __future__ import annotations

from domain.ports import ITaskQueue
from domain.task import Task


class GetTask:
    """The task with this id, from `queue` or whichever queue holds it."""

    def __init__(self, queue: ITaskQueue) -> None:
        self._queue = queue

    async def execute(self, task_id: str, queue: str | None = None) -> Task:
        return await self._queue.get(task_id, queue)
