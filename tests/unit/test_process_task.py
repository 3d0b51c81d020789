"""ProcessTask and RecoverStalled against the in-memory queue and lock fakes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from random import Random
from typing import Any

import pytest
from pydantic import BaseModel

from application.handlers import NonRetryableError, RetryAfter, TaskCancelled, TaskContext
from application.recover_stalled import RecoverStalled
from application.registry import TaskRegistry, TaskType
from application.running.execution import Execution
from application.running.leases import LeaseKeeper
from application.running.process_task import ProcessPolicy, ProcessTask
from domain.errors import QueueUnavailable
from domain.task import Backoff, Interruption, StopKind, Task, TaskStatus
from domain.values import ClaimBatch, ClaimRequest, Lease, LeaseState
from tests.fakes import (
    Clock,
    InMemoryLockService,
    InMemoryTaskQueue,
    ManualClock,
    RecordingLog,
    eventually,
    monotonic_ms,
)

NOW = 1_700_000_000_000
POLICY = ProcessPolicy(
    lock_ttl_ms=300,
    lock_tries=3,
    lock_retry_delay_ms=10,
    lock_retry_jitter_ms=5,
    lock_denied_delay_ms=5_000,
    shutdown_grace_ms=1_000,
)
BACKOFF = Backoff(delay_ms=100, factor=2.0, jitter=False)
WAIT_S = 5.0  # bound on every wait for a condition


class Numbers(BaseModel):
    x: int = 0


class Probe:
    """What the handlers saw, and a gate the tests open."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False
        self.thread: int | None = None
        self.contexts: list[TaskContext] = []
        self.held_after_ttl: bool | None = None


class RecordingLocks(InMemoryLockService):
    """The lock fake, counting what ProcessTask asks of it."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.acquires: list[tuple[str, int | None]] = []
        self.extends = 0

    async def acquire(self, resource: str, ttl_ms: int, max_extensions: int | None) -> Lease:
        self.acquires.append((resource, max_extensions))
        return await super().acquire(resource, ttl_ms, max_extensions)

    async def extend(self, lease: Lease) -> None:
        self.extends += 1
        await super().extend(lease)


class RecordingQueue(InMemoryTaskQueue):
    """The queue fake, keeping each outcome written and the lease it came with."""

    def __init__(self, idempotency_window_ms: int, clock: Clock) -> None:
        super().__init__(idempotency_window_ms, clock)
        self.settled_under: list[Lease | None] = []
        self.outcomes: list[Task] = []

    async def settle(
        self, task: Task, *, lease: Lease | None = None, then: ClaimRequest | None = None
    ) -> ClaimBatch:
        self.settled_under.append(lease)
        batch = await super().settle(task, lease=lease, then=then)
        self.outcomes.append(task)
        return batch


class Handlers:
    """The test's task types; each handler tells the probe what it saw."""

    def __init__(self, probe: Probe, locks: InMemoryLockService) -> None:
        self.probe = probe
        self.locks = locks

    async def echo(self, payload: Numbers, ctx: TaskContext) -> dict[str, int]:
        self.probe.contexts.append(ctx)
        return {"x": payload.x}

    async def boom(self, payload: Numbers, ctx: TaskContext) -> None:
        raise RuntimeError("boom")

    async def fatal(self, payload: Numbers, ctx: TaskContext) -> None:
        raise NonRetryableError("bad input")

    async def later(self, payload: Numbers, ctx: TaskContext) -> None:
        raise RetryAfter(7_000, "rate limited")

    async def block(self, payload: Numbers, ctx: TaskContext) -> str:
        self.probe.started.set()
        try:
            await self.probe.release.wait()
        except asyncio.CancelledError:
            self.probe.cancelled = True
            raise
        return "released"

    async def progress(self, payload: Numbers, ctx: TaskContext) -> str:
        ctx.report_progress({"pct": 50})
        self.probe.started.set()
        await self.probe.release.wait()
        return "done"

    def spin(self, payload: Numbers, ctx: TaskContext) -> str:
        self.probe.thread = threading.get_ident()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                ctx.raise_if_cancelled()
            except TaskCancelled:
                self.probe.cancelled = True
                raise
            time.sleep(0.002)
        return "never cancelled"

    def stubborn(self, payload: Numbers, ctx: TaskContext) -> str:
        """Ignores cancellation for longer than one lock TTL."""
        started = time.monotonic()
        while time.monotonic() - started < 0.45:
            time.sleep(0.005)
        self.probe.cancelled = ctx.cancelled
        self.probe.held_after_ttl = self.locks.held(f"task:{ctx.task_id}")
        return "late"

    async def opaque(self, payload: Numbers, ctx: TaskContext) -> object:
        return object()  # no JSON for this

    def registry(self) -> TaskRegistry:
        names = ["echo", "boom", "fatal", "later", "block", "progress", "spin", "stubborn"]
        names.append("opaque")
        registry = TaskRegistry()
        registry.add(*(TaskType(name, Numbers, getattr(self, name)) for name in names))
        return registry


