"""SweepFinished: retention. Finished tasks are kept for a while, or the newest so many,
then removed."""

from __future__ import annotations

from dataclasses import dataclass

from application.clock import Clock
from domain.ports import ITaskTransitions
from domain.task import TaskStatus

SWEEP_INTERVAL_S = 60.0
# With a count to keep, tasks pile up above it between sweeps at the queue's pace: sweep
# often enough that this stays a few seconds' worth.
COUNT_SWEEP_INTERVAL_S = 5.0


@dataclass(frozen=True, slots=True)
class Retention:
    """How long finished tasks are kept, per status, in ms (0 = forever), and how many of
    the newest at most (0 = no count)."""

    completed_ms: int = 7 * 24 * 3600 * 1000
    failed_ms: int = 30 * 24 * 3600 * 1000
    cancelled_ms: int = 7 * 24 * 3600 * 1000
    completed_count: int = 0
    failed_count: int = 0
    cancelled_count: int = 0


class SweepFinished:
    """Remove up to `limit` expired finished tasks of a queue per call (ids stay reserved
    for the idempotency window, like any removed task's)."""

    def __init__(self, queue: ITaskTransitions, clock: Clock, retention: Retention) -> None:
        self._queue = queue
        self._clock = clock
        self._retention = retention

    @property
    def interval_s(self) -> float:
        """How long a worker waits between sweeps (it goes on at once after a full one)."""
        r = self._retention
        counted = r.completed_count or r.failed_count or r.cancelled_count
        return COUNT_SWEEP_INTERVAL_S if counted else SWEEP_INTERVAL_S

    async def execute(self, queue: str, limit: int = 1_000) -> int:
        now = self._clock()
        r = self._retention
        keep_ms = {
            TaskStatus.COMPLETED: r.completed_ms,
            TaskStatus.FAILED: r.failed_ms,
            TaskStatus.CANCELLED: r.cancelled_ms,
        }
        keep = {
            TaskStatus.COMPLETED: r.completed_count,
            TaskStatus.FAILED: r.failed_count,
            TaskStatus.CANCELLED: r.cancelled_count,
        }
        before = {status: now - ms for status, ms in keep_ms.items() if ms > 0}
        return await self._queue.sweep(queue, before, limit, keep)
