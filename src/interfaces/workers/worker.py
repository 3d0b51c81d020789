"""Worker: claims tasks into free slots and runs each through ProcessTask."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from application.clock import Clock
from application.running.execution import Execution
from application.running.process_task import ProcessTask
from domain.errors import QueueUnavailable
from domain.ports import ITaskFeed, ITaskTransitions
from domain.queue_order import QueueOrder
from domain.task import Interruption, Task, TaskStatus
from domain.values import ClaimBatch, ClaimRequest
from infrastructure.logging import bind_task
from infrastructure.redis.waiter import IDLE_WAIT_MS
from interfaces.workers.chores import Chores, WorkerState

ERROR_BACKOFF_MAX_S = 5.0
ADOPT_LIMIT = 1_000  # active tasks read back after a claim that got no answer


class Worker:
    """Up to `concurrency` tasks at once in one asyncio process.

    The fetch loop claims only as many tasks as there are free slots (so a claimed task
    never waits in this process), over every queue at once in the order `queues` deals
    the slots, and blocks on the queues' markers while idle. A task's outcome is written
    in the same step as the claim of the next task of its queue, when the next turn is
    that queue's (in strict order: when it is the first queue); otherwise its slot goes
    back to the fetch loop. `stop()` stops claiming; `run()` then waits up to `grace_s`
    for running tasks and gives the rest back to the queue.
    """

    def __init__(
        self,
        *,
        queue: ITaskTransitions,
        feed: ITaskFeed,
        process: ProcessTask,
        chores: Chores,
        queues: QueueOrder,
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
        self._chores = chores
        self._processed = 0
        self._order = queues
        self._queues = queues.names
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
        self._unanswered: tuple[list[str], int] | None = None  # a claim's queues and time
        self._state = WorkerState(
            worker_id, self._queues, concurrency, lease_ms, clock(),
            running=lambda: list(self._running.values()), processed=lambda: self._processed,
        )  # fmt: skip

    @property
    def worker_id(self) -> str:
        return self._worker_id

    def stop(self) -> None:
        self._stopping.set()
        self._slot_freed.set()
        if self._waiter is not None:
            self._waiter.cancel()

    async def run(self) -> None:
        self._log.info(
            "worker.started",
            queues=self._queues,
            weights=self._order.weights,
            concurrency=self._concurrency,
        )
        chores = self._chores.start(self._state)
        try:
            await self._fetch_loop()
        finally:
            await self._drain()
            for chore in chores:  # after the drain: leases are renewed until tasks settle
                chore.cancel()
            with contextlib.suppress(Exception):
                await self._chores.forget(self._state)
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
        request = ClaimRequest(self._worker_id, free, self._lease_ms, self._clock())
        try:
            batch = await self._queue.claim_queues(self._order.quotas(free), request)
        except QueueUnavailable:
            self._unanswered = (self._queues, request.now)
            raise
        self._spawn_all(batch)
        return bool(batch.tasks), batch.next_due_at

    async def _adopt_unanswered(self) -> int:
        """A claim that got no answer (a timeout: Redis frozen, or slow) may have run all
        the same once Redis resumed, taking tasks for this worker that it never heard of.
        Run them now rather than leave them to stall when their lease runs out. No claim
        is sent until this has answered, so there is one such claim at most. Best effort:
        a claim that Redis runs only after this looked leaves its tasks to stall recovery.
        """
        if self._unanswered is None:
            return 0
        (queues, claimed_at), self._unanswered = self._unanswered, None
        found: list[Task] = []
        try:
            # Their lease ends lease_ms after the claim: "expired" a millisecond later.
            until = claimed_at + self._lease_ms + 1
            for queue in queues:
                found += await self._queue.expired(queue, until, ADOPT_LIMIT)
        except QueueUnavailable:
            self._unanswered = (queues, claimed_at)  # still away: look after the backoff
            raise
        running = {(e.task.queue, e.task.id) for e in self._running.values()}
        adopted = [
            task
            for task in found
            if self._claimed_here(task, claimed_at) and (task.queue, task.id) not in running
        ]
        for task in adopted:
            self._log.info("worker.claim_adopted", task_id=task.id, queue=task.queue)
            self._spawn(Execution(task))
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

    def _spawn_all(self, batch: ClaimBatch) -> None:
        now = self._clock()
        for task in batch.tasks:
            self._spawn(Execution(task, batch.leases.get(task.id), now))

    def _spawn(self, execution: Execution) -> None:
        running = asyncio.create_task(self._execute(execution))
        self._running[running] = execution
        running.add_done_callback(self._finished)

    async def _execute(self, execution: Execution) -> None:
        task = execution.task
        bind_task(
            task_id=task.id,
            task_name=task.name,
            queue=task.queue,
            attempt=task.attempt,
            worker_id=self._worker_id,
        )
        try:
            self._spawn_all(await self._process.execute(execution, self._next_claim))
        except Exception:  # noqa: BLE001 - its lease expires and it is recovered as a stall
            self._log.exception("task.crashed")

    def _next_claim(self, outcome: Task) -> ClaimRequest | None:
        """The task to claim with `outcome`, into the slot it frees: one of its queue, if
        the next turn is that queue's and the worker goes on."""
        if self._stopping.is_set() or not self._order.take_turn(outcome.queue):
            return None
        return ClaimRequest(self._worker_id, 1, self._lease_ms, self._clock())

    def _finished(self, running: asyncio.Task[Any]) -> None:
        self._running.pop(running, None)
        self._processed += 1
        self._slot_freed.set()

    async def _drain(self) -> None:
        if not self._running:
            return
        self._log.info("worker.draining", running=len(self._running), grace_s=self._grace_s)
        await asyncio.wait(set(self._running), timeout=self._grace_s)
        while self._running:  # a task may have claimed its successor before the stop
            for execution in self._running.values():
                execution.abort(Interruption.SHUTDOWN)
            await asyncio.wait(set(self._running))

    async def _sleep_unless_stopped(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