@dataclass
class Harness:
    queue: RecordingQueue
    locks: RecordingLocks
    log: RecordingLog
    clock: ManualClock
    probe: Probe
    process: ProcessTask

    async def claim(self, name: str, **changes: Any) -> Execution:
        fields: dict[str, Any] = {"payload": {"x": 3}, "backoff": BACKOFF}
        fields.update(changes)
        task = Task(id="t1", name=name, created_at=NOW, run_at=NOW, **fields)
        await self.queue.enqueue([task])
        batch = await self.queue.claim("default", "w1", 1, POLICY.lock_ttl_ms, NOW)
        return Execution(batch.tasks[0])

    async def run(self, name: str, **changes: Any) -> tuple[Task | None, Task]:
        """Claim a task of this type, process it; the outcome and the stored task."""
        outcome = await asyncio.wait_for(self.execute(await self.claim(name)), WAIT_S)
        return outcome, await self.queue.get("t1")

    async def execute(self, execution: Execution) -> Task | None:
        """Process the task while a keeper renews its lease, as a worker does; the outcome
        written (None: nothing was)."""
        written = len(self.queue.outcomes)
        keeping = asyncio.create_task(self._keep(execution))
        try:
            await self.process.execute(execution)
        finally:
            keeping.cancel()
        return self.queue.outcomes[-1] if len(self.queue.outcomes) > written else None

    async def _keep(self, execution: Execution) -> None:
        keeper = LeaseKeeper(self.queue, self.locks, self.clock, self.log)
        while True:
            await asyncio.sleep(keeper.pause_ms([execution], POLICY.lock_ttl_ms) / 1000)
            await keeper.renew([execution], POLICY.lock_ttl_ms)

    def start(self, execution: Execution) -> asyncio.Task[Task | None]:
        return asyncio.create_task(self.execute(execution))


def make_harness(lock_clock: Clock) -> Harness:
    clock = ManualClock(NOW)
    queue = RecordingQueue(60_000, clock)
    locks = RecordingLocks(lock_clock)
    log = RecordingLog()
    probe = Probe()
    process = ProcessTask(
        queue=queue,
        locks=locks,
        registry=Handlers(probe, locks).registry(),
        policy=POLICY,
        clock=clock,
        log=log,
        rng=Random(1),
    )
    return Harness(queue, locks, log, clock, probe, process)


@pytest.fixture
def lock_clock() -> ManualClock:
    return ManualClock(0)


@pytest.fixture
async def harness(lock_clock: ManualClock) -> AsyncIterator[Harness]:
    harness = make_harness(lock_clock)
    yield harness
    harness.probe.release.set()


# --- outcomes -------------------------------------------------------------------------------


async def test_a_successful_handler_completes_the_task(harness: Harness) -> None:
    outcome, stored = await harness.run("echo")

    assert outcome == stored
    assert stored.status is TaskStatus.COMPLETED
    assert stored.result == {"x": 3}
    assert stored.attempts == 1
    assert [entry.outcome for entry in stored.history] == ["completed"]
    assert not harness.locks.held("task:t1")  # released
    (lease,) = harness.queue.settled_under  # offered to the queue, to release with the outcome
    assert lease is not None
    assert lease.resource == "task:t1"
    (ctx,) = harness.probe.contexts
    assert (ctx.task_id, ctx.queue, ctx.attempt, ctx.fence) == ("t1", "default", 1, stored.fence)
    assert "task.completed" in harness.log.names("info")


