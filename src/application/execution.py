"""Execution: the worker's handle on one running task, through which it can be aborted."""

from __future__ import annotations

import asyncio
from enum import StrEnum

from domain.task import Task


class AbortReason(StrEnum):
    SHUTDOWN = "shutdown"  # the worker is stopping: give the task back
    LOCK_LOST = "lock_lost"  # someone else may own it now: record nothing
    TIMEOUT = "timeout"  # the attempt took longer than the task's timeout


class Execution:
    """One claimed task on its way through ProcessTask; the first abort reason wins."""

    __slots__ = ("_aborted", "detail", "reason", "task")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.reason: AbortReason | None = None
        self.detail = ""
        self._aborted = asyncio.Event()

    def abort(self, reason: AbortReason, detail: str = "") -> None:
        if self.reason is None:
            self.reason = reason
            self.detail = detail
            self._aborted.set()

    async def aborted(self) -> None:
        await self._aborted.wait()
