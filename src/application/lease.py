"""LeaseKeeper: renews a running task's lock and queue lease until told to stop."""

from __future__ import annotations

import asyncio

from application.clock import Clock
from application.execution import AbortReason, Execution
from application.handlers import Logger
from domain.errors import LockLost
from domain.ports import ILockService, ITaskTransitions
from domain.task import Task
from domain.values import Lease


class _Taken(Exception):
    """The queue's fence says the task is no longer ours."""


class LeaseKeeper:
    """Extends the Redlock lease and the queue's lease every TTL/3.

    On a definite loss (the queue's fence names another claim, or the task is no longer
    active) it aborts the execution at once. Any other failure is retried until the last
    good renewal would have expired, and only then is the execution aborted: Redis
    unreachable or frozen, and the lock refused too. While our last extension is still
    valid, no quorum can have granted the lock to anyone else (that is Redlock's
    promise), so a refusal then means masters that did not answer (pottery's no-quorum),
    not a lock held by another worker.
    """

    def __init__(
        self, queue: ITaskTransitions, locks: ILockService, clock: Clock, log: Logger
    ) -> None:
        self._queue = queue
        self._locks = locks
        self._clock = clock
        self._log = log

    async def keep(self, execution: Execution, lease: Lease, valid_until: int) -> None:
        """Renew now, then every TTL/3; `valid_until` is when the lease runs out unless
        renewed (its caller started the clock when it took the lock). A renewal also
        learns of an operator's cancel, should the worker have missed the message."""
        task = execution.task
        while True:
            started = self._clock()
            try:
                # A renewal that outlasts the lease is no renewal: waiting on for its
                # answer would let the handler run on, unguarded, past the lease's end.
                left_s = max(valid_until - started, 0) / 1000
                cancel_requested = await asyncio.wait_for(self._renew(task, lease), left_s)
            except _Taken as exc:
                self._log.error("lease.lost", reason=str(exc))
                execution.abort(AbortReason.LOCK_LOST, str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - unreachable, or refused: see the class
                if self._clock() >= valid_until:
                    self._log.error("lease.expired", reason=repr(exc))
                    detail = f"lease expired while renewal failed: {exc!r}"
                    execution.abort(AbortReason.LOCK_LOST, detail)
                    return
                self._log.warning("lease.renew_failed", error=repr(exc))
            else:
                valid_until = started + lease.ttl_ms
                if cancel_requested:
                    execution.abort(AbortReason.CANCELLED, "cancel requested")
            await asyncio.sleep(self._pause_ms(lease, valid_until) / 1000)

    def _pause_ms(self, lease: Lease, valid_until: int) -> float:
        """TTL/3, or less when the lease runs out sooner (renewals are failing): the
        handler is then stopped when the lease ends, not up to TTL/3 after."""
        return max(0, min(lease.ttl_ms / 3, valid_until - self._clock()))

    async def _renew(self, task: Task, lease: Lease) -> bool:
        # The lock first: while it cannot be extended, the queue's lease is left to run
        # out with it, and recovery is not put off past the lock's end.
        await self._locks.extend(lease)
        try:
            return await self._queue.extend_lease(task, lease.ttl_ms, self._clock())
        except LockLost as exc:
            raise _Taken(str(exc)) from exc
