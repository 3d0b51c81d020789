"""ProcessTask: run one claimed task under its lock and settle the outcome."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

from application.clock import Clock
from application.handlers import Logger, TaskContext
from application.meter import (
    FENCING_REFUSALS,
    LOCKS_ACQUIRED,
    LOCKS_DENIED,
    LOCKS_LOST,
    PICKUP,
    RUN_TIME,
    Meter,
)
from application.registry import TaskRegistry, TaskType
from application.running.children import IChildPool
from application.running.execution import Execution
from application.running.failures import failure_from, json_value, unstorable
from application.running.fenced import FencedWriter
from application.running.progress import ProgressReporter
from application.running.run_handler import Interrupted, run_handler
from domain.errors import LockLost, LockNotAcquired, QueueUnavailable, SchedulerError
from domain.ports import ILockService, ITaskTransitions
from domain.task import Failure, Interruption, Task, TaskError, TaskStatus
from domain.values import ClaimBatch, ClaimRequest, Lease, LeaseState

NextClaim = Callable[[Task], ClaimRequest | None]
"""What to claim in the same step as a task's outcome (None: nothing)."""

_NOTHING = ClaimBatch([])


@dataclass(frozen=True, slots=True)
class ProcessPolicy:
    lock_ttl_ms: int = 30_000
    lock_tries: int = 3  # seed 002's Redlock settings: 3 tries, 200 ms apart, 100 ms jitter
    lock_retry_delay_ms: int = 200
    lock_retry_jitter_ms: int = 100
    lock_denied_delay_ms: int = 5_000  # then back to delayed for this long, no attempt spent
    shutdown_grace_ms: int = 30_000

    def extension_budget(self, task: Task, task_type: TaskType) -> int | None:
        """How often the lock service may renew the lock: enough for the whole timeout and
        the grace. A sync handler in a thread cannot be stopped, only asked to stop; it may
        outlive its timeout, and its lock must outlive it, so its budget is unbounded (one
        in a child process is stopped by ending its child)."""
        if not (task_type.is_async or task_type.in_child):
            return None
        renewals = (task.timeout_ms + self.shutdown_grace_ms) / (self.lock_ttl_ms / 3)
        return math.ceil(renewals) + 2


