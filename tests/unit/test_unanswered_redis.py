"""A Redis that did not answer in time (frozen, then resumed): what the worker makes of a
write whose answer was lost, of renewals that fail, and of a claim that ran unheard."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from random import Random

import pytest
from pydantic import BaseModel

from application.enqueue_task import EnqueueTask
from application.handlers import TaskContext
from application.recover_stalled import RecoverStalled
from application.registry import TaskRegistry, TaskType
from application.running.execution import Execution
from application.running.leases import LeaseKeeper
from application.running.process_task import ProcessPolicy, ProcessTask
from application.schedules import FireSchedules
from application.sweep_finished import Retention, SweepFinished
from application.workers import Heartbeat
from domain.errors import LockLost, QueueUnavailable
from domain.queue_order import QueueOrder
from domain.task import Interruption, Task, TaskStatus
from domain.values import ClaimBatch, ClaimRequest, Lease, LeaseState, WorkerInfo
from infrastructure.calendar import Calendar
from interfaces.workers.chores import Chores
from interfaces.workers.worker import Worker
from tests.fakes import (
    Clock,
    InMemoryLockService,
    InMemoryTaskQueue,
    ManualClock,
    RecordingLog,
    eventually,
    monotonic_ms,
)
from tests.fakes_schedules import InMemorySchedules

NOW = 1_700_000_000_000
POLICY = ProcessPolicy(lock_ttl_ms=300, lock_tries=1, lock_denied_delay_ms=5_000)
WAIT_S = 5.0
LOST = "Redis is unreachable: Timeout reading from 127.0.0.1:6379"


class Empty(BaseModel):
    pass


class Runs:
    """The test's handlers, counting how often each task ran."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.active = 0
        self.gate = asyncio.Event()

    async def echo(self, payload: Empty, ctx: TaskContext) -> str:
        self.count[ctx.task_id] += 1
        return "done"

    async def held(self, payload: Empty, ctx: TaskContext) -> str:
        self.count[ctx.task_id] += 1
        self.active += 1
        try:
            await self.gate.wait()
        finally:
            self.active -= 1
        return "done"

    def registry(self) -> TaskRegistry:
        registry = TaskRegistry()
        registry.add(TaskType("echo", Empty, self.echo), TaskType("held", Empty, self.held))
        return registry


def new_task(task_id: str, name: str = "echo", queue: str = "default") -> Task:
    return Task(id=task_id, name=name, payload={}, queue=queue, created_at=NOW, run_at=NOW)


async def claimed(queue: InMemoryTaskQueue, task_id: str = "t1") -> Task:
    await queue.enqueue([new_task(task_id)])
    (task,) = (await queue.claim("default", "w1", 1, 60_000, NOW)).tasks
    return task


def process(queue: InMemoryTaskQueue, locks: InMemoryLockService, log: RecordingLog) -> ProcessTask:
    clock = ManualClock(NOW)
    return ProcessTask(
        queue=queue,
        locks=locks,
        registry=Runs().registry(),
        policy=POLICY,
        clock=clock,
        log=log,
        rng=Random(1),
    )


# --- a settle whose answer was lost -----------------------------------------------------------


class AnswerLostQueue(InMemoryTaskQueue):
    """The first settle is written, but its answer never comes back (Redis froze after
    running it); the next settles are answered."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(60_000, clock)
        self.settles = 0

    async def settle(
        self, task: Task, *, lease: Lease | None = None, then: ClaimRequest | None = None
    ) -> ClaimBatch:
        self.settles += 1
        batch = await super().settle(task, lease=lease, then=then)
        if self.settles == 1:
            raise QueueUnavailable(LOST)
        return batch


class RecoveredMeanwhileQueue(InMemoryTaskQueue):
    """The first settle never reaches Redis, and stall recovery settles the task first."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(60_000, clock)
        self.settles = 0

    async def settle(
        self, task: Task, *, lease: Lease | None = None, then: ClaimRequest | None = None
    ) -> ClaimBatch:
        self.settles += 1
        if self.settles == 1:
            stored = await self.get(task.id, task.queue)
            expired = NOW + 60_001  # the lease ran out while Redis was away
            await super().recover(stored.stalled(expired, 3, Random(0)), expired_by=expired)
            raise QueueUnavailable(LOST)
        return await super().settle(task, lease=lease, then=then)


async def test_an_outcome_written_whose_answer_was_lost_is_logged_once_as_written() -> None:
    queue, log = AnswerLostQueue(ManualClock(NOW)), RecordingLog()
    execution = Execution(await claimed(queue))

    await asyncio.wait_for(process(queue, InMemoryLockService(), log).execute(execution), WAIT_S)

    assert queue.settles == 2  # the retry was accepted: the store knows the token it came with
    stored = await queue.get("t1")
    assert stored.status is TaskStatus.COMPLETED
    assert [entry.outcome for entry in stored.history] == ["completed"]
    assert log.names().count("task.completed") == 1
    assert "task.outcome_refused" not in log.names()