async def test_an_async_task_gets_a_lock_budget_for_its_timeout_and_grace(
    harness: Harness,
) -> None:
    await harness.run("echo")

    ((resource, budget),) = harness.locks.acquires
    assert resource == "task:t1"
    # 300 000 ms timeout + 1 000 ms grace, one renewal per TTL/3 = 100 ms, plus 2 spare
    assert budget == 3_012


async def test_a_handler_error_retries_after_the_backoff(harness: Harness) -> None:
    outcome, stored = await harness.run("boom")

    assert outcome == stored
    assert stored.status is TaskStatus.DELAYED
    assert stored.run_at == NOW + 100
    assert stored.attempts == 1
    assert stored.error is not None
    assert (stored.error.type, stored.error.message) == ("RuntimeError", "boom")
    assert "RuntimeError: boom" in stored.error.traceback
    assert "task.retrying" in harness.log.names("warning")


async def test_a_non_retryable_error_fails_the_task_at_once(harness: Harness) -> None:
    _, stored = await harness.run("fatal")

    assert stored.status is TaskStatus.FAILED
    assert stored.attempts == 1
    assert stored.max_attempts == 3
    assert stored.error is not None
    assert stored.error.type == "NonRetryableError"
    assert "task.failed" in harness.log.names("error")


async def test_retry_after_sets_the_next_run(harness: Harness) -> None:
    _, stored = await harness.run("later")

    assert stored.status is TaskStatus.DELAYED
    assert stored.run_at == NOW + 7_000
    assert stored.error is not None
    assert stored.error.message == "rate limited"


async def test_an_unknown_task_type_fails_without_running(harness: Harness) -> None:
    _, stored = await harness.run("nobody-knows")

    assert stored.status is TaskStatus.FAILED
    assert stored.error is not None
    assert stored.error.type == "UnknownTaskType"
    assert harness.locks.acquires == []


async def test_an_invalid_stored_payload_fails_without_running(harness: Harness) -> None:
    execution = await harness.claim("echo", payload={"x": "not a number"})

    outcome = await harness.execute(execution)

    assert outcome is not None
    assert outcome.status is TaskStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.type == "InvalidTask"
    assert harness.probe.contexts == []


async def test_a_result_that_cannot_be_stored_does_not_leave_the_task_active(
    harness: Harness,
) -> None:
    _, stored = await harness.run("opaque")

    assert stored.status is not TaskStatus.ACTIVE


# --- timeouts and cancellation --------------------------------------------------------------


async def test_a_timeout_cancels_the_handler_and_fails_the_attempt(harness: Harness) -> None:
    outcome = await asyncio.wait_for(
        harness.execute(await harness.claim("block", timeout_ms=50)), WAIT_S
    )

    assert harness.probe.cancelled
    assert outcome is not None
    assert outcome.status is TaskStatus.DELAYED
    assert outcome.attempts == 1
    assert outcome.error is not None
    assert outcome.error.type == "TaskTimeout"
    assert (await harness.queue.get("t1")).status is TaskStatus.DELAYED


async def test_a_timeout_on_the_last_attempt_fails_the_task(harness: Harness) -> None:
    execution = await harness.claim("block", timeout_ms=50, max_attempts=1)

    outcome = await asyncio.wait_for(harness.execute(execution), WAIT_S)

    assert outcome is not None
    assert outcome.status is TaskStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.type == "TaskTimeout"


async def test_a_sync_handler_runs_in_a_thread_and_stops_when_asked(harness: Harness) -> None:
    execution = await harness.claim("spin", timeout_ms=50)

    outcome = await asyncio.wait_for(harness.execute(execution), WAIT_S)

    assert harness.probe.thread is not None
    assert harness.probe.thread != threading.get_ident()
    assert harness.probe.cancelled  # it saw ctx.raise_if_cancelled() raise
    assert outcome is not None
    assert outcome.error is not None
    assert outcome.error.type == "TaskTimeout"
    assert harness.locks.acquires == [("task:t1", None)]  # a sync handler's lock never runs out


