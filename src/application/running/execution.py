"""Execution: the worker's handle on one running task, through which it can be stopped."""

from __future__ import annotations

from collections.abc import Callable

from domain.task import Interruption, Task
from domain.values import Lease


class Execution:
    """One claimed task on its way through ProcessTask; the first interruption wins.

    While a handler runs, `abort` also interrupts it, through the hook its runner sets.
    `lease` is the task's lock once held, and `valid_until` when it runs out unless it is
    renewed (the LeaseKeeper renews it and moves this on).
    """

    __slots__ = ("_interrupt", "detail", "lease", "reason", "task", "valid_until")

    def __init__(self, task: Task, lease: Lease | None = None) -> None:
        self.task = task
        self.lease = lease
        self.valid_until = (task.started_at or 0) + (lease.ttl_ms if lease else 0)
        self.reason: Interruption | None = None
        self.detail = ""
        self._interrupt: Callable[[], object] | None = None

    def hold(self, lease: Lease, since: int) -> None:
        """The lock is ours, from `since` for its TTL."""
        self.lease = lease
        self.valid_until = since + lease.ttl_ms

    def abort(self, reason: Interruption, detail: str = "") -> None:
        if self.reason is not None:
            return
        self.reason = reason
        self.detail = detail
        if self._interrupt is not None:
            self._interrupt()

    def on_abort(self, interrupt: Callable[[], object] | None) -> None:
        self._interrupt = interrupt
