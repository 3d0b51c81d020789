"""DeleteTask: remove a task that is not running, keeping its id reserved for a while."""

from __future__ import annotations

from domain.ports import ITaskQueue


class DeleteTask:
    """Remove a task; `TaskActive` while it runs. Its id then answers "removed" to a
    repeated enqueue for the idempotency window, so a late retry cannot run it again."""

    def __init__(self, queue: ITaskQueue) -> None:
        self._queue = queue

    async def execute(self, task_id: str, queue: str | None = None) -> None:
        task = await self._queue.get(task_id, queue)
        await self._queue.remove(task)
