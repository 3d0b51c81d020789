"""Worker: claims tasks into free slots, runs each through ProcessTask, recovers stalls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import structlog

from application.clock import Clock
from application.execution import AbortReason, Execution
from application.process_task import ProcessTask
from application.recover_stalled import RecoverStalled
from application.sweep_finished import SweepFinished
from application.workers import Heartbeat
from domain.errors import QueueUnavailable
from domain.ports import ITaskFeed, ITaskTransitions
from domain.task import Task, TaskStatus
from domain.values import StopKind, StopRequest

IDLE_WAIT_MS = 5_000  # longest block on the marker; a wake-up is then a cheap claim
ERROR_BACKOFF_MAX_S = 5.0
SWEEP_INTERVAL_S = 60.0
ADOPT_LIMIT = 1_000  # active tasks read back after a claim that got no answer


class Worker:
    """Up to `concurrency` tasks at once in one asyncio process.

    The fetch loop claims only as many tasks as there are free slots (so a claimed task
    never waits in this process), and blocks on the queue's marker while idle. `stop()`
    stops claiming; `run()` then waits up to `grace_s` for running tasks and gives the
    rest back to the queue.
    """

    def __init__(
        self,
        *,
        queue: ITaskTransitions,
        feed: ITaskFeed,
        process: ProcessTask,
        recover: RecoverStalled,
        sweep: SweepFinished,
        heartbeat: Heartbeat,
        queues: Sequence[str],
        concurrency: int,
        worker_id: str,
        lease_ms: int,
        grace_s: float,
        clock: Clock,
        log: Any,
    ) -> None:
        self._queue = queue
        self._feed = feed
        self._process = process
        self._recover = recover
        self._sweep = sweep
        self._heartbeat = heartbeat
        self._processed = 0
        self._started_at = clock()
        self._queues = list(queues)
        self._concurrency = concurrency
        self._worker_id = worker_id
        self._lease_ms = lease_ms
        self._grace_s = grace_s
        self._clock = clock
        self._log = log
        self._running: dict[asyncio.Task[Any], Execution] = {}
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._waiter: asyncio.Task[Any] | None = None
        self._unanswered: tuple[str, int] | None = None  # a claim's queue and time

    @property
    def worker_id(self) -> str:
        return self._worker_id

    def stop(self) -> None:
        self._stopping.set()
        self._slot_freed.set()
        if self._waiter is not None:
            self._waiter.cancel()

    async def run(self) -> None:
        self._log.info("worker.started", queues=self._queues, concurrency=self._concurrency)
        helpers = [
            asyncio.create_task(self._recover_loop()),
            asyncio.create_task(self._obey_stop_requests()),
            asyncio.create_task(self._sweep_loop()),
            asyncio.create_task(self._beat_loop()),
        ]
        try:
            await self._fetch_loop()
        finally:
            for helper in helpers:
                helper.cancel()
            await self._drain()
            with contextlib.suppress(Exception):
                await self._heartbeat.stop(self._worker_id)
            self._log.info("worker.stopped")

    async def _fetch_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            free = self._concurrency - len(self._running)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                if await self._adopt_unanswered():
                    continue  # they took slots: count the free ones again
                claimed, next_due = await self._claim(free)
                if not claimed:
                    await self._idle(next_due)
                failures = 0
            except asyncio.CancelledError:
                if not self._stopping.is_set():
                    raise
            except Exception as exc:  # noqa: BLE001 - Redis down: back off, keep the process
                failures += 1
                delay = min(ERROR_BACKOFF_MAX_S, 0.1 * 2**failures)
                self._log.warning("worker.claim_failed", error=repr(exc), retry_in_s=delay)
                await self._sleep_unless_stopped(delay)

    async def _claim(self, free: int) -> tuple[bool, int | None]:
        now = self._clock()
        claimed = False
        next_due: int | None = None
        for name in self._queues:
            try:
                batch = await self._queue.claim(name, self._worker_id, free, self._lease_ms, now)
            except QueueUnavailable:
                self._unanswered = (name, now)
                raise
            for task in batch.tasks:
                self._spawn(task)
            claimed = claimed or bool(batch.tasks)
            free -= len(batch.tasks)
            if batch.next_due_at is not None:
                next_due = min(next_due or batch.next_due_at, batch.next_due_at)
            if free <= 0:
                break
        return claimed, next_due

    async def _adopt_unanswered(self) -> int:
        """A claim that got no answer (a timeout: Redis frozen, or slow) may have run all
        the same once Redis resumed, taking tasks for this worker that it never heard of.
        Run them now rather than leave them to stall when their lease runs out. No claim
        is sent until this has answered, so there is one such claim at most. Best effort:
        a claim that Redis runs only after this looked leaves its tasks to stall recovery.
        """
        if self._unanswered is None:
            return 0
        (queue, claimed_at), self._unanswered = self._unanswered, None
        try:
            # Their lease ends lease_ms after the claim: "expired" a millisecond later.
            until = claimed_at + self._lease_ms + 1
            found = await self._queue.expired(queue, until, ADOPT_LIMIT)
        except QueueUnavailable:
            self._unanswered = (queue, claimed_at)  # still away: look after the backoff
            raise
        running = {
            (execution.task.queue, execution.task.id) for execution in self._running.values()
        }
        adopted = [
            task
            for task in found
            if self._claimed_here(task, claimed_at) and (task.queue, task.id) not in running
        ]
        for task in adopted:
            self._log.info("worker.claim_adopted", task_id=task.id, queue=task.queue)
            self._spawn(task)
        return len(adopted)

    def _claimed_here(self, task: Task, claimed_at: int) -> bool:
        return (
            task.status is TaskStatus.ACTIVE
            and task.worker_id == self._worker_id
            and task.started_at == claimed_at
        )

    async def _idle(self, next_due: int | None) -> None:
        timeout = IDLE_WAIT_MS
        if next_due is not None:
            timeout = min(timeout, next_due - self._clock())
        if timeout <= 0:
            return
        self._waiter = asyncio.create_task(self._feed.wait_for_work(self._queues, timeout))
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _spawn(self, task: Task) -> None:
        execution = Execution(task)
        running = asyncio.create_task(self._execute(execution))
        self._running[running] = execution
        running.add_done_callback(self._finished)

    async def _execute(self, execution: Execution) -> None:
        task = execution.task
        structlog.contextvars.bind_contextvars(
            task_id=task.id,
            task_name=task.name,
            queue=task.queue,
            attempt=task.attempt,
            worker_id=self._worker_id,
        )
        try:
            await self._process.execute(execution)
        except Exception:  # noqa: BLE001 - its lease expires and it is recovered as a stall
            self._log.exception("task.crashed")

    def _finished(self, running: asyncio.Task[Any]) -> None:
        self._running.pop(running, None)
        self._processed += 1
        self._slot_freed.set()

    async def _drain(self) -> None:
        if not self._running:
            return
        self._log.info("worker.draining", running=len(self._running), grace_s=self._grace_s)
        await asyncio.wait(set(self._running), timeout=self._grace_s)
        for execution in self._running.values():
            execution.abort(AbortReason.SHUTDOWN)
        if self._running:
            await asyncio.wait(set(self._running))

    async def _recover_loop(self) -> None:
        interval = min(max(self._lease_ms / 2_000, 0.5), 15.0)
        while True:
            await asyncio.sleep(interval)
            for name in self._queues:
                try:
                    await self._recover.execute(name)
                except Exception as exc:  # noqa: BLE001 - retried on the next round
                    self._log.warning("worker.recovery_failed", queue=name, error=repr(exc))

    async def _beat_loop(self) -> None:
        while True:
            try:
                await self._heartbeat.beat(
                    self._worker_id,
                    queues=self._queues,
                    concurrency=self._concurrency,
                    running=len(self._running),
                    processed=self._processed,
                    started_at=self._started_at,
                )
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                self._log.warning("worker.heartbeat_failed", error=repr(exc))
            await asyncio.sleep(self._heartbeat.interval_ms / 1000)

    async def _sweep_loop(self) -> None:
        """Retention: every worker sweeps now and then; the script makes it safe to race."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            for name in self._queues:
                try:
                    removed = await self._sweep.execute(name)
                except Exception as exc:  # noqa: BLE001 - retried on the next round
                    self._log.warning("worker.sweep_failed", queue=name, error=repr(exc))
                    continue
                if removed:
                    self._log.info("worker.swept", queue=name, removed=removed)

    async def _obey_stop_requests(self) -> None:
        """Operators' cancel and kill requests reach the handlers running here."""
        while True:
            try:
                async for request in self._feed.stop_requests(self._queues):
                    self._stop(request)
            except Exception as exc:  # noqa: BLE001 - resubscribe; renewals catch cancels meanwhile
                self._log.warning("worker.stop_requests_lost", error=repr(exc))
                await asyncio.sleep(1.0)

    def _stop(self, request: StopRequest) -> None:
        reason = AbortReason.CANCELLED if request.kind is StopKind.CANCEL else AbortReason.KILLED
        for execution in self._running.values():
            task = execution.task
            if task.id == request.task_id and task.queue == request.queue:
                execution.abort(reason, "requested by an operator")

    async def _sleep_unless_stopped(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