async def test_a_sync_handler_keeps_its_lock_renewed_until_it_returns() -> None:
    harness = make_harness(monotonic_ms)  # real time: the lock expires unless renewed
    execution = await harness.claim("stubborn", timeout_ms=50)

    outcome = await asyncio.wait_for(harness.execute(execution), WAIT_S)

    assert harness.probe.cancelled  # asked to stop at 50 ms, returned at 450 ms
    assert harness.probe.held_after_ttl is True
    assert harness.locks.extends >= 3
    assert outcome is not None
    assert outcome.error is not None
    assert outcome.error.type == "TaskTimeout"
    assert not harness.locks.held("task:t1")


async def test_shutdown_returns_the_task_without_spending_an_attempt(harness: Harness) -> None:
    execution = await harness.claim("block")
    running = harness.start(execution)
    await asyncio.wait_for(harness.probe.started.wait(), WAIT_S)

    execution.abort(Interruption.SHUTDOWN)
    outcome = await asyncio.wait_for(running, WAIT_S)

    assert harness.probe.cancelled
    assert outcome is not None
    stored = await harness.queue.get("t1")
    assert stored.status is TaskStatus.WAITING
    assert stored.attempts == 0
    assert stored.stalls == 0
    assert stored.history[-1].outcome == "returned"
    assert not harness.locks.held("task:t1")
    again = await harness.queue.claim("default", "w2", 1, POLICY.lock_ttl_ms, NOW)
    assert [task.id for task in again.tasks] == ["t1"]


# --- operators: cancel and kill -----------------------------------------------------------


async def test_a_cancel_request_is_learnt_at_the_next_renewal(harness: Harness) -> None:
    execution = await harness.claim("block")
    running = harness.start(execution)
    await asyncio.wait_for(harness.probe.started.wait(), WAIT_S)

    await harness.queue.request_cancel(execution.task)  # its stop request was missed
    outcome = await asyncio.wait_for(running, WAIT_S)  # the keeper renews every 100 ms

    assert harness.probe.cancelled
    assert execution.reason is Interruption.CANCELLED
    stored = await harness.queue.get("t1")
    assert outcome == stored
    assert stored.status is TaskStatus.CANCELLED
    assert (stored.attempts, stored.history[-1].outcome) == (0, "cancelled")
    assert not harness.locks.held("task:t1")
    assert "task.cancelled" in harness.log.names("warning")


async def test_a_stop_request_to_cancel_stops_the_handler_at_once(harness: Harness) -> None:
    execution = await harness.claim("block")
    running = harness.start(execution)
    await asyncio.wait_for(harness.probe.started.wait(), WAIT_S)

    execution.abort(Interruption.CANCELLED, "requested by an operator")  # as the worker does
    outcome = await asyncio.wait_for(running, WAIT_S)

    assert harness.probe.cancelled
    assert outcome is not None
    assert outcome.status is TaskStatus.CANCELLED
    assert (await harness.queue.get("t1")).status is TaskStatus.CANCELLED
    assert harness.locks.extends == 0  # no renewal was needed to learn of it


async def test_a_cancel_before_the_handler_starts_records_cancelled(harness: Harness) -> None:
    execution = await harness.claim("echo")
    execution.abort(Interruption.CANCELLED)

    outcome = await asyncio.wait_for(harness.execute(execution), WAIT_S)

    assert harness.probe.contexts == []  # the handler never ran
    assert outcome is not None
    assert outcome.status is TaskStatus.CANCELLED
    assert not harness.locks.held("task:t1")


async def test_a_sync_handler_asked_to_cancel_stops_at_its_next_check(harness: Harness) -> None:
    execution = await harness.claim("spin", timeout_ms=60_000)
    running = harness.start(execution)
    await eventually(lambda: harness.probe.thread is not None)

    execution.abort(Interruption.CANCELLED)
    outcome = await asyncio.wait_for(running, WAIT_S)

    assert harness.probe.cancelled  # ctx.raise_if_cancelled() raised in the thread
    assert outcome is not None
    assert outcome.status is TaskStatus.CANCELLED
    assert (await harness.queue.get("t1")).status is TaskStatus.CANCELLED


