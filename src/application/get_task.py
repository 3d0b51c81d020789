"""GetTask: read one task by id."""

from __future__ import annotations

from domain.ports import ITaskFeed, ITaskViews
from domain.task import Task


class GetTask:
    """The task with this id, from `queue` or whichever queue holds it; with `wait_ms`,
    as soon as it is finished, or as it is when the wait is over."""

    def __init__(self, views: ITaskViews, feed: ITaskFeed) -> None:
        self._views = views
        self._feed = feed

    async def execute(self, task_id: str, queue: str | None = None, wait_ms: int = 0) -> Task:
        task = await self._views.get(task_id, queue)
        return await self.wait(task, wait_ms)

    async def wait(self, task: Task, wait_ms: int) -> Task:
        """The task once finished, or as it is after `wait_ms` (pushed, not polled)."""
        if wait_ms > 0 and not task.status.is_terminal:
            task = await self._feed.wait_finished(task, wait_ms)
        return task
