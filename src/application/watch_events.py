"""WatchEvents: the live feed of task transitions (for dashboards and other watchers)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from domain.ports import ITaskQueue, TaskEvent


class WatchEvents:
    def __init__(self, queue: ITaskQueue) -> None:
        self._queue = queue

    async def execute(self) -> AsyncIterator[TaskEvent]:
        """Subscribed once it returns."""
        return await self._queue.events()
