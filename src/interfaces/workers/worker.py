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
from domain.ports import ITaskQueue
from domain.task import Task

IDLE_WAIT_MS = 5_000  # longest block on the marker; a wake-up is then a cheap claim
ERROR_BACKOFF_MAX_S = 5.0


class Worker:
    """Up to `concurrency` tasks at once in one asyncio process.

    The fetch loop claims only as many tasks as there are free slots (so a claimed task
    never waits in this process), and blocks on the queue's marker while idle. `stop()`
    stops claiming; `run()` then waits up to `grace_s` for running tasks and gives the
    rest back to the queue.
    """

    def __init__(
        self,
        queue: ITaskQueue,
        process: ProcessTask,
        recover: RecoverStalled,
        *,
        queues: Sequence[str],
        concurrency: int,
        worker_id: str,
        lease_ms: int,
        grace_s: float,
        clock: Clock,
        log: Any,
    ) -> None:
        self._queue = queue
        self._process = process
        self._recover = recover
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
        recovery = asyncio.create_task(self._recover_loop())
        try:
            await self._fetch_loop()
        finally:
            recovery.cancel()
            await self._drain()
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
            batch = await self._queue.claim(name, self._worker_id, free, self._lease_ms, now)
            for task in batch.tasks:
                self._spawn(task)
            claimed = claimed or bool(batch.tasks)
            free -= len(batch.tasks)
            if batch.next_due_at is not None:
                next_due = min(next_due or batch.next_due_at, batch.next_due_at)
            if free <= 0:
                break
        return claimed, next_due

    async def _idle(self, next_due: int | None) -> None:
        timeout = IDLE_WAIT_MS
        if next_due is not None:
            timeout = min(timeout, next_due - self._clock())
        if timeout <= 0:
            return
        self._waiter = asyncio.create_task(self._queue.wait_for_work(self._queues, timeout))
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

    async def _sleep_unless_stopped(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
