"""ProcessTask: run one claimed task under its Redlock lease and settle the outcome."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

from application.clock import Clock
from application.execution import AbortReason, Execution
from application.failures import failure_from, json_value, timeout_failure
from application.handlers import Logger, NonRetryableError, TaskContext
from application.lease import LeaseKeeper
from application.progress import ProgressReporter
from application.registry import TaskRegistry, TaskType
from application.run_handler import Interrupted, run_handler
from domain.errors import LockLost, LockNotAcquired, QueueUnavailable, SchedulerError
from domain.ports import ILockService, ITaskTransitions, ITaskViews
from domain.task import Failure, Task, TaskError, TaskStatus
from domain.values import Lease


@dataclass(frozen=True, slots=True)
class ProcessPolicy:
    lock_ttl_ms: int = 30_000
    lock_tries: int = 3  # seed 002's Redlock settings: 3 tries, 200 ms apart, 100 ms jitter
    lock_retry_delay_ms: int = 200
    lock_retry_jitter_ms: int = 100
    lock_denied_delay_ms: int = 5_000  # then back to delayed for this long, no attempt spent
    shutdown_grace_ms: int = 30_000

    def extension_budget(self, task: Task, task_type: TaskType) -> int | None:
        """How often the lock may be renewed: enough for the whole timeout and the grace.

        A sync handler cannot be stopped, only asked to stop; it may outlive its timeout,
        and its lock must outlive it, so its budget is unbounded.
        """
        if not task_type.is_async:
            return None
        renewals = (task.timeout_ms + self.shutdown_grace_ms) / (self.lock_ttl_ms / 3)
        return math.ceil(renewals) + 2


class ProcessTask:
    """Take `lock:task:<id>`, run the handler while the lease is renewed, settle, release.

    The lock is tried as the policy says; still denied, the task goes back to `delayed`
    without spending an attempt. The outcome is decided by `Task` and written fenced: a
    worker that lost its lease gets `LockLost` from the queue and records nothing.
    """

    def __init__(
        self,
        *,
        queue: ITaskTransitions,
        views: ITaskViews,
        locks: ILockService,
        registry: TaskRegistry,
        policy: ProcessPolicy,
        clock: Clock,
        log: Logger,
        rng: Random | None = None,
    ) -> None:
        self._queue = queue
        self._views = views
        self._locks = locks
        self._registry = registry
        self._policy = policy
        self._clock = clock
        self._log = log
        self._rng = rng or Random()
        self._keeper = LeaseKeeper(queue, locks, clock, log)

    async def execute(self, execution: Execution) -> Task | None:
        task = execution.task
        try:
            task_type = self._registry.get(task.name)
            payload = self._registry.parse(task_type, task.payload)
        except SchedulerError as exc:
            failure = Failure(TaskError(type(exc).__name__, str(exc)), retryable=False)
            return await self._settle(task.fail(failure, self._clock(), self._rng))
        lease = await self._acquire(task, task_type)
        if lease is None:
            deferred = task.lock_denied(self._clock(), self._policy.lock_denied_delay_ms)
            if await self._settle(deferred, announce=False):
                self._log.info("task.deferred", run_at=deferred.run_at, reason="lock_denied")
            return None
        try:
            return await self._run_leased(execution, task_type, payload, lease)
        finally:
            await self._release(lease)

    async def _acquire(self, task: Task, task_type: TaskType) -> Lease | None:
        policy = self._policy
        budget = policy.extension_budget(task, task_type)
        for attempt in range(1, policy.lock_tries + 1):
            try:
                return await self._locks.acquire(f"task:{task.id}", policy.lock_ttl_ms, budget)
            except LockNotAcquired as exc:
                if attempt == policy.lock_tries:
                    self._log.warning("task.lock_denied", reason=str(exc))
                    return None
                jitter = self._rng.uniform(0, policy.lock_retry_jitter_ms)
                await asyncio.sleep((policy.lock_retry_delay_ms + jitter) / 1000)
        return None

    async def _release(self, lease: Lease) -> None:
        try:
            await self._locks.release(lease)
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself anyway
            self._log.warning("lock.release_failed", error=repr(exc))

    async def _run_leased(
        self, execution: Execution, task_type: TaskType, payload: Any, lease: Lease
    ) -> Task | None:
        if not await self._lease_still_ours(execution.task, lease):
            return None
        stop_keeping = self._keep_lease(execution, lease)
        try:
            outcome = await self._outcome(execution, task_type, payload)
        finally:
            stop_keeping()
        return None if outcome is None else await self._settle(outcome, lease=lease)

    async def _lease_still_ours(self, task: Task, lease: Lease) -> bool:
        """The queue's lease started at the claim. If taking the lock was slow (retries, a
        slow master), renew it before the handler starts, or give the task up if it was
        already recovered by someone else: it must not run twice."""
        if self._clock() - (task.started_at or 0) < lease.ttl_ms / 3:
            return True
        try:
            await self._queue.extend_lease(task, lease.ttl_ms, self._clock())
        except LockLost as exc:
            self._log.warning("task.lease_expired_before_start", reason=str(exc))
            return False
        return True

    def _keep_lease(self, execution: Execution, lease: Lease) -> Callable[[], None]:
        """Start renewing after one interval (most tasks are done by then: no keeper task
        is ever created for them); the returned function stops it."""
        loop = asyncio.get_running_loop()
        keeper: list[asyncio.Task[None]] = []
        valid_until = self._clock() + lease.ttl_ms

        def start() -> None:
            keeper.append(loop.create_task(self._keeper.keep(execution, lease, valid_until)))

        timer = loop.call_later(lease.ttl_ms / 3_000, start)

        def stop() -> None:
            timer.cancel()
            for running in keeper:
                running.cancel()

        return stop

    async def _outcome(
        self, execution: Execution, task_type: TaskType, payload: Any
    ) -> Task | None:
        task = execution.task
        progress = ProgressReporter(self._queue, task, self._log)
        ctx = self._context(task, progress)
        try:
            result = await run_handler(execution, task_type, payload, ctx)
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
        except ValueError as unstorable:
            failure = failure_from(
                NonRetryableError(f"the handler's result cannot be stored: {unstorable}")
            )
            return task.fail(failure, self._clock(), self._rng)

    def _interrupted(self, execution: Execution) -> Task | None:
        task = execution.task
        if execution.reason is AbortReason.TIMEOUT:
            return task.fail(timeout_failure(task.timeout_ms), self._clock(), self._rng)
        if execution.reason is AbortReason.SHUTDOWN:
            return task.returned(self._clock())
        if execution.reason is AbortReason.CANCELLED:
            return task.cancelled(self._clock())
        if execution.reason is AbortReason.KILLED:
            self._log.warning("task.killed")
            return None
        self._log.error("task.abandoned", reason=execution.detail)
        return None

    async def _settle(
        self, outcome: Task, *, announce: bool = True, lease: Lease | None = None
    ) -> Task | None:
        try:
            await self._write_outcome(outcome, lease)
        except LockLost as exc:
            self._log.warning("task.outcome_refused", reason=str(exc))
            return None
        except QueueUnavailable as exc:
            # The lease runs out while Redis is away: the task is recovered as a stall.
            self._log.error("task.outcome_not_recorded", reason=str(exc))
            return None
        if announce:
            self._log_outcome(outcome)
        return outcome

    async def _write_outcome(self, outcome: Task, lease: Lease | None) -> None:
        """Settle, retrying while Redis is unreachable for at most half the lease. The
        queue may release the lease with the outcome (see ITaskTransitions.settle).

        An attempt that got no answer (a timeout, a frozen Redis) may still have been
        written when Redis resumed; the retry is then refused by the fence, and the
        stored task tells whether the outcome refused is in fact ours already."""
        give_up_at = self._clock() + self._policy.lock_ttl_ms // 2
        delay_s = 0.05
        unanswered = False
        while True:
            try:
                await self._queue.settle(outcome, release=lease)
                return
            except LockLost:
                if unanswered and await self._written(outcome):
                    return
                raise
            except QueueUnavailable as exc:
                unanswered = True
                if self._clock() + delay_s * 1000 >= give_up_at:
                    raise
                self._log.warning("task.settle_retry", reason=str(exc), retry_in_s=delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 1.0)

    async def _written(self, outcome: Task) -> bool:
        try:
            stored = await self._views.get(outcome.id, outcome.queue)
        except SchedulerError:  # gone, or Redis away again: not known to be ours
            return False
        written = _shows(stored, outcome)
        if written:
            self._log.info("task.settle_answer_lost", status=outcome.status.value)
        return written

    def _log_outcome(self, task: Task) -> None:
        last = task.history[-1] if task.history else None
        duration = None if last is None else last.finished_at - last.started_at
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

    def _context(self, task: Task, progress: ProgressReporter) -> TaskContext:
        return TaskContext(
            task_id=task.id,
            queue=task.queue,
            attempt=task.attempt,
            fence=task.fence,
            log=self._log,
            on_progress=progress.report,
        )


def _shows(stored: Task, outcome: Task) -> bool:
    """Whether `stored` is `outcome` as written, or grew from it since: it holds the
    history entry `outcome` added (the same worker, start and end, to the millisecond;
    a later claim keeps it). A deferral adds no entry: then the task must still be at
    the same fence, status and due time."""
    entry = outcome.history[-1] if outcome.history else None
    if entry is not None and entry.started_at == outcome.started_at:
        return entry in stored.history
    same = (stored.fence, stored.status, stored.run_at, stored.history)
    return same == (outcome.fence, outcome.status, outcome.run_at, outcome.history)


def _error_fields(task: Task) -> dict[str, str] | None:
    if task.error is None:
        return None
    return {"type": task.error.type, "message": task.error.message}
