"""CloneTask: a new task with an existing one's work and options (the API's duplicate)."""

from __future__ import annotations

from collections.abc import Callable

from application.clock import Clock
from domain.ports import Enqueued, ITaskQueue


class CloneTask:
    """Copy a task under a new id, due now or at `run_at`; the original is untouched."""

    def __init__(self, queue: ITaskQueue, clock: Clock, new_id: Callable[[], str]) -> None:
        self._queue = queue
        self._clock = clock
        self._new_id = new_id

    async def execute(
        self,
        task_id: str,
        queue: str | None = None,
        run_at: int | None = None,
        created_by: str | None = None,
    ) -> Enqueued:
        original = await self._queue.get(task_id, queue)
        copy = original.copy_as(self._new_id(), self._clock(), run_at, created_by)
        (enqueued,) = await self._queue.enqueue([copy])
        return enqueued
