"""A hypothesis state machine over the real RedisTaskQueue: its indexes never drift.

The machine drives the async adapter synchronously, each instance on its own event loop
with its own client, and passes time explicitly: a model clock moves, nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from random import Random
from typing import ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from domain.errors import DuplicateTask, LockLost, TaskActive
from domain.ports import EnqueueOutcome
from domain.task import Backoff, Failure, Task, TaskError, TaskStatus
from infrastructure.redis.client import create_blocking_redis, create_redis
from infrastructure.redis.keys import QueueKeys
from infrastructure.redis.queue import RedisTaskQueue

QUEUE = "machine"
KEYS = QueueKeys(QUEUE)
T0 = 1_700_000_000_000
LEASE_MS = 1_000
WINDOW_MS = 3_600_000
MAX_STALLS = 1
IDS = [f"t{i}" for i in range(6)]

T = TypeVar("T")


@dataclass
class Expected:
    """What the model knows of one stored task."""

    n: int  # the payload, which decides "same request"
    priority: int
    status: TaskStatus
    seq: int = 0  # order among waiting tasks of equal priority
    run_at: int = 0  # due time while delayed
    deadline: int = 0  # lease deadline while active
    attempts: int = 0
    stalls: int = 0


submissions = st.lists(
    st.tuples(
        st.sampled_from(IDS),
        st.sampled_from([0, 0, 0, 1]),  # mostly the same request: EXISTING, REMOVED
        st.integers(-2, 2),
        st.sampled_from([0, 0, 50, 300]),
    ),
    min_size=1,
    max_size=3,
)


class QueueMachine(RuleBasedStateMachine):
    redis_url: ClassVar[str]  # set by the test, from the `redis_url` fixture

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.Runner()
        self.client: Redis = self.run(_connect(self.redis_url))
        self.run(self.client.flushdb())
        self.blocking: Redis = self.run(_connect(self.redis_url, blocking=True))
        self.queue = RedisTaskQueue(self.client, self.blocking, idempotency_window_ms=WINDOW_MS)
        self.now = T0
        self.seq = 0
        self.fence = 0
        self.rng = Random(0)
        self.model: dict[str, Expected] = {}
        self.removed: dict[str, int] = {}  # id -> payload n, reserved for the window
        self.active: dict[str, Task] = {}  # the worker's copy of each claimed task
        self.stale: list[Task] = []  # copies whose claim is over

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run(_resolve(awaitable))

    def teardown(self) -> None:
        try:
            self.run(self.client.flushdb())
            self.run(self.client.aclose())
            self.run(self.blocking.aclose())
        finally:
            self.loop.close()

    # --- rules ----------------------------------------------------------------------------

    @rule(batch=submissions)
    def enqueue(self, batch: list[tuple[str, int, int, int]]) -> None:
        tasks = [self._task(*submission) for submission in batch]
        expected = [self._expect_enqueue(task) for task in tasks]
        duplicates = [task.id for task, outcome in zip(tasks, expected, strict=True) if not outcome]
        if duplicates:
            with pytest.raises(DuplicateTask) as raised:
                self.run(self.queue.enqueue(tasks))
            assert raised.value.task_id == duplicates[0]
            return
        results = self.run(self.queue.enqueue(tasks))
        assert [result.outcome for result in results] == expected
        for result in results:
            if result.outcome is EnqueueOutcome.EXISTING:
                assert result.task.status is self.model[result.task.id].status

    @rule(limit=st.integers(1, 3), advance=st.sampled_from([0, 0, 60, 400]))
    def claim(self, limit: int, advance: int) -> None:
        self.now += advance
        expected = self._expect_claim(limit)
        batch = self.run(self.queue.claim(QUEUE, "w1", limit, LEASE_MS, self.now))
        assert [task.id for task in batch.tasks] == expected
        for task in batch.tasks:
            self.fence += 1
            assert task.fence == self.fence
            assert task.status is TaskStatus.ACTIVE
            self.active[task.id] = task
            entry = self.model[task.id]
            entry.status, entry.deadline = TaskStatus.ACTIVE, self.now + LEASE_MS
        if not expected:
            delayed = [e.run_at for e in self.model.values() if e.status is TaskStatus.DELAYED]
            assert batch.next_due_at == (min(delayed) if delayed else None)

    @precondition(lambda self: self.active)
    @rule(data=st.data(), how=st.sampled_from(["complete", "retry", "fail", "return"]))
    def settle(self, data: st.DataObject, how: str) -> None:
        task = self._pick_active(data)
        if how == "complete":
            outcome = task.complete({"by": task.fence}, self.now)
        elif how == "return":
            outcome = task.returned(self.now)  # a graceful shutdown gives it back
        else:
            failure = Failure(TaskError("RuntimeError", "boom"), retryable=how == "retry")
            outcome = task.fail(failure, self.now, self.rng)
        self._settle(outcome)

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def extend(self, data: st.DataObject) -> None:
        task = self._pick_active(data)
        self.run(self.queue.extend_lease(task, LEASE_MS, self.now))
        self.model[task.id].deadline = self.now + LEASE_MS

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def expire_and_recover(self, data: st.DataObject) -> None:
        task = self._pick_active(data)
        deadline = self.model[task.id].deadline
        if self.now <= deadline:
            early = task.stalled(self.now, MAX_STALLS, self.rng)
            with pytest.raises(LockLost):
                self.run(self.queue.settle(early, lease_expired_by=self.now))
            self.now = deadline + 1
        expired = self.run(self.queue.expired(QUEUE, self.now, 100))
        lapsed = sorted(
            (e.deadline, task_id)
            for task_id, e in self.model.items()
            if e.status is TaskStatus.ACTIVE and e.deadline < self.now
        )
        assert [t.id for t in expired] == [task_id for _, task_id in lapsed]
        self._settle(task.stalled(self.now, MAX_STALLS, self.rng), lease_expired_by=self.now)

    @precondition(lambda self: self.stale)
    @rule(data=st.data())
    def settle_stale_copy(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(self.stale))
        with pytest.raises(LockLost):
            self.run(self.queue.settle(task.complete("too late", self.now)))

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.model)))
        task = self.run(self.queue.get(task_id))
        if self.model[task_id].status is TaskStatus.ACTIVE:
            with pytest.raises(TaskActive):
                self.run(self.queue.remove(task))
            return
        self.run(self.queue.remove(task))
        self.removed[task_id] = self.model.pop(task_id).n

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def indexes_match_hashes(self) -> None:
        sets, hashes = self.run(self._snapshot())
        membership = Counter(task_id for members in sets.values() for task_id in members)
        assert set(membership) == set(hashes) == set(self.model)
        assert all(count == 1 for count in membership.values())
        assert sum(len(members) for members in sets.values()) == len(hashes)
        for status, members in sets.items():
            for task_id in members:
                assert hashes[task_id] == status.value
                assert self.model[task_id].status is status

    @invariant()
    def scores_follow_the_model(self) -> None:
        sets, _ = self.run(self._snapshot())
        waiting = sorted(self._ids(TaskStatus.WAITING), key=self._order)
        assert list(sets[TaskStatus.WAITING]) == waiting
        for task_id, due in sets[TaskStatus.DELAYED].items():
            assert due == self.model[task_id].run_at
        for task_id, deadline in sets[TaskStatus.ACTIVE].items():
            assert deadline == self.model[task_id].deadline

    @invariant()
    def no_task_vanishes(self) -> None:
        for task_id, entry in self.model.items():
            task = self.run(self.queue.get(task_id))
            assert (task.status, task.priority, task.payload) == (
                entry.status,
                entry.priority,
                {"n": entry.n},
            )
            assert (task.attempts, task.stalls) == (entry.attempts, entry.stalls)

    # --- the model ------------------------------------------------------------------------

    def _task(self, task_id: str, n: int, priority: int, delay: int) -> Task:
        return Task(
            id=task_id,
            name="machine",
            payload={"n": n},
            created_at=self.now,
            run_at=self.now + delay,
            queue=QUEUE,
            priority=priority,
            status=TaskStatus.DELAYED if delay else TaskStatus.WAITING,
            max_attempts=2,
            backoff=Backoff(delay_ms=100, jitter=False),
        )

    def _expect_enqueue(self, task: Task) -> EnqueueOutcome | None:
        """The outcome of storing `task` (None: a duplicate), updating the model."""
        n = task.payload["n"]
        if task.id in self.model:
            return EnqueueOutcome.EXISTING if self.model[task.id].n == n else None
        if task.id in self.removed:
            return EnqueueOutcome.REMOVED if self.removed[task.id] == n else None
        entry = Expected(n, task.priority, task.status, run_at=task.run_at)
        self.model[task.id] = entry
        if task.status is TaskStatus.WAITING:
            self.seq += 1
            entry.seq = self.seq
        return EnqueueOutcome.CREATED

    def _expect_claim(self, limit: int) -> list[str]:
        due = sorted(
            (e.run_at, task_id)
            for task_id, e in self.model.items()
            if e.status is TaskStatus.DELAYED and e.run_at <= self.now
        )
        for _, task_id in due:
            self.seq += 1
            self.model[task_id].status, self.model[task_id].seq = TaskStatus.WAITING, self.seq
        return sorted(self._ids(TaskStatus.WAITING), key=self._order)[:limit]

    def _settle(self, outcome: Task, lease_expired_by: int | None = None) -> None:
        self.run(self.queue.settle(outcome, lease_expired_by=lease_expired_by))
        self.stale.append(self.active.pop(outcome.id))
        entry = self.model[outcome.id]
        entry.status, entry.attempts = outcome.status, outcome.attempts
        entry.stalls = outcome.stalls
        if outcome.status is TaskStatus.DELAYED:
            entry.run_at = outcome.run_at
        elif outcome.status is TaskStatus.WAITING:
            self.seq += 1
            entry.seq = self.seq

    def _pick_active(self, data: st.DataObject) -> Task:
        return self.active[data.draw(st.sampled_from(sorted(self.active)))]

    def _ids(self, status: TaskStatus) -> list[str]:
        return [task_id for task_id, e in self.model.items() if e.status is status]

    def _order(self, task_id: str) -> tuple[int, int]:
        return self.model[task_id].priority, self.model[task_id].seq

    async def _snapshot(self) -> tuple[dict[TaskStatus, dict[str, float]], dict[str, str]]:
        """Every state set (member -> score) and every task hash's status, from Redis."""
        async with self.client.pipeline(transaction=False) as pipe:
            for status in TaskStatus:
                pipe.zrange(KEYS.state(status), 0, -1, withscores=True)
            replies = await pipe.execute()
        sets = {
            status: {member: score for member, score in reply}
            for status, reply in zip(TaskStatus, replies, strict=True)
        }
        keys = [key async for key in self.client.scan_iter(match=f"{KEYS.task_prefix}*")]
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(key, "status")
            statuses = await pipe.execute()
        hashes = {
            key.removeprefix(KEYS.task_prefix): status
            for key, status in zip(keys, statuses, strict=True)
        }
        return sets, hashes


async def _connect(redis_url: str, blocking: bool = False) -> Redis:
    # Made inside the machine's loop, which its connections use.
    return create_blocking_redis(redis_url) if blocking else create_redis(redis_url)


async def _resolve(awaitable: Awaitable[T]) -> T:
    return await awaitable


def test_the_queue_state_machine(redis_url: str) -> None:
    class Machine(QueueMachine):
        pass

    Machine.redis_url = redis_url
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=30,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
