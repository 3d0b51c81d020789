"""DeleteTask: remove a task that is not running, keeping its id reserved for a while."""

from __future__ import annotations

from application.clock import Clock, system_clock
from domain.audit import AuditEntry
from domain.ports import IAuditLog, ITaskTransitions, ITaskViews


class DeleteTask:
    """Remove a task; `TaskActive` while it runs. Its id then answers "removed" to a
    repeated enqueue for the idempotency window, so a late retry cannot run it again."""

    def __init__(
        self,
        views: ITaskViews,
        queue: ITaskTransitions,
        clock: Clock | None = None,
        audit: IAuditLog | None = None,
    ) -> None:
        self._views = views
        self._queue = queue
        self._clock = clock or system_clock
        self._audit = audit

    async def execute(
        self, task_id: str, queue: str | None = None, actor: str = "anonymous"
    ) -> None:
        task = await self._views.get(task_id, queue)
        await self._queue.remove(task)
        if self._audit is not None:
            detail = {"queue": task.queue, "status": task.status.value}
            await self._audit.record(AuditEntry(self._clock(), actor, "delete", task_id, detail))
