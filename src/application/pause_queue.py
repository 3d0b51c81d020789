"""PauseQueue: stop or restart handing out a queue's tasks; running ones finish."""

from __future__ import annotations

from collections.abc import Collection

from application.clock import Clock, system_clock
from domain.audit import AuditEntry
from domain.ports import IAuditLog, ITaskTransitions
from domain.task import check_configured_queue


class PauseQueue:
    """Pause or resume one of the configured `queues`."""

    def __init__(
        self,
        queue: ITaskTransitions,
        queues: Collection[str],
        clock: Clock | None = None,
        audit: IAuditLog | None = None,
    ) -> None:
        self._queue = queue
        self._queues = frozenset(queues)
        self._clock = clock or system_clock
        self._audit = audit

    async def execute(self, queue: str, paused: bool, actor: str = "anonymous") -> None:
        check_configured_queue(queue, self._queues)
        await self._queue.set_paused(queue, paused)
        if self._audit is not None:
            action = "pause" if paused else "resume"
            await self._audit.record(AuditEntry(self._clock(), actor, action, queue, {}))
