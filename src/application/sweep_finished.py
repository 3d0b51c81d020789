"""SweepFinished: retention. Finished tasks are kept for a while, then removed."""

from __future__ import annotations

from dataclasses import dataclass

from application.clock import Clock
from domain.ports import ITaskTransitions
from domain.task import TaskStatus


@dataclass(frozen=True, slots=True)
class Retention:
    """How long finished tasks are kept, per status, in ms (0 = forever)."""

    completed_ms: int = 7 * 24 * 3600 * 1000
    failed_ms: int = 30 * 24 * 3600 * 1000
    cancelled_ms: int = 7 * 24 * 3600 * 1000


class SweepFinished:
    """Remove up to `limit` expired finished tasks of a queue per call (ids stay reserved
    for the idempotency window, like any removed task's)."""

    def __init__(self, queue: ITaskTransitions, clock: Clock, retention: Retention) -> None:
        self._queue = queue
        self._clock = clock
        self._retention = retention

    async def execute(self, queue: str, limit: int = 1_000) -> int:
        now = self._clock()
        keep = {
            TaskStatus.COMPLETED: self._retention.completed_ms,
            TaskStatus.FAILED: self._retention.failed_ms,
            TaskStatus.CANCELLED: self._retention.cancelled_ms,
        }
        before = {status: now - ms for status, ms in keep.items() if ms > 0}
        return await self._queue.sweep(queue, before, limit)
