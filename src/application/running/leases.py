"""LeaseKeeper: renews the leases of a worker's running tasks, one round at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from application.clock import Clock
from application.handlers import Logger
from application.meter import LOCK_RENEWALS, Meter
from application.running.execution import Execution
from domain.errors import SchedulerError
from domain.ports import ILockService, ITaskTransitions
from domain.task import Interruption
from domain.values import LeaseState


class LeaseKeeper:
    """One round renews every running task's lease in one call to the task store, with
    the locks the store took with the tasks; locks of the lock service (several masters)
    are extended beside it, each on its own.

    A definite loss (the store says the task is no longer this holder's) stops the
    handler at once. Any other failure is retried next round, until the last good
    renewal runs out, and only then is the handler stopped: Redis unreachable or frozen,
    or a lock refused. While our last extension is still valid no quorum can have granted
    the lock to anyone else (Redlock's promise), so a refusal then means masters that did
    not answer, not a lock held by another worker; the task's lease is then left to run
    out with its lock, so recovery is not put off past the lock's end.
    """

    def __init__(
        self,
        queue: ITaskTransitions,
        locks: ILockService,
        clock: Clock,
        log: Logger,
        meter: Meter | None = None,
    ) -> None:
        self._queue = queue
        self._locks = locks
        self._clock = clock
        self._log = log
        self._meter = meter or Meter()

    async def renew(self, running: Sequence[Execution], ttl_ms: int) -> None:
        """One round over the executions that hold a lease. One that was asked to stop is
        renewed too, until it returns: a sync handler may run on past its timeout, and
        no retry may overlap it."""
        leased = [e for e in running if e.lease is not None]
        if not leased:
            return
        started = self._clock()
        renewable = [e for e in await self._extend_locks(leased) if e is not None]
        states = await self._extend_leases(renewable, ttl_ms, started) if renewable else []
        for execution, state in zip(renewable, states, strict=False):
            self._apply(execution, state, started + ttl_ms)
        self._expire(leased)

    async def _extend_leases(
        self, renewable: Sequence[Execution], ttl_ms: int, started: int
    ) -> list[LeaseState]:
        """The store's answer, or [] when it gave none before the leases run out: a renewal
        that outlasts them is no renewal, and the handlers must not run on, unguarded,
        while it waits."""
        left_s = max(min(e.valid_until for e in renewable) - started, 0) / 1000
        try:
            async with asyncio.timeout(left_s):
                return await self._queue.extend_leases(
                    [(e.task, e.lease) for e in renewable], ttl_ms, started
                )
        except (SchedulerError, TimeoutError) as exc:
            self._meter.count(LOCK_RENEWALS, len(renewable), "failed")
            self._log.warning("lease.renew_failed", error=repr(exc))
            return []

    def pause_ms(self, running: Sequence[Execution], ttl_ms: int) -> float:
        """Until the next round: TTL/3, or less when a lease runs out sooner (renewals
        are failing), so its handler is stopped when the lease ends, not up to TTL/3 after."""
        ends = [e.valid_until for e in running if e.lease is not None]
        soonest = min(ends, default=self._clock() + ttl_ms) - self._clock()
        return max(0, min(ttl_ms / 3, soonest))

    async def _extend_locks(self, leased: Sequence[Execution]) -> list[Execution | None]:
        """The executions whose lock held (those the store renews itself, and those the
        lock service extended); None for a lock that was refused this round. A lock whose
        handler is done is being released: it is left alone."""
        own = [
            e for e in leased if e.lease is not None and not e.lease.with_task and not e.settling
        ]
        refused = set()
        for execution, outcome in zip(
            own, await asyncio.gather(*(self._extend(e) for e in own)), strict=True
        ):
            if outcome is None or execution.settling:
                continue  # extended, or its handler returned meanwhile and released it
            self._meter.count(LOCK_RENEWALS, 1, "failed")
            self._log.warning("lease.lock_renew_failed", task_id=execution.task.id,
                              error=repr(outcome))  # fmt: skip
            refused.add(id(execution))
        return [None if id(e) in refused else e for e in leased]

    async def _extend(self, execution: Execution) -> Exception | None:
        assert execution.lease is not None
        try:
            await self._locks.extend(execution.lease)
        except SchedulerError as exc:
            return exc
        return None

    def _apply(self, execution: Execution, state: LeaseState, valid_until: int) -> None:
        if state is LeaseState.LOST and execution.settling:
            return  # settled while this round was under way (a renewal raced the settle)
        if state is LeaseState.LOST:
            self._log.error("lease.lost", task_id=execution.task.id)
            execution.abort(Interruption.LOCK_LOST, "the task is no longer this worker's")
            return
        self._meter.count(LOCK_RENEWALS, 1, "ok")
        execution.extend(valid_until, self._clock())
        if state is LeaseState.CANCEL_REQUESTED:
            execution.abort(Interruption.CANCELLED, "cancel requested")

    def _expire(self, leased: Sequence[Execution]) -> None:
        now = self._clock()
        for execution in leased:
            if execution.reason is None and now >= execution.valid_until:
                self._log.error("lease.expired", task_id=execution.task.id)
                execution.abort(Interruption.LOCK_LOST, "the lease expired while renewals failed")
