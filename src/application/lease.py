"""LeaseKeeper: renews a running task's lock and queue lease until told to stop."""

from __future__ import annotations

import asyncio

from application.clock import Clock
from application.execution import AbortReason, Execution
from application.handlers import Logger
from domain.errors import LockLost
from domain.ports import ILockService, ITaskQueue, Lease
from domain.task import Task


class LeaseKeeper:
    """Extends the Redlock lease and the queue's lease every TTL/3.

    On a definite loss (someone else's token) it aborts the execution at once. On errors
    (Redis unreachable) it keeps trying until the last good renewal would have expired:
    only then is the lease certainly gone, and the execution is aborted.
    """

    def __init__(self, queue: ITaskQueue, locks: ILockService, clock: Clock, log: Logger) -> None:
        self._queue = queue
        self._locks = locks
        self._clock = clock
        self._log = log

    async def keep(self, execution: Execution, lease: Lease, valid_until: int) -> None:
        """Renew now, then every TTL/3; `valid_until` is when the lease runs out unless
        renewed (its caller started the clock when it took the lock). A renewal also
        learns of an operator's cancel, should the worker have missed the message."""
        task = execution.task
        interval = lease.ttl_ms / 3_000
        while True:
            started = self._clock()
            try:
                cancel_requested = await self._renew(task, lease)
            except LockLost as exc:
                self._log.error("lease.lost", reason=str(exc))
                execution.abort(AbortReason.LOCK_LOST, str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - any failure to reach Redis is retried
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
            await asyncio.sleep(interval)

    async def _renew(self, task: Task, lease: Lease) -> bool:
        await self._locks.extend(lease)
        return await self._queue.extend_lease(task, lease.ttl_ms, self._clock())