async def test_a_handler_that_finishes_before_the_cancel_lands_completes(
    harness: Harness,
) -> None:
    execution = await harness.claim("echo")
    await harness.queue.request_cancel(execution.task)  # cooperative: not yet seen

    outcome = await asyncio.wait_for(harness.execute(execution), WAIT_S)

    assert outcome is not None
    assert outcome.status is TaskStatus.COMPLETED
    assert (await harness.queue.get("t1")).status is TaskStatus.COMPLETED


async def test_a_kill_stops_the_handler_and_keeps_the_operators_record(
    harness: Harness,
) -> None:
    execution = await harness.claim("block")
    running = harness.start(execution)
    await asyncio.wait_for(harness.probe.started.wait(), WAIT_S)
    read = await harness.queue.get("t1")
    await harness.queue.change(read.killed(NOW + 5), read, stop=StopKind.KILL)

    execution.abort(Interruption.KILLED, "requested by an operator")  # the stop request
    outcome = await asyncio.wait_for(running, WAIT_S)

    assert outcome is None
    assert harness.probe.cancelled
    stored = await harness.queue.get("t1")
    assert stored.status is TaskStatus.FAILED
    assert stored.error is not None
    assert stored.error.type == "Killed"
    assert [entry.outcome for entry in stored.history] == ["killed"]
    assert not harness.locks.held("task:t1")
    assert "task.killed" in harness.log.names("warning")
    assert "task.abandoned" not in harness.log.names()


async def test_a_kill_whose_stop_request_was_missed_ends_at_the_next_renewal(
    harness: Harness,
) -> None:
    execution = await harness.claim("block")
    running = harness.start(execution)
    await asyncio.wait_for(harness.probe.started.wait(), WAIT_S)
    read = await harness.queue.get("t1")

    await harness.queue.change(read.killed(NOW + 5), read, stop=StopKind.KILL)
    outcome = await asyncio.wait_for(running, WAIT_S)  # the renewal finds it is not ours

    assert outcome is None
    assert execution.reason is Interruption.LOCK_LOST
    assert (await harness.queue.get("t1")).error == read.killed(NOW + 5).error


# --- LeaseKeeper ---------------------------------------------------------------------------

KEEPER_TTL_MS = 30  # renewals every 10 ms


class UnreachableQueue(InMemoryTaskQueue):
    async def extend_leases(
        self, held: Sequence[tuple[Task, Lease | None]], lease_ms: int, now: int
    ) -> list[LeaseState]:
        raise QueueUnavailable("Redis is unreachable")


async def keeper_for(
    queue: InMemoryTaskQueue, clock: ManualClock
) -> tuple[LeaseKeeper, Execution, InMemoryLockService, RecordingLog]:
    await queue.enqueue([Task(id="t1", name="echo", payload={}, created_at=NOW, run_at=NOW)])
    (task,) = (await queue.claim("default", "w1", 1, 1_000, NOW)).tasks
    locks, log = InMemoryLockService(ManualClock(0)), RecordingLog()  # its lock stays valid
    execution = Execution(task)
    execution.hold(await locks.acquire("task:t1", KEEPER_TTL_MS, None), NOW)
    return LeaseKeeper(queue, locks, clock, log), execution, locks, log


async def test_a_round_renews_and_reports_a_cancel_request() -> None:
    clock = ManualClock(NOW)
    queue = InMemoryTaskQueue(60_000, clock)
    keeper, execution, _, _ = await keeper_for(queue, clock)

    clock.advance(100)
    await keeper.renew([execution], KEEPER_TTL_MS)
    assert not await queue.expired("default", NOW + 100 + KEEPER_TTL_MS, 10)  # pushed on
    assert execution.valid_until == NOW + 100 + KEEPER_TTL_MS
    await queue.request_cancel(execution.task)
    await keeper.renew([execution], KEEPER_TTL_MS)

    assert (execution.reason, execution.detail) == (Interruption.CANCELLED, "cancel requested")