async def test_an_outcome_refused_after_a_lost_answer_is_still_refused_when_not_ours() -> None:
    queue, log = RecoveredMeanwhileQueue(ManualClock(NOW)), RecordingLog()
    execution = Execution(await claimed(queue))

    await asyncio.wait_for(process(queue, InMemoryLockService(), log).execute(execution), WAIT_S)

    stored = await queue.get("t1")
    assert [entry.outcome for entry in stored.history] == ["stalled"]
    assert "task.outcome_refused" in log.names("warning")
    assert "task.completed" not in log.names()


async def test_a_deferral_written_whose_answer_was_lost_is_logged_as_deferred() -> None:
    queue, log = AnswerLostQueue(ManualClock(NOW)), RecordingLog()
    locks = InMemoryLockService()
    await locks.acquire("task:t1", 60_000, None)  # another worker holds the lock
    execution = Execution(await claimed(queue))

    await asyncio.wait_for(process(queue, locks, log).execute(execution), WAIT_S)

    stored = await queue.get("t1")
    assert (stored.status, stored.run_at) == (TaskStatus.DELAYED, NOW + 5_000)
    assert "task.deferred" in log.names("info")
    assert "task.outcome_refused" not in log.names()


# --- renewals that fail ---------------------------------------------------------------------

KEEPER_TTL_MS = 30  # renewals every 10 ms


class NoQuorumLocks(InMemoryLockService):
    """A lock whose masters do not answer: pottery's no-quorum comes out as LockLost."""

    def __init__(self) -> None:
        super().__init__(ManualClock(0))  # the lock itself stays valid all along
        self.answering = False
        self.extends = 0

    async def extend(self, lease: Lease) -> None:
        self.extends += 1
        if not self.answering:
            raise LockLost(f"lock:{lease.resource}: no quorum: 1 of 1 Redlock masters unreachable")
        await super().extend(lease)


class UnreachableQueue(InMemoryTaskQueue):
    async def extend_leases(
        self, held: Sequence[tuple[Task, Lease | None]], lease_ms: int, now: int
    ) -> list[LeaseState]:
        raise QueueUnavailable(LOST)


async def leased(queue: InMemoryTaskQueue, locks: InMemoryLockService, ttl_ms: int) -> Execution:
    execution = Execution(await claimed(queue))
    execution.hold(await locks.acquire("task:t1", ttl_ms, None), monotonic_ms())
    return execution


async def rounds_until_stopped(keeper: LeaseKeeper, execution: Execution, ttl_ms: int) -> None:
    """The worker's renewal loop, for one task, until its handler is told to stop."""
    while execution.reason is None:
        await asyncio.sleep(keeper.pause_ms([execution], ttl_ms) / 1000)
        await keeper.renew([execution], ttl_ms)


