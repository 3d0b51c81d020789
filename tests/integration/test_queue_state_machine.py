"""A hypothesis state machine over the real the Redis store: its indexes never drift.

The machine drives the async adapter synchronously, each instance on its own event loop
with its own client, and passes time explicitly: a model clock moves, nothing sleeps.
Workers claim, settle, renew and stall; operators cancel, kill, retry, remove, pause and
sweep; after every step each task must sit in exactly one state set, in exactly one
listing index (`idx:<status>:<name>`), in the id set and in its words' indexes.
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

from domain.errors import LockLost, TaskActive, TaskChanged, TaskNotFound
from domain.task import Backoff, Failure, StopKind, Task, TaskError, TaskStatus
from domain.values import EnqueueOutcome, LeaseState, TaskQuery
from infrastructure.redis import codec
from infrastructure.redis.client import create_blocking_redis, create_redis
from infrastructure.redis.keys import QueueKeys
from infrastructure.redis.search import task_tokens
from tests.stores import RedisStore

QUEUE = "machine"
KEYS = QueueKeys(QUEUE)
T0 = 1_700_000_000_000
LEASE_MS = 1_000
WINDOW_MS = 3_600_000
MAX_STALLS = 1
IDS = [f"t{i}" for i in range(6)]
LABEL = "alpha beta"  # a string payload value, so the words' indexes are exercised

T = TypeVar("T")
Request = tuple[str, int]  # (name, payload n): what decides "the same request"


@dataclass
class Expected:
    """What the model knows of one stored task."""

    request: Request
    priority: int
    status: TaskStatus
    seq: int = 0  # order among waiting tasks of equal priority
    run_at: int = 0  # due time while delayed
    deadline: int = 0  # lease deadline while active
    finished_at: int = 0  # while finished
    attempts: int = 0
    stalls: int = 0
    cancel_requested: bool = False
    outcome_fence: int | None = None  # the token of the last outcome a worker wrote


submissions = st.lists(
    st.tuples(
        st.sampled_from(IDS),
        # mostly the same request: EXISTING, REMOVED; else a CONFLICT
        st.sampled_from([("machine", 0)] * 3 + [("machine", 1), ("other", 0)]),
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
        self.queue = RedisStore(self.client, self.blocking, WINDOW_MS, queues=[QUEUE])
        self.now = T0
        self.seq = 0
        self.fence = 0
        self.paused = False
        self.rng = Random(0)
        self.model: dict[str, Expected] = {}
        self.removed: dict[str, Request] = {}  # reserved for the window
        self.active: dict[str, Task] = {}  # the worker's copy of each claimed task
        self.stale: list[Task] = []  # copies whose claim is over

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

    # --- workers --------------------------------------------------------------------------

    @rule(batch=submissions)
    def enqueue(self, batch: list[tuple[str, Request, int, int]]) -> None:
        tasks = [self._task(*submission) for submission in batch]
        expected = [self._expect_enqueue(task) for task in tasks]
        results = self.run(self.queue.enqueue(tasks))
        assert [result.outcome for result in results] == expected
        for task, result in zip(tasks, results, strict=True):
            if result.outcome is EnqueueOutcome.EXISTING:
                assert result.task.status is self.model[result.task.id].status
            else:
                assert result.task == task

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
            due = None if self.paused or not delayed else min(delayed)
            assert batch.next_due_at == due

    @precondition(lambda self: self.active)
    @rule(data=st.data(), how=st.sampled_from(["complete", "retry", "fail", "return", "cancel"]))
    def settle(self, data: st.DataObject, how: str) -> None:
        task = self._pick_active(data)
        if how == "complete":
            outcome = task.complete({"by": task.fence}, self.now)
        elif how == "return":
            outcome = task.returned(self.now)  # a graceful shutdown gives it back
        elif how == "cancel":
            outcome = task.cancelled(self.now)  # the worker stopped it for an operator
        else:
            failure = Failure(TaskError("RuntimeError", "boom"), retryable=how == "retry")
            outcome = task.fail(failure, self.now, self.rng)
        self._settle(outcome)

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def extend(self, data: st.DataObject) -> None:
        task = self._pick_active(data)
        (state,) = self.run(self.queue.extend_leases([(task, None)], LEASE_MS, self.now))
        entry = self.model[task.id]
        assert (state is LeaseState.CANCEL_REQUESTED) is entry.cancel_requested
        entry.deadline = self.now + LEASE_MS

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def expire_and_recover(self, data: st.DataObject) -> None:
        task = self._pick_active(data)
        deadline = self.model[task.id].deadline
        if self.now <= deadline:
            early = task.stalled(self.now, MAX_STALLS, self.rng)
            with pytest.raises(LockLost):
                self.run(self.queue.recover(early, expired_by=self.now))
            self.now = deadline + 1
        expired = self.run(self.queue.expired(QUEUE, self.now, 100))
        lapsed = sorted(
            (e.deadline, task_id)
            for task_id, e in self.model.items()
            if e.status is TaskStatus.ACTIVE and e.deadline < self.now
        )
        assert [t.id for t in expired] == [task_id for _, task_id in lapsed]
        self._settle(task.stalled(self.now, MAX_STALLS, self.rng), recovered_at=self.now)

    @precondition(lambda self: self.stale)
    @rule(data=st.data())
    def settle_stale_copy(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(self.stale))
        entry = self.model.get(task.id)
        current = self.run(self.queue.get(task.id, QUEUE)) if entry is not None else None
        if current is not None and current.fence == task.fence == entry.outcome_fence:
            # A retry of the outcome this token wrote: answered as written, nothing moves.
            self.run(self.queue.settle(task.complete("too late", self.now)))
            assert self.run(self.queue.get(task.id, QUEUE)) == current
            return
        with pytest.raises(LockLost):
            self.run(self.queue.settle(task.complete("too late", self.now)))

    # --- operators ------------------------------------------------------------------------

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """ChangeTask's cancel: at once unless active; an active task's worker is asked."""
        task = self._pick_stored(data)
        entry = self.model[task.id]
        if task.status is TaskStatus.ACTIVE:
            self.run(self.queue.request_cancel(task))
            entry.cancel_requested = True
        elif task.status.is_terminal:
            with pytest.raises(TaskChanged):
                self.run(self.queue.request_cancel(task))
        else:
            self.run(self.queue.change(task.cancelled(self.now), task))
            entry.status, entry.finished_at = TaskStatus.CANCELLED, self.now

    @precondition(lambda self: self.active)
    @rule(data=st.data())
    def kill(self, data: st.DataObject) -> None:
        task = self.run(self.queue.get(data.draw(st.sampled_from(sorted(self.active)))))
        self.run(self.queue.change(task.killed(self.now), task, stop=StopKind.KILL))
        self.stale.append(self.active.pop(task.id))
        entry = self.model[task.id]
        entry.status, entry.finished_at, entry.cancel_requested = (
            TaskStatus.FAILED,
            self.now,
            False,
        )

    @precondition(lambda self: self._ids(TaskStatus.FAILED) + self._ids(TaskStatus.CANCELLED))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        finished = self._ids(TaskStatus.FAILED) + self._ids(TaskStatus.CANCELLED)
        task = self.run(self.queue.get(data.draw(st.sampled_from(sorted(finished)))))
        self.run(self.queue.change(task.retried(self.now), task))
        entry = self.model[task.id]
        self.seq += 1
        entry.status, entry.seq, entry.attempts, entry.stalls = TaskStatus.WAITING, self.seq, 0, 0

    @precondition(lambda self: self.stale)
    @rule(data=st.data())
    def change_a_stale_read(self, data: st.DataObject) -> None:
        """An operator's read of an active task, taken before its claim ended."""
        task = data.draw(st.sampled_from(self.stale))
        gone = task.id not in self.model  # removed since: nothing to change
        with pytest.raises(TaskNotFound if gone else TaskChanged):
            self.run(self.queue.change(task.killed(self.now), task, stop=StopKind.KILL))

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        task = self._pick_stored(data)
        if self.model[task.id].status is TaskStatus.ACTIVE:
            with pytest.raises(TaskActive):
                self.run(self.queue.remove(task))
            return
        self.run(self.queue.remove(task))
        self.removed[task.id] = self.model.pop(task.id).request

    @rule(paused=st.booleans())
    def pause(self, paused: bool) -> None:
        self.run(self.queue.set_paused(QUEUE, paused))
        self.paused = paused

    @rule(age=st.sampled_from([0, 100, 10_000]), limit=st.integers(1, 3))
    def sweep(self, age: int, limit: int) -> None:
        before = self.now - age
        expected = [
            task_id
            for status in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
            for _, task_id in sorted(
                (e.finished_at, task_id)
                for task_id, e in self.model.items()
                if e.status is status and e.finished_at < before
            )
        ][:limit]
        removed = self.run(self.queue.sweep(QUEUE, dict.fromkeys(TaskStatus, before), limit))
        assert removed == len(expected)
        for task_id in expected:
            self.removed[task_id] = self.model.pop(task_id).request

    # --- invariants (one snapshot of the queue's keys per step) -------------------------

    @invariant()
    def redis_matches_the_model(self) -> None:
        snapshot = self.run(self._snapshot())
        self._check_state_sets(snapshot)
        self._check_scores(snapshot.sets)
        self._check_listing_indexes(snapshot)
        for task in snapshot.hashes.values():
            self._check_task(task)

    @rule()
    def read_back(self) -> None:
        """The reads agree: a listing shows every task once, stats count them."""
        page = self.run(self.queue.list_tasks(TaskQuery(queue=QUEUE, limit=100)))
        assert page.total == len(page.items) == len(self.model)
        for task in page.items:
            self._check_task(task)
        stats = {s.queue: s for s in self.run(self.queue.stats(self.now))}
        if QUEUE in stats:
            assert stats[QUEUE].paused is self.paused
            assert stats[QUEUE].counts == {s: len(self._ids(s)) for s in TaskStatus}
        if self.model:
            task_id = min(self.model)
            self._check_task(self.run(self.queue.get(task_id)))

    def _check_state_sets(self, snapshot: Snapshot) -> None:
        """Each task in exactly one state set, the one of its hash's status."""
        sets, hashes = snapshot.sets, snapshot.hashes
        membership = Counter(task_id for members in sets.values() for task_id in members)
        assert set(membership) == set(hashes) == set(self.model)
        assert all(count == 1 for count in membership.values())
        for status, members in sets.items():
            for task_id in members:
                assert hashes[task_id].status is status
                assert self.model[task_id].status is status

    def _check_scores(self, sets: dict[TaskStatus, dict[str, float]]) -> None:
        waiting = sorted(self._ids(TaskStatus.WAITING), key=self._order)
        assert list(sets[TaskStatus.WAITING]) == waiting
        for task_id, due in sets[TaskStatus.DELAYED].items():
            assert due == self.model[task_id].run_at
        for task_id, deadline in sets[TaskStatus.ACTIVE].items():
            assert deadline == self.model[task_id].deadline
        for status in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED):
            for task_id, finished_at in sets[status].items():
                assert finished_at == self.model[task_id].finished_at

    def _check_listing_indexes(self, snapshot: Snapshot) -> None:
        """Each task in exactly one `idx:<status>:<name>`, in `ids`, and in the index of
        each of its words; nothing else in them."""
        placed = Counter(task_id for members in snapshot.indexes.values() for task_id in members)
        assert set(placed) == set(self.model)
        assert all(count == 1 for count in placed.values())
        for key, members in snapshot.indexes.items():
            for task_id in members:
                entry = self.model[task_id]
                assert key == KEYS.index(entry.status, entry.request[0])
        assert snapshot.ids == set(self.model)
        expected_words: dict[str, set[str]] = {}
        for task_id, entry in self.model.items():
            for word in task_tokens(entry.request[0], _payload(entry.request[1])):
                expected_words.setdefault(KEYS.token(word), set()).add(task_id)
        assert snapshot.words == expected_words

    def _check_task(self, task: Task) -> None:
        entry = self.model[task.id]
        name, n = entry.request
        assert (task.status, task.name, task.priority, task.payload) == (
            entry.status,
            name,
            entry.priority,
            _payload(n),
        )
        assert (task.attempts, task.stalls) == (entry.attempts, entry.stalls)

    # --- the model ------------------------------------------------------------------------

    def _task(self, task_id: str, request: Request, priority: int, delay: int) -> Task:
        name, n = request
        return Task(
            id=task_id,
            name=name,
            payload=_payload(n),
            created_at=self.now,
            run_at=self.now + delay,
            queue=QUEUE,
            priority=priority,
            status=TaskStatus.DELAYED if delay else TaskStatus.WAITING,
            max_attempts=2,
            backoff=Backoff(delay_ms=100, jitter=False),
        )

    def _expect_enqueue(self, task: Task) -> EnqueueOutcome:
        """The outcome of storing `task`, updating the model."""
        request = (task.name, task.payload["n"])
        if task.id in self.model:
            same = self.model[task.id].request == request
            return EnqueueOutcome.EXISTING if same else EnqueueOutcome.CONFLICT
        if task.id in self.removed:
            same = self.removed[task.id] == request
            return EnqueueOutcome.REMOVED if same else EnqueueOutcome.CONFLICT
        entry = Expected(request, task.priority, task.status, run_at=task.run_at)
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
        for _, task_id in due:  # promoted even while paused
            self.seq += 1
            self.model[task_id].status, self.model[task_id].seq = TaskStatus.WAITING, self.seq
        if self.paused:
            return []
        return sorted(self._ids(TaskStatus.WAITING), key=self._order)[:limit]

    def _settle(self, outcome: Task, recovered_at: int | None = None) -> None:
        if recovered_at is None:
            self.run(self.queue.settle(outcome))
        else:
            self.run(self.queue.recover(outcome, expired_by=recovered_at))
        self.stale.append(self.active.pop(outcome.id))
        entry = self.model[outcome.id]
        if recovered_at is None:
            entry.outcome_fence = outcome.fence
        entry.status, entry.attempts = outcome.status, outcome.attempts
        entry.stalls, entry.cancel_requested = outcome.stalls, False
        if outcome.status is TaskStatus.DELAYED:
            entry.run_at = outcome.run_at
        elif outcome.status is TaskStatus.WAITING and recovered_at is not None:
            entry.seq = 0  # a stall goes ahead of its priority's other tasks
        elif outcome.status is TaskStatus.WAITING:
            self.seq += 1
            entry.seq = self.seq
        else:
            entry.finished_at = self.now

    def _pick_active(self, data: st.DataObject) -> Task:
        return self.active[data.draw(st.sampled_from(sorted(self.active)))]

    def _pick_stored(self, data: st.DataObject) -> Task:
        """An operator's read of a task: as it is stored now."""
        return self.run(self.queue.get(data.draw(st.sampled_from(sorted(self.model)))))

    def _ids(self, status: TaskStatus) -> list[str]:
        return [task_id for task_id, e in self.model.items() if e.status is status]

    def _order(self, task_id: str) -> tuple[int, int, str]:
        """A sorted set's order: priority, sequence, then the id (ties: stalls gone ahead)."""
        return self.model[task_id].priority, self.model[task_id].seq, task_id

    async def _snapshot(self) -> Snapshot:
        """The queue's keys from Redis: state sets (member -> score), the task hashes,
        listing indexes, the id set and the words' indexes."""
        keys = sorted(
            {key async for key in self.client.scan_iter(match=f"{KEYS.prefix}*", count=1_000)}
        )
        tasks = [key for key in keys if key.startswith(KEYS.task(""))]
        indexes = [key for key in keys if key.startswith(f"{KEYS.prefix}idx:")]
        words = [key for key in keys if key.startswith(f"{KEYS.prefix}tok:")]
        async with self.client.pipeline(transaction=False) as pipe:
            for status in TaskStatus:
                pipe.zrange(KEYS.state(status), 0, -1, withscores=True)
            for key in tasks:
                pipe.hgetall(key)
            for key in [*indexes, *words, KEYS.ids]:
                pipe.zrange(key, 0, -1)
            replies = await pipe.execute()
        sets, replies = replies[: len(TaskStatus)], replies[len(TaskStatus) :]
        statuses, replies = replies[: len(tasks)], replies[len(tasks) :]
        members = dict(zip([*indexes, *words, KEYS.ids], replies, strict=True))
        return Snapshot(
            sets={
                status: {member: score for member, score in reply}
                for status, reply in zip(TaskStatus, sets, strict=True)
            },
            hashes={
                key.removeprefix(KEYS.task("")): codec.decode(fields)
                for key, fields in zip(tasks, statuses, strict=True)
            },
            indexes={key: members[key] for key in indexes},
            ids=set(members[KEYS.ids]),
            words={key: set(members[key]) for key in words},
        )


@dataclass
class Snapshot:
    sets: dict[TaskStatus, dict[str, float]]
    hashes: dict[str, Task]  # the task hashes, decoded
    indexes: dict[str, list[str]]
    ids: set[str]
    words: dict[str, set[str]]


def _payload(n: int) -> dict[str, object]:
    return {"n": n, "label": LABEL}


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
