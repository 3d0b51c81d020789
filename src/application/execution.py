"""Execution: the worker's handle on one running task, through which it can be aborted."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from domain.task import Task


class AbortReason(StrEnum):
    SHUTDOWN = "shutdown"  # the worker is stopping: give the task back
    LOCK_LOST = "lock_lost"  # someone else may own it now: record nothing
    TIMEOUT = "timeout"  # the attempt took longer than the task's timeout
    CANCELLED = "cancelled"  # an operator cancelled it: record it cancelled
    KILLED = "killed"  # an operator force-failed it: already recorded, record nothing


class Execution:
    """One claimed task on its way through ProcessTask; the first abort reason wins.

    While a handler runs, `abort` also interrupts it, through the hook its runner sets.
    """

    __slots__ = ("_interrupt", "detail", "reason", "task")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.reason: AbortReason | None = None
        self.detail = ""
        self._interrupt: Callable[[], object] | None = None

    def abort(self, reason: AbortReason, detail: str = "") -> None:
        if self.reason is not None:
            return
        self.reason = reason
        self.detail = detail
        if self._interrupt is not None:
            self._interrupt()

    def on_abort(self, interrupt: Callable[[], object] | None) -> None:
        self._interrupt = interrupt
