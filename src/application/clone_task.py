"""CloneTask: a new task with an existing one's work and options (the API's duplicate)."""

from __future__ import annotations

from collections.abc import Callable

from application.clock import Clock
from domain.ports import ITaskTransitions, ITaskViews
from domain.values import Enqueued


class CloneTask:
    """Copy a task under a new id, due now or at `run_at`; the original is untouched."""

    def __init__(
        self, views: ITaskViews, queue: ITaskTransitions, clock: Clock, new_id: Callable[[], str]
    ) -> None:
        self._views = views
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
        original = await self._views.get(task_id, queue)
        copy = original.copy_as(self._new_id(), self._clock(), run_at, created_by)
        (enqueued,) = await self._queue.enqueue([copy])
        return enqueued
