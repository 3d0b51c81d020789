"""Every Redis key Conveyor uses, built in one place; a queue's keys share one hash tag."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from domain.task import TaskStatus

ROOT = "conveyor"
QUEUES = f"{ROOT}:queues"  # set of every queue name ever used


@dataclass(frozen=True)
class QueueKeys:
    """Keys of one queue, all in the hash slot of `{<queue>}` so one script can touch them."""

    queue: str

    @cached_property
    def prefix(self) -> str:
        return f"{ROOT}:{{{self.queue}}}:"

    @cached_property
    def task_prefix(self) -> str:
        return f"{self.prefix}task:"

    def task(self, task_id: str) -> str:
        return f"{self.task_prefix}{task_id}"

    def removed(self, task_id: str) -> str:
        return f"{self.prefix}removed:{task_id}"

    def state(self, status: TaskStatus) -> str:
        """The sorted set that indexes tasks in `status`."""
        return f"{self.prefix}{_STATE_SETS[status]}"

    @cached_property
    def wait(self) -> str:
        return self.state(TaskStatus.WAITING)

    @cached_property
    def delayed(self) -> str:
        return self.state(TaskStatus.DELAYED)

    @cached_property
    def active(self) -> str:
        return self.state(TaskStatus.ACTIVE)

    @cached_property
    def marker(self) -> str:
        return f"{self.prefix}marker"

    @cached_property
    def meta(self) -> str:
        return f"{self.prefix}meta"

    @cached_property
    def fence(self) -> str:
        return f"{self.prefix}fence"

    @cached_property
    def seq(self) -> str:
        return f"{self.prefix}seq"

    @cached_property
    def state_sets(self) -> list[str]:
        return [self.state(status) for status in TaskStatus if status is not TaskStatus.ACTIVE]


_STATE_SETS = {
    TaskStatus.WAITING: "wait",
    TaskStatus.DELAYED: "delayed",
    TaskStatus.ACTIVE: "active",
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "cancelled",
}

# Task templates live outside any queue, in a slot of their own (one MULTI writes them):
# a hash id -> JSON, the id counter, and an index sorted by creation time.
TEMPLATES = f"{ROOT}:{{templates}}:all"
TEMPLATES_SEQ = f"{ROOT}:{{templates}}:seq"
TEMPLATES_BY_CREATED = f"{ROOT}:{{templates}}:by_created"