async def test_a_lock_refused_for_want_of_a_quorum_is_retried_while_the_lease_is_valid() -> None:
    clock = ManualClock(NOW)
    queue, log, locks = InMemoryTaskQueue(60_000, clock), RecordingLog(), NoQuorumLocks()
    execution = Execution(await claimed(queue))
    execution.hold(await locks.acquire("task:t1", KEEPER_TTL_MS, None), NOW)
    keeper = LeaseKeeper(queue, locks, clock, log)

    for _ in range(2):
        await keeper.renew([execution], KEEPER_TTL_MS)
    assert log.names("warning").count("lease.lock_renew_failed") == 2
    assert execution.reason is None  # the last extension is valid: nobody else has it
    locks.answering = True  # Redis is back
    clock.advance(KEEPER_TTL_MS // 2)
    await keeper.renew([execution], KEEPER_TTL_MS)
    assert execution.valid_until == clock() + KEEPER_TTL_MS  # renewed, lock and lease

    locks.answering = False
    clock.advance(KEEPER_TTL_MS)  # and away again, past the lease's end
    await keeper.renew([execution], KEEPER_TTL_MS)
    assert execution.reason is Interruption.LOCK_LOST
    assert "lease.expired" in log.names("error")
    assert "lease.lost" not in log.names()


async def test_the_keeper_stops_the_handler_when_the_lease_ends_not_a_renewal_later() -> None:
    queue, log = UnreachableQueue(60_000), RecordingLog()
    locks = InMemoryLockService(ManualClock(0))
    execution = await leased(queue, locks, 6_000)  # renewals every 2 s
    execution.valid_until = monotonic_ms() + 100  # the last good renewal was long ago
    keeper = LeaseKeeper(queue, locks, monotonic_ms, log)
    started = monotonic_ms()

    await asyncio.wait_for(rounds_until_stopped(keeper, execution, 6_000), WAIT_S)

    assert execution.reason is Interruption.LOCK_LOST
    assert monotonic_ms() - started < 1_000  # not at the next renewal, 2 s on


class FrozenQueue(InMemoryTaskQueue):
    """A renewal that gets no answer at all: Redis frozen, and no timeout to end it."""

    async def extend_leases(
        self, held: Sequence[tuple[Task, Lease | None]], lease_ms: int, now: int
    ) -> list[LeaseState]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_renewal_without_an_answer_is_given_up_when_the_lease_ends() -> None:
    queue, log = FrozenQueue(60_000), RecordingLog()
    locks = InMemoryLockService(ManualClock(0))
    execution = await leased(queue, locks, 6_000)
    execution.valid_until = monotonic_ms() + 200
    keeper = LeaseKeeper(queue, locks, monotonic_ms, log)
    started = monotonic_ms()

    await asyncio.wait_for(keeper.renew([execution], 6_000), WAIT_S)

    assert execution.reason is Interruption.LOCK_LOST
    assert monotonic_ms() - started < 1_000
    assert "lease.expired" in log.names("error")


# --- a claim that ran, unheard ----------------------------------------------------------------


class LostClaimQueue(InMemoryTaskQueue):
    """The first claim of queue `lost_in` that takes tasks runs, but its answer is lost."""

    def __init__(self, lost_in: str) -> None:
        super().__init__(60_000)
        self.lost_in: str | None = lost_in

    async def claim(
        self, queue: str, worker_id: str, limit: int, lease_ms: int, now: int
    ) -> ClaimBatch:
        batch = await super().claim(queue, worker_id, limit, lease_ms, now)
        if queue == self.lost_in and batch.tasks:
            self.lost_in = None
            raise QueueUnavailable(LOST)
        return batch


class Registry:
    """IWorkerRegistry, forgetful: the heartbeats are not what these tests look at."""

    async def heartbeat(
        self, worker: WorkerInfo, ttl_ms: int, increments: Mapping[str, float]
    ) -> None:
        return None

    async def metric_totals(self) -> dict[str, float]:
        return {}

    async def forget(self, worker_id: str) -> None:
        return None

    async def live(self, now: int) -> list[WorkerInfo]:
        return []


@pytest.fixture
def runs() -> Runs:
    return Runs()


@asynccontextmanager
async def running_worker(
    queue: InMemoryTaskQueue, runs: Runs, log: RecordingLog, concurrency: int
) -> AsyncIterator[None]:
    process = ProcessTask(
        queue=queue,
        locks=InMemoryLockService(),
        registry=runs.registry(),
        policy=ProcessPolicy(lock_ttl_ms=60_000),  # nothing stalls during the test
        clock=monotonic_ms,
        log=log,
    )
    chores = Chores(
        feed=queue,
        keeper=LeaseKeeper(queue, InMemoryLockService(), monotonic_ms, log),
        recover=RecoverStalled(queue, monotonic_ms, log, max_stalls=3, rng=Random(0)),
        sweep=SweepFinished(queue, monotonic_ms, Retention()),
        heartbeat=Heartbeat(Registry(), monotonic_ms),
        schedules=FireSchedules(
            store=InMemorySchedules(),
            calendar=Calendar(),
            enqueue_task=EnqueueTask(
                queue, runs.registry(), monotonic_ms, lambda: "id", 60_000, queues=["first"]
            ),
            views=queue,
            clock=monotonic_ms,
            log=log,
        ),
        log=log,
    )
    worker = Worker(
        queue=queue,
        feed=queue,
        process=process,
        chores=chores,
        queues=QueueOrder(["first", "second"]),
        concurrency=concurrency,
        worker_id="w1",
        lease_ms=60_000,
        grace_s=1.0,
        clock=monotonic_ms,
        log=log,
    )
    running = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        runs.gate.set()
        worker.stop()
        await asyncio.wait_for(running, WAIT_S)


def adopted(log: RecordingLog) -> list[str]:
    return [fields["task_id"] for _, event, fields in log.events if event == "worker.claim_adopted"]


async def test_tasks_a_claim_took_unheard_are_run_once_without_a_stall(runs: Runs) -> None:
    queue, log = LostClaimQueue(lost_in="second"), RecordingLog()
    # One claim round takes "a" from the first queue and "b" from the second, and its
    # answer is lost: both are adopted.
    await queue.enqueue([new_task("a", "held", "first"), new_task("b", "echo", "second")])

    async def finished(task_id: str, name: str) -> bool:
        return (await queue.get(task_id, name)).status is TaskStatus.COMPLETED

    async with running_worker(queue, runs, log, concurrency=4):
        await eventually(lambda: finished("b", "second"))
        runs.gate.set()
        await eventually(lambda: finished("a", "first"))

    assert runs.count == Counter({"a": 1, "b": 1})
    for task_id, name in (("a", "first"), ("b", "second")):
        history = (await queue.get(task_id, name)).history
        assert [entry.outcome for entry in history] == ["completed"]
    assert sorted(adopted(log)) == ["a", "b"]


async def test_tasks_taken_unheard_count_against_the_concurrency(runs: Runs) -> None:
    queue, log = LostClaimQueue(lost_in="second"), RecordingLog()
    await queue.enqueue([new_task(f"t{n}", "held", "second") for n in range(3)])

    async with running_worker(queue, runs, log, concurrency=2):
        await eventually(lambda: runs.active == 2)
        assert sorted(adopted(log)) == ["t0", "t1"]
        with pytest.raises(AssertionError):  # the third waits for a free slot
            await eventually(lambda: runs.active > 2, timeout_s=0.3)
        runs.gate.set()
        await eventually(lambda: sum(runs.count.values()) == 3)
    assert runs.count == Counter({"t0": 1, "t1": 1, "t2": 1})
