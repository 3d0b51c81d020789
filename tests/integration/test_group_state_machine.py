"""A hypothesis state machine over groups on a real Redis: whatever workers and operators
do, a group's waiting tasks are its head (in the queue's wait set) and those behind it,
no group with waiting tasks is left without a way to its next turn, a group's concurrency
limit is never passed, and a group without tasks leaves no keys behind.

Workers claim, finish, fail (and retry later) and stall; operators cancel, remove and
retry. The group concurrency limit is drawn once per run (none, 1 or 2).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from random import Random
from typing import ClassVar, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from domain.errors import TaskNotFound
from domain.limits import Limit, QueueLimits
from domain.task import Failure, Task, TaskError, TaskStatus
from infrastructure.redis import codec
from infrastructure.redis.client import create_blocking_redis, create_redis, database_of
from infrastructure.redis.flow import RedisFlowLimits
from infrastructure.redis.keys import QueueKeys
from infrastructure.redis.scripts import Scripts
from tests.stores import RedisStore

QUEUE = "groups"
KEYS = QueueKeys(QUEUE)
T0 = 1_700_000_000_000
LEASE_MS = 1_000
GROUPS = ["a", "b", "c"]

T = TypeVar("T")


class GroupMachine(RuleBasedStateMachine):
    redis_url: ClassVar[str]  # set by the test, from the `redis_url` fixture

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.Runner()
        self.client: Redis = self.run(_connect(self.redis_url))
        self.run(self.client.flushdb())
        self.blocking: Redis = self.run(_connect(self.redis_url, blocking=True))
        self.queue = RedisStore(self.client, self.blocking, 3_600_000, queues=[QUEUE])
        scripts = Scripts.load(database_of(self.client))
        self.limits = RedisFlowLimits(self.client, self.queue.lane, scripts)
        self.limit: int | None = None
        self.now = T0
        self.made = 0
        self.rng = Random(0)
        self.active: dict[str, Task] = {}  # the worker's copy of each claimed task

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run(_resolve(awaitable))

    def teardown(self) -> None:
        try:
            self.run(self.client.flushdb())
            self.run(self.queue.aclose())
            self.run(self.client.aclose())
            self.run(self.blocking.aclose())
        finally:
            self.loop.close()

    @initialize(limit=st.sampled_from([None, 1, 2]))
    def set_limit(self, limit: int | None) -> None:
        self.limit = limit
        groups = {} if limit is None else {"*": Limit(concurrency=limit)}
        self.run(self.limits.set(QUEUE, QueueLimits(groups=groups)))

    # --- producers and workers ------------------------------------------------------------

    @rule(
        group=st.sampled_from([*GROUPS, None]),
        count=st.integers(1, 4),
        priority=st.integers(-1, 1),
        delay=st.sampled_from([0, 0, 500]),
    )
    def enqueue(self, group: str | None, count: int, priority: int, delay: int) -> None:
        tasks = []
        for _ in range(count):
            self.made += 1
            tasks.append(
                Task(id=f"t{self.made}", name="echo", payload={}, created_at=self.now,
                     run_at=self.now + delay, status=Task.status_for(self.now + delay, self.now),
                     queue=QUEUE, priority=priority, group=group)
            )  # fmt: skip
        self.run(self.queue.enqueue(tasks))

    @rule(limit=st.integers(1, 4), advance=st.sampled_from([0, 0, 300, 2_000]))
    def claim(self, limit: int, advance: int) -> None:
        self.now += advance
        batch = self.run(self.queue.claim(QUEUE, "w1", limit, LEASE_MS, self.now))
        for task in batch.tasks:
            self.active[task.id] = task

    @precondition(lambda self: self.active)
    @rule(data=st.data(), how=st.sampled_from(["complete", "retry", "fail"]))
    def settle(self, data: st.DataObject, how: str) -> None:
        task = self.active.pop(data.draw(st.sampled_from(sorted(self.active))))
        if how == "complete":
            outcome = task.complete(None, self.now)
        else:
            failure = Failure(TaskError("RuntimeError", "boom"), retryable=how == "retry")
            outcome = task.fail(failure, self.now, self.rng)
        self.run(self.queue.settle(outcome))

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def stall(self, data: st.DataObject) -> None:
        task = self.active.pop(data.draw(st.sampled_from(sorted(self.active))))
        self.now = max(self.now, task.started_at or self.now) + LEASE_MS + 1
        self.run(self.queue.recover(task.stalled(self.now, 5, self.rng), expired_by=self.now))

    # --- operators --------------------------------------------------------------------------

    @precondition(lambda self: self.made)
    @rule(data=st.data(), action=st.sampled_from(["cancel", "remove", "retry"]))
    def operate(self, data: st.DataObject, action: str) -> None:
        task_id = f"t{data.draw(st.integers(1, self.made))}"
        try:
            task = self.run(self.queue.get(task_id, QUEUE))
        except TaskNotFound:
            return  # removed
        if task.status is TaskStatus.ACTIVE:
            return
        if action == "remove":
            self.run(self.queue.remove(task))
        elif action == "cancel" and task.status in (TaskStatus.WAITING, TaskStatus.DELAYED):
            self.run(self.queue.change(task.cancelled(self.now), task))
        elif action == "retry" and task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            self.run(self.queue.change(task.retried(self.now), task))

    # --- what must always hold --------------------------------------------------------------

    @invariant()
    def groups_are_whole(self) -> None:
        tasks, heads, wait, behind, running, grouped = self.run(self._snapshot())
        waiting: dict[str, set[str]] = {}
        active: dict[str, set[str]] = {}
        for task in tasks:
            if task.group is None:
                continue
            if task.status is TaskStatus.WAITING:
                waiting.setdefault(task.group, set()).add(task.id)
            elif task.status is TaskStatus.ACTIVE:
                active.setdefault(task.group, set()).add(task.id)
        assert set(running) == set(active)  # a group's running set: its active tasks
        for group, ids in running.items():
            assert ids == active[group]
            if self.limit is not None:
                assert len(ids) <= self.limit
        assert set(behind) <= set(waiting)
        assert set(heads) <= set(waiting)
        for group, ids in waiting.items():
            head = heads.get(group)
            queued = behind.get(group, set())
            if head is not None:
                assert head in wait
                assert head not in queued
                assert ids == queued | {head}
            else:
                assert ids == queued
                # No head: only a group at its limit waits, for one of its tasks to end.
                assert self.limit is not None
                assert len(active.get(group, ())) >= self.limit
        assert grouped == sum(len(ids) for ids in behind.values())
        in_wait = [task.id for task in tasks if task.id in wait and task.group is not None]
        assert sorted(in_wait) == sorted(heads.values())

    async def _snapshot(
        self,
    ) -> tuple[list[Task], dict[str, str], set[str], dict[str, set[str]], dict[str, set[str]], int]:
        keys = {key async for key in self.client.scan_iter(match=f"{KEYS.prefix}*", count=1_000)}
        task_keys = sorted(key for key in keys if key.startswith(KEYS.task("")))
        tasks = [codec.decode(await self.client.hgetall(key)) for key in task_keys]
        heads = await self.client.hgetall(KEYS.group_heads)
        wait = set(await self.client.zrange(KEYS.wait, 0, -1))
        behind, running = {}, {}
        for key in keys:
            if key.startswith(KEYS.group("")):
                behind[key.removeprefix(KEYS.group(""))] = set(await self.client.zrange(key, 0, -1))
            elif key.startswith(KEYS.group_active("")):
                group = key.removeprefix(KEYS.group_active(""))
                running[group] = set(await self.client.zrange(key, 0, -1))
        grouped = int(await self.client.get(KEYS.grouped) or 0)
        counts = Counter(task.status for task in tasks)
        (stats,) = await self.queue.stats(self.now)
        assert stats.counts[TaskStatus.WAITING] == counts[TaskStatus.WAITING]
        return tasks, heads, wait, behind, running, grouped


async def _connect(redis_url: str, blocking: bool = False) -> Redis:
    # Made inside the machine's loop, which its connections use.
    return create_blocking_redis(redis_url) if blocking else create_redis(redis_url)


async def _resolve(awaitable: Awaitable[T]) -> T:
    return await awaitable


def test_the_group_state_machine(redis_url: str) -> None:
    class Machine(GroupMachine):
        pass

    Machine.redis_url = redis_url
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=40,
            stateful_step_count=40,
            deadline=None,
            report_multiple_bugs=False,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
