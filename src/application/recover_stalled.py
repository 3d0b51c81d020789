"""RecoverStalled: give tasks whose worker vanished back to the queue, as stalls."""

from __future__ import annotations

from random import Random

from application.clock import Clock
from application.handlers import Logger
from domain.errors import LockLost
from domain.ports import ITaskTransitions
from domain.task import TaskStatus


class RecoverStalled:
    """Find active tasks whose lease expired and settle each as a stall.

    A stall is not an attempt: the task goes back through the retry backoff, or fails
    with reason `stalled` after `max_stalls`. The settle is fenced *and* re-checks the
    expiry, so a slow worker that renewed at the last moment keeps its task.
    """

    def __init__(
        self, queue: ITaskTransitions, clock: Clock, log: Logger, max_stalls: int, rng: Random
    ) -> None:
        self._queue = queue
        self._clock = clock
        self._log = log
        self._max_stalls = max_stalls
        self._rng = rng

    async def execute(self, queue: str, limit: int = 100) -> int:
        now = self._clock()
        recovered = 0
        for task in await self._queue.expired(queue, now, limit):
            outcome = task.stalled(now, self._max_stalls, self._rng)
            try:
                await self._queue.recover(outcome, expired_by=now)
            except LockLost:
                continue  # renewed or settled meanwhile: not a stall after all
            recovered += 1
            log = self._log.error if outcome.status is TaskStatus.FAILED else self._log.warning
            log("task.stalled", task_id=task.id, stalls=outcome.stalls, worker=task.worker_id)
        return recovered
