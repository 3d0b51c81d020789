"""ChangeTask: the operators' actions on one task (cancel, kill, retry), decided by Task."""

from __future__ import annotations

from application.clock import Clock
from domain.audit import AuditEntry
from domain.errors import TaskChanged
from domain.ports import IAuditLog, ITaskTransitions, ITaskViews
from domain.task import Action, Task

__all__ = ["Action", "ChangeTask"]  # Action is the domain's; callers import it from here too

_ATTEMPTS = 5  # a task that keeps changing under us is busy; the caller may try again


class ChangeTask:
    """Read the task, let Task decide the change, write it if the task did not move
    meanwhile (else read again). An active task is cancelled by its worker: it is asked
    to stop, and the answer is the task as it is now, still active."""

    def __init__(
        self,
        views: ITaskViews,
        queue: ITaskTransitions,
        clock: Clock,
        audit: IAuditLog | None = None,
    ) -> None:
        self._views = views
        self._queue = queue
        self._clock = clock
        self._audit = audit

    async def execute(
        self, action: Action, task_id: str, queue: str | None = None, actor: str = "anonymous"
    ) -> Task:
        for _ in range(_ATTEMPTS):
            task = await self._views.get(task_id, queue)
            try:
                changed = await self._apply(action, task)
            except TaskChanged:
                continue
            if self._audit is not None:
                detail = {"queue": task.queue, "from": task.status.value}
                entry = AuditEntry(self._clock(), actor, action.value, task_id, detail)
                await self._audit.record(entry)
            return changed
        raise TaskChanged(f"task {task_id!r} keeps changing; try again")

    async def _apply(self, action: Action, task: Task) -> Task:
        change = task.operator(action, self._clock())
        if change.task is None:  # its worker records the outcome once the handler stops
            await self._queue.request_cancel(task)
            return task
        await self._queue.change(change.task, task, stop=change.stop)
        return change.task