async def test_a_round_aborts_a_task_killed_meanwhile() -> None:
    clock = ManualClock(NOW)
    queue = InMemoryTaskQueue(60_000, clock)
    keeper, execution, _, log = await keeper_for(queue, clock)
    await queue.change(execution.task.killed(NOW + 1), execution.task, stop=StopKind.KILL)

    await keeper.renew([execution], KEEPER_TTL_MS)

    assert execution.reason is Interruption.LOCK_LOST
    assert "lease.lost" in log.names("error")


async def test_a_round_that_finds_its_task_settled_meanwhile_is_no_loss() -> None:
    """A renewal sent as the settle lands (the lock service's own extension came first,
    a round trip of its own): the task is no longer active, and that is no lease lost."""
    clock = ManualClock(NOW)
    queue = InMemoryTaskQueue(60_000, clock)
    keeper, execution, _, log = await keeper_for(queue, clock)
    execution.settling = True
    await queue.settle(execution.task.complete(None, NOW + 5), lease=execution.lease)

    await keeper.renew([execution], KEEPER_TTL_MS)

    assert execution.reason is None
    assert "lease.lost" not in log.names()


async def test_a_round_leaves_alone_the_lock_of_a_handler_that_is_done() -> None:
    """The lock service's lock of a settling task is being released: extending it would be
    refused ("not held") and warned about, for nothing."""
    clock = ManualClock(NOW)
    queue = InMemoryTaskQueue(60_000, clock)
    keeper, execution, locks, log = await keeper_for(queue, clock)
    assert execution.lease is not None
    execution.settling = True
    await locks.release(execution.lease)

    await keeper.renew([execution], KEEPER_TTL_MS)

    assert "lease.lock_renew_failed" not in log.names()
    assert execution.reason is None


async def test_a_lock_released_while_its_extension_was_under_way_is_no_failure() -> None:
    """The round began while the handler ran; it returned and its lock was released before
    the extension reached the lock's master, which then refuses it."""
    clock = ManualClock(NOW)
    queue = InMemoryTaskQueue(60_000, clock)
    keeper, execution, locks, log = await keeper_for(queue, clock)
    extend = locks.extend

    async def released_meanwhile(lease: Lease) -> None:
        execution.settling = True
        await locks.release(lease)
        await extend(lease)

    locks.extend = released_meanwhile  # type: ignore[method-assign]
    await keeper.renew([execution], KEEPER_TTL_MS)

    assert "lease.lock_renew_failed" not in log.names()
    assert execution.reason is None


async def test_rounds_retry_an_unreachable_queue_until_the_lease_is_gone() -> None:
    clock = ManualClock(NOW)
    queue = UnreachableQueue(60_000, clock)
    keeper, execution, _, log = await keeper_for(queue, clock)
    for _ in range(2):
        await keeper.renew([execution], KEEPER_TTL_MS)
    assert log.names("warning").count("lease.renew_failed") == 2
    assert execution.reason is None  # the last good renewal is still valid
    assert keeper.pause_ms([execution], KEEPER_TTL_MS) <= KEEPER_TTL_MS / 3

    clock.advance(KEEPER_TTL_MS)
    assert keeper.pause_ms([execution], KEEPER_TTL_MS) == 0  # the next round at once
    await keeper.renew([execution], KEEPER_TTL_MS)

    assert execution.reason is Interruption.LOCK_LOST
    assert "lease.expired" in log.names("error")


async def test_one_round_renews_every_running_task_in_one_call() -> None:
    clock = ManualClock(NOW)
    queue = CountingRenewals(60_000, clock)
    await queue.enqueue([Task(id=f"t{n}", name="echo", payload={}, created_at=NOW, run_at=NOW)
                         for n in range(5)])  # fmt: skip
    executions = [
        Execution(task) for task in (await queue.claim("default", "w", 5, 1_000, NOW)).tasks
    ]
    locks = InMemoryLockService(ManualClock(0))
    for execution in executions:
        execution.hold(await locks.acquire(f"task:{execution.task.id}", KEEPER_TTL_MS, None), NOW)

    await LeaseKeeper(queue, locks, clock, RecordingLog()).renew(executions, KEEPER_TTL_MS)

    assert queue.calls == [5]
    assert all(execution.reason is None for execution in executions)


