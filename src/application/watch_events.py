"""WatchEvents: the live feed of task transitions (for dashboards and other watchers)."""

from __future__ import annotations

from domain.ports import EventFeed, ITaskFeed


class WatchEvents:
    def __init__(self, queue: ITaskFeed) -> None:
        self._queue = queue

    async def execute(self) -> EventFeed:
        """Subscribed once it returns; `TooManyStreams` when this process serves as many
        feeds as it may."""
        return await self._queue.events()
