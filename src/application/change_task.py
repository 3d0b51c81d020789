"""ChangeTask: the operators' actions on one task (cancel, kill, retry), decided by Task."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from application.clock import Clock
from domain.audit import AuditEntry
from domain.errors import TaskChanged
from domain.ports import IAuditLog, ITaskTransitions, ITaskViews
from domain.task import Task, TaskStatus
from domain.values import StopKind

_ATTEMPTS = 5  # a task that keeps changing under us is busy; the caller may try again


class Action(StrEnum):
    CANCEL = "cancel"
    KILL = "kill"
    RETRY = "retry"


_DECIDE: dict[Action, Callable[[Task, int], Task]] = {
    Action.CANCEL: Task.cancelled,
    Action.KILL: Task.killed,
    Action.RETRY: Task.retried,
}


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
        if action is Action.CANCEL and task.status is TaskStatus.ACTIVE:
            await self._queue.request_cancel(task)
            return task
        changed = _DECIDE[action](task, self._clock())
        stop = StopKind.KILL if task.status is TaskStatus.ACTIVE else None
        await self._queue.change(changed, task, stop=stop)
        return changed