class ProcessTask:
    """Hold `lock:task:<id>`, run the handler, settle the outcome (and claim the next task
    in the same step), release the lock.

    The lock comes with the claim where the store could take it; otherwise it is tried as
    the policy says, and still denied, the task goes back to `delayed` without spending
    an attempt. The outcome is decided by `Task` and written fenced: a worker that lost
    its lease gets `LockLost` from the store and records nothing. Renewals are the
    worker's LeaseKeeper's.
    """

    def __init__(
        self,
        *,
        queue: ITaskTransitions,
        locks: ILockService,
        registry: TaskRegistry,
        policy: ProcessPolicy,
        clock: Clock,
        log: Logger,
        rng: Random | None = None,
        children: IChildPool | None = None,
        meter: Meter | None = None,
    ) -> None:
        self._queue = queue
        self._meter = meter or Meter()
        self._children = children
        self._locks = locks
        self._registry = registry
        self._policy = policy
        self._clock = clock
        self._log = log
        self._rng = rng or Random()

    async def execute(
        self, execution: Execution, next_claim: NextClaim | None = None
    ) -> ClaimBatch:
        """Run the task; the tasks claimed with its outcome, for the caller to run next."""
        task = execution.task
        try:
            task_type = self._registry.get(task.name)
            payload = self._registry.parse(task_type, task.payload)
        except SchedulerError as exc:
            failure = Failure(TaskError(type(exc).__name__, str(exc)), retryable=False)
            outcome = task.fail(failure, self._clock(), self._rng)
            return await self._settle(outcome, execution.lease, next_claim)
        if execution.lease is not None:
            self._meter.count(LOCKS_ACQUIRED, 1, "claim")
        elif not await self._acquire(execution, task_type):
            self._meter.count(LOCKS_DENIED)
            deferred = task.lock_denied(self._clock(), self._policy.lock_denied_delay_ms)
            self._log.info("task.deferred", run_at=deferred.run_at, reason="lock_denied")
            return await self._settle(deferred, None, next_claim, announce=False)
        lease = execution.lease
        assert lease is not None
        self._meter.observe(PICKUP, ((task.started_at or task.run_at) - task.run_at) / 1000,
                            task.queue)  # fmt: skip
        try:
            finished = await self._run(execution, task_type, payload)
            execution.settling = True
            return _NOTHING if finished is None else await self._settle(finished, lease, next_claim)
        finally:
            if not lease.with_task:  # the store releases its own with the outcome
                await self._release(lease)

    async def _acquire(self, execution: Execution, task_type: TaskType) -> bool:
        task, policy = execution.task, self._policy
        budget = policy.extension_budget(task, task_type)
        for attempt in range(1, policy.lock_tries + 1):
            try:
                lease = await self._locks.acquire(f"task:{task.id}", policy.lock_ttl_ms, budget)
            except LockNotAcquired as exc:
                if attempt == policy.lock_tries:
                    self._log.warning("task.lock_denied", reason=str(exc))
                    return False
                jitter = self._rng.uniform(0, policy.lock_retry_jitter_ms)
                await asyncio.sleep((policy.lock_retry_delay_ms + jitter) / 1000)
            else:
                self._meter.count(LOCKS_ACQUIRED, 1, "lock_service")
                execution.hold(lease, self._clock())
                return await self._lease_still_ours(execution, lease)
        return False

    async def _lease_still_ours(self, execution: Execution, lease: Lease) -> bool:
        """The store's lease started at the claim. If taking the lock was slow (retries, a
        slow master), renew it before the handler starts, or give the task up if it was
        already recovered by someone else: it must not run twice."""
        task = execution.task
        if self._clock() - (task.started_at or 0) < lease.ttl_ms / 3:
            return True
        (state,) = await self._queue.extend_leases([(task, None)], lease.ttl_ms, self._clock())
        if state is LeaseState.LOST:
            self._log.warning("task.lease_expired_before_start")
            await self._release(lease)
            return False
        return True

    async def _release(self, lease: Lease) -> None:
        try:
            await self._locks.release(lease)
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself anyway
            self._log.warning("lock.release_failed", error=repr(exc))

    async def _run(self, execution: Execution, task_type: TaskType, payload: Any) -> Task | None:
        """The task's new state once its handler returned or was stopped; None when there
        is nothing to record (the lock was lost, or an operator recorded it already)."""
        task = execution.task
        progress = ProgressReporter(self._queue, task, self._log)
        writer = FencedWriter(self._queue, execution, self._meter)
        ctx = self._context(task, progress, execution, writer)
        try:
            result = await run_handler(
                execution, task_type, payload, ctx, self._children, on_write=writer.write
            )
        except Interrupted:
            ctx.cancel()
            return self._interrupted(execution)
        except Exception as exc:  # noqa: BLE001 - whatever a handler raises is its failure
            self._log.debug("task.raised", error=repr(exc))
            return task.fail(failure_from(exc), self._clock(), self._rng)
        finally:
            await progress.flush()
        try:
            return task.complete(json_value(result), self._clock())
        except ValueError as reason:
            return task.fail(unstorable(reason), self._clock(), self._rng)

    def _interrupted(self, execution: Execution) -> Task | None:
        reason = execution.reason
        assert reason is not None
        outcome = execution.task.interrupted(reason, self._clock(), self._rng)
        if reason is Interruption.LOCK_LOST:
            self._meter.count(LOCKS_LOST)
        if reason is Interruption.KILLED:
            self._log.warning("task.killed")  # the operator's record stands
        elif outcome is None:
            self._log.error("task.abandoned", reason=reason.value, detail=execution.detail)
        return outcome

    async def _settle(
        self,
        outcome: Task,
        lease: Lease | None,
        next_claim: NextClaim | None,
        *,
        announce: bool = True,
    ) -> ClaimBatch:
        then = next_claim(outcome) if next_claim is not None else None
        try:
            batch = await self._write_outcome(outcome, lease, then)
        except LockLost as exc:
            self._meter.count(FENCING_REFUSALS, 1, "outcome")
            self._log.warning("task.outcome_refused", reason=str(exc))
            return _NOTHING
        except QueueUnavailable as exc:
            # The lease runs out while Redis is away: the task is recovered as a stall.
            self._log.error("task.outcome_not_recorded", reason=str(exc))
            return _NOTHING
        if announce:
            self._log_outcome(outcome)
        return batch

    async def _write_outcome(
        self, outcome: Task, lease: Lease | None, then: ClaimRequest | None
    ) -> ClaimBatch:
        """Settle, retrying while Redis is unreachable for at most half the lease. A retry
        of an outcome that was written though its answer was lost is accepted again (the
        store knows the token it came with)."""
        give_up_at = self._clock() + self._policy.lock_ttl_ms // 2
        delay_s = 0.05
        while True:
            try:
                return await self._queue.settle(outcome, lease=lease, then=then)
            except QueueUnavailable as exc:
                if self._clock() + delay_s * 1000 >= give_up_at:
                    raise
                self._log.warning("task.settle_retry", reason=str(exc), retry_in_s=delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 1.0)

    def _log_outcome(self, task: Task) -> None:
        last = task.history[-1] if task.history else None
        duration = None if last is None else last.finished_at - last.started_at
        if duration is not None:
            self._meter.observe(RUN_TIME, duration / 1000, task.name)
        if task.status is TaskStatus.COMPLETED:
            self._log.info("task.completed", duration_ms=duration)
        elif task.status is TaskStatus.CANCELLED:
            self._log.warning("task.cancelled", duration_ms=duration)
        elif task.status is TaskStatus.FAILED:
            self._log.error("task.failed", duration_ms=duration, error=_error_fields(task))
        elif task.status is TaskStatus.DELAYED:
            self._log.warning("task.retrying", run_at=task.run_at, error=_error_fields(task))
        else:
            self._log.info("task.returned")

    def _context(
        self, task: Task, progress: ProgressReporter, execution: Execution, writer: FencedWriter
    ) -> TaskContext:
        return TaskContext(
            task_id=task.id,
            queue=task.queue,
            attempt=task.attempt,
            fence=task.fence,
            log=self._log,
            on_progress=progress.report,
            lease_valid=execution.holds,
            write=writer.write,
            write_sync=writer.write_sync,
            effect_key=writer.key,
        )


def _error_fields(task: Task) -> dict[str, str] | None:
    if task.error is None:
        return None
    return {"type": task.error.type, "message": task.error.message}
