"""LeaseKeeper: renews a running task's lock and queue lease until told to stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from application.clock import Clock
from application.handlers import Logger
from domain.errors import LockLost
from domain.ports import ILockService, ITaskQueue, Lease
from domain.task import Task


class LeaseKeeper:
    """Extends the Redlock lease and the queue's lease every TTL/3.

    On a definite loss (someone else's token) it calls `on_lost` at once. On errors
    (Redis unreachable) it keeps trying until the last good renewal would have expired:
    only then is the lease certainly gone, and `on_lost` is called.
    """

    def __init__(self, queue: ITaskQueue, locks: ILockService, clock: Clock, log: Logger) -> None:
        self._queue = queue
        self._locks = locks
        self._clock = clock
        self._log = log

    async def keep(
        self, task: Task, lease: Lease, on_lost: Callable[[str], None], valid_until: int
    ) -> None:
        """Renew now, then every TTL/3; `valid_until` is when the lease runs out unless
        renewed (its caller started the clock when it took the lock)."""
        interval = lease.ttl_ms / 3_000
        while True:
            started = self._clock()
            try:
                await self._renew(task, lease)
            except LockLost as exc:
                self._log.error("lease.lost", reason=str(exc))
                on_lost(str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - any failure to reach Redis is retried
                if self._clock() >= valid_until:
                    self._log.error("lease.expired", reason=repr(exc))
                    on_lost(f"lease expired while renewal failed: {exc!r}")
                    return
                self._log.warning("lease.renew_failed", error=repr(exc))
            else:
                valid_until = started + lease.ttl_ms
            await asyncio.sleep(interval)

    async def _renew(self, task: Task, lease: Lease) -> None:
        await self._locks.extend(lease)
        await self._queue.extend_lease(task, lease.ttl_ms, self._clock())
