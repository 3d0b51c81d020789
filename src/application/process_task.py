"""ProcessTask: run one claimed task under its Redlock lease and settle the outcome."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import math
from dataclasses import dataclass
from random import Random
from typing import Any

from application.clock import Clock
from application.execution import AbortReason, Execution
from application.failures import failure_from, json_value, timeout_failure
from application.handlers import Logger, NonRetryableError, TaskContext
from application.lease import LeaseKeeper
from application.registry import TaskRegistry, TaskType
from domain.errors import LockLost, LockNotAcquired, QueueUnavailable, SchedulerError
from domain.ports import ILockService, ITaskQueue, Lease
from domain.task import Failure, Task, TaskError, TaskStatus


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
        queue: ITaskQueue,
        locks: ILockService,
        registry: TaskRegistry,
        policy: ProcessPolicy,
        clock: Clock,
        log: Logger,
        rng: Random | None = None,
    ) -> None:
        self._queue = queue
        self._locks = locks
        self._registry = registry
        self._policy = policy
        self._clock = clock
        self._log = log
        self._rng = rng or Random()
        self._keeper = LeaseKeeper(queue, locks, clock, log)
        self._background: set[asyncio.Future[Any]] = set()

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
        task = execution.task
        ctx = self._context(task)

        def lost(detail: str) -> None:
            execution.abort(AbortReason.LOCK_LOST, detail)

        keeper = asyncio.create_task(self._keeper.keep(task, lease, lost))
        try:
            outcome = await self._outcome(execution, task_type, payload, ctx)
        finally:
            keeper.cancel()
        return None if outcome is None else await self._settle(outcome)

    async def _outcome(
        self, execution: Execution, task_type: TaskType, payload: Any, ctx: TaskContext
    ) -> Task | None:
        task = execution.task
        handler = self._start(task_type, payload, ctx)
        if await self._finished_in_time(execution, handler):
            return self._decide(task, handler)
        ctx.cancel()
        if task_type.is_async:
            handler.cancel()
        # A sync handler cannot be interrupted: keep the slot (and the lease) until it
        # returns, so that no retry overlaps it.
        await asyncio.wait({handler})
        if execution.reason is AbortReason.TIMEOUT:
            return task.fail(timeout_failure(task.timeout_ms), self._clock(), self._rng)
        if execution.reason is AbortReason.SHUTDOWN:
            return task.returned(self._clock())
        self._log.error("task.abandoned", reason=execution.detail)
        return None

    async def _finished_in_time(self, execution: Execution, handler: asyncio.Future[Any]) -> bool:
        aborted = asyncio.ensure_future(execution.aborted())
        try:
            timeout = execution.task.timeout_ms / 1000
            await asyncio.wait({handler, aborted}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            aborted.cancel()
        if handler.done():
            return True
        execution.abort(AbortReason.TIMEOUT)
        return False

    def _decide(self, task: Task, handler: asyncio.Future[Any]) -> Task:
        now = self._clock()
        exc = handler.exception()
        if exc is None:
            try:
                return task.complete(json_value(handler.result()), now)
            except ValueError as unstorable:
                exc = NonRetryableError(f"the handler's result cannot be stored: {unstorable}")
        self._log.debug("task.raised", error=repr(exc))
        return task.fail(failure_from(exc), now, self._rng)

    def _start(self, task_type: TaskType, payload: Any, ctx: TaskContext) -> asyncio.Future[Any]:
        if task_type.is_async:
            return asyncio.ensure_future(task_type.handler(payload, ctx))
        call = functools.partial(contextvars.copy_context().run, task_type.handler, payload, ctx)
        return asyncio.get_running_loop().run_in_executor(None, call)

    async def _settle(self, outcome: Task, *, announce: bool = True) -> Task | None:
        try:
            await self._write_outcome(outcome)
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

    async def _write_outcome(self, outcome: Task) -> None:
        """Settle, retrying while Redis is unreachable for at most half the lease."""
        give_up_at = self._clock() + self._policy.lock_ttl_ms // 2
        delay_s = 0.05
        while True:
            try:
                await self._queue.settle(outcome)
                return
            except QueueUnavailable as exc:
                if self._clock() + delay_s * 1000 >= give_up_at:
                    raise
                self._log.warning("task.settle_retry", reason=str(exc), retry_in_s=delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 1.0)

    def _log_outcome(self, task: Task) -> None:
        last = task.history[-1] if task.history else None
        duration = None if last is None else last.finished_at - last.started_at
        if task.status is TaskStatus.COMPLETED:
            self._log.info("task.completed", duration_ms=duration)
        elif task.status is TaskStatus.FAILED:
            self._log.error("task.failed", duration_ms=duration, error=_error_fields(task))
        elif task.status is TaskStatus.DELAYED:
            self._log.warning("task.retrying", run_at=task.run_at, error=_error_fields(task))
        else:
            self._log.info("task.returned")

    def _context(self, task: Task) -> TaskContext:
        loop = asyncio.get_running_loop()

        def report(progress: Any) -> None:
            loop.call_soon_threadsafe(self._write_progress, task, progress)

        return TaskContext(
            task_id=task.id,
            queue=task.queue,
            attempt=task.attempt,
            fence=task.fence,
            log=self._log,
            on_progress=report,
        )

    def _write_progress(self, task: Task, progress: Any) -> None:
        write = asyncio.ensure_future(self._queue.set_progress(task, progress))
        self._background.add(write)
        write.add_done_callback(self._progress_written)

    def _progress_written(self, write: asyncio.Future[Any]) -> None:
        self._background.discard(write)
        if not write.cancelled() and write.exception() is not None:
            self._log.warning("task.progress_not_recorded", error=repr(write.exception()))


def _error_fields(task: Task) -> dict[str, str] | None:
    if task.error is None:
        return None
    return {"type": task.error.type, "message": task.error.message}
