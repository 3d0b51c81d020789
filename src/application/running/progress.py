"""ProgressReporter: a running task's progress, written to the queue in the background."""

from __future__ import annotations

import asyncio
from typing import Any

from application.handlers import Logger
from domain.ports import ITaskTransitions
from domain.task import Task

_NOTHING = object()


class ProgressReporter:
    """The latest value wins, and one write is in flight at a time, so a handler that
    reports in a tight loop costs at most one round trip per write, not one per report.
    `report` may be called from a sync handler's thread."""

    __slots__ = ("_log", "_loop", "_pending", "_queue", "_task", "_writer", "reported")

    def __init__(self, queue: ITaskTransitions, task: Task, log: Logger) -> None:
        self._queue = queue
        self._task = task
        self._log = log
        self._loop = asyncio.get_running_loop()
        self._pending: Any = _NOTHING
        self._writer: asyncio.Task[None] | None = None
        self.reported = False

    def report(self, progress: Any) -> None:
        self.reported = True
        self._loop.call_soon_threadsafe(self._offer, progress)

    async def flush(self) -> None:
        """Wait until every value reported so far is written (before the task settles)."""
        if not self.reported:
            return
        await asyncio.sleep(0)  # reports from this loop's thread land one callback later
        if self._writer is not None:
            await self._writer

    def _offer(self, progress: Any) -> None:
        self._pending = progress
        if self._writer is None:
            self._writer = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending is not _NOTHING:
            progress, self._pending = self._pending, _NOTHING
            try:
                await self._queue.set_progress(self._task, progress)
            except Exception as exc:  # noqa: BLE001 - progress is advisory; the task goes on
                self._log.warning("task.progress_not_recorded", error=repr(exc))
        self._writer = None