# --- the lock -------------------------------------------------------------------------------


async def test_a_denied_lock_defers_the_task_without_spending_an_attempt(
    harness: Harness,
) -> None:
    await harness.locks.acquire("task:t1", 60_000, None)  # another worker holds it
    harness.locks.acquires.clear()

    outcome, stored = await harness.run("echo")

    assert outcome == stored
    assert [resource for resource, _ in harness.locks.acquires] == ["task:t1"] * 3
    assert stored.status is TaskStatus.DELAYED
    assert stored.run_at == NOW + POLICY.lock_denied_delay_ms
    assert stored.attempts == 0
    assert stored.history == ()
    assert harness.probe.contexts == []
    assert harness.locks.held("task:t1")  # still the other worker's
    assert "task.lock_denied" in harness.log.names("warning")


async def test_a_lock_free_on_a_later_try_runs_the_task(harness: Harness) -> None:
    other = await harness.locks.acquire("task:t1", 60_000, None)
    harness.locks.acquires.clear()
    execution = await harness.claim("echo")
    running = harness.start(execution)
    await eventually(lambda: len(harness.locks.acquires) >= 1)

    await harness.locks.release(other)
    outcome = await asyncio.wait_for(running, WAIT_S)

    assert outcome is not None
    assert outcome.status is TaskStatus.COMPLETED
    assert 2 <= len(harness.locks.acquires) <= 3


async def test_a_lost_lock_cancels_the_handler_and_records_nothing(
    harness: Harness, lock_clock: ManualClock
) -> None:
    execution = await harness.claim("block")
    running = harness.start(execution)
    await asyncio.wait_for(harness.probe.started.wait(), WAIT_S)

    lock_clock.advance(10 * POLICY.lock_ttl_ms)  # the worker was paused past its TTL
    harness.clock.advance(10 * POLICY.lock_ttl_ms)  # and its clock went on meanwhile
    outcome = await asyncio.wait_for(running, WAIT_S)

    assert outcome is None
    assert harness.probe.cancelled
    assert execution.reason is Interruption.LOCK_LOST
    stored = await harness.queue.get("t1")
    assert stored.status is TaskStatus.ACTIVE  # left for stall recovery
    assert stored.attempts == 0
    assert stored.history == ()
    assert "task.abandoned" in harness.log.names("error")


async def test_an_outcome_after_the_task_was_recovered_is_refused(harness: Harness) -> None:
    execution = await harness.claim("block")
    running = harness.start(execution)
    await asyncio.wait_for(harness.probe.started.wait(), WAIT_S)
    later = ManualClock(NOW + 60_000)
    recover = RecoverStalled(harness.queue, later, RecordingLog(), max_stalls=3, rng=Random(0))
    assert await recover.execute("default") == 1

    harness.probe.release.set()
    outcome = await asyncio.wait_for(running, WAIT_S)

    assert outcome is None
    stored = await harness.queue.get("t1")
    assert stored.status is TaskStatus.WAITING
    assert stored.stalls == 1
    assert stored.result is None
    assert "task.outcome_refused" in harness.log.names("warning")


async def test_progress_reported_by_the_handler_reaches_the_queue(harness: Harness) -> None:
    running = harness.start(await harness.claim("progress"))

    async def recorded() -> bool:
        progress: object = (await harness.queue.get("t1")).progress
        return progress == {"pct": 50}

    await eventually(recorded)
    harness.probe.release.set()
    outcome = await asyncio.wait_for(running, WAIT_S)

    assert outcome is not None
    assert outcome.status is TaskStatus.COMPLETED
    assert (await harness.queue.get("t1")).progress == {"pct": 50}


# --- stall recovery -------------------------------------------------------------------------


async def claim_with_lease(queue: InMemoryTaskQueue, task_id: str, **changes: Any) -> Task:
    fields: dict[str, Any] = {"payload": {}, "backoff": BACKOFF}
    fields.update(changes)
    task = Task(id=task_id, name="echo", created_at=NOW, run_at=NOW, **fields)
    await queue.enqueue([task])
    (claimed,) = (await queue.claim("default", "w1", 1, 1_000, NOW)).tasks
    return claimed


def recoverer(queue: InMemoryTaskQueue, now: int, log: RecordingLog) -> RecoverStalled:
    return RecoverStalled(queue, ManualClock(now), log, max_stalls=2, rng=Random(0))


async def test_recover_stalled_waits_for_the_lease_to_run_out() -> None:
    queue, log = InMemoryTaskQueue(60_000), RecordingLog()
    await claim_with_lease(queue, "t1")

    assert await recoverer(queue, NOW + 1_000, log).execute("default") == 0
    assert await recoverer(queue, NOW + 1_001, log).execute("default") == 1

    stored = await queue.get("t1")
    assert stored.status is TaskStatus.WAITING  # a first stall: taken over at once
    assert stored.stalls == 1
    assert stored.attempts == 0
    assert stored.run_at == NOW + 1_001
    assert "task.stalled" in log.names("warning")


@pytest.mark.parametrize(
    ("stalls", "status", "run_at"),
    [(1, TaskStatus.DELAYED, NOW + 5_000 + 100), (2, TaskStatus.FAILED, NOW)],
    ids=["backs-off", "fails-past-max-stalls"],
)
async def test_a_task_that_stalls_again_backs_off_then_fails(
    stalls: int, status: TaskStatus, run_at: int
) -> None:
    queue, log = InMemoryTaskQueue(60_000), RecordingLog()
    await claim_with_lease(queue, "t1", stalls=stalls)

    assert await recoverer(queue, NOW + 5_000, log).execute("default") == 1

    stored = await queue.get("t1")
    assert (stored.status, stored.stalls, stored.run_at) == (status, stalls + 1, run_at)
    assert stored.history[-1].outcome == "stalled"
    level = "error" if status is TaskStatus.FAILED else "warning"
    assert "task.stalled" in log.names(level)


async def test_recover_stalled_respects_its_limit() -> None:
    queue, log = InMemoryTaskQueue(60_000), RecordingLog()
    for task_id in ("a", "b", "c"):
        await claim_with_lease(queue, task_id)

    assert await recoverer(queue, NOW + 5_000, log).execute("default", limit=2) == 2
    assert await recoverer(queue, NOW + 5_000, log).execute("default", limit=2) == 1


async def test_one_task_whose_backoff_overflows_does_not_block_recovery() -> None:
    queue, log = InMemoryTaskQueue(60_000), RecordingLog()
    overflowing = Backoff(delay_ms=1_000, factor=100.0, max_delay_ms=300_000, jitter=False)
    await claim_with_lease(
        queue, "a-poison", attempts=155, max_attempts=1_000, backoff=overflowing, stalls=1
    )
    await claim_with_lease(queue, "b-fine", stalls=1)

    assert await recoverer(queue, NOW + 5_000, log).execute("default") == 2

    assert (await queue.get("a-poison")).run_at == NOW + 5_000 + 300_000  # the cap
    assert (await queue.get("b-fine")).status is TaskStatus.DELAYED


class CountingRenewals(InMemoryTaskQueue):
    """How many tasks each renewal call carried."""

    def __init__(self, idempotency_window_ms: int, clock: Clock) -> None:
        super().__init__(idempotency_window_ms, clock)
        self.calls: list[int] = []

    async def extend_leases(
        self, held: Sequence[tuple[Task, Lease | None]], lease_ms: int, now: int
    ) -> list[LeaseState]:
        self.calls.append(len(held))
        return await super().extend_leases(held, lease_ms, now)


class RenewingQueue(InMemoryTaskQueue):
    """A worker renews its lease between the recoverer's listing and its settle."""

    async def expired(self, queue: str, now: int, limit: int) -> list[Task]:
        found = await super().expired(queue, now, limit)
        for task in found:
            await self.extend_leases([(task, None)], 1_000, now)
        return found


async def test_recover_stalled_leaves_a_task_renewed_meanwhile() -> None:
    queue, log = RenewingQueue(60_000), RecordingLog()
    await claim_with_lease(queue, "t1")

    assert await recoverer(queue, NOW + 5_000, log).execute("default") == 0

    assert (await queue.get("t1")).status is TaskStatus.ACTIVE
