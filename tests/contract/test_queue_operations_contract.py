"""TaskStore contract, operators' side: change, cancel requests, stop requests, waiting for
an outcome, pausing, retention and batches, on the fake and on the Redis store alike."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from random import Random
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis

from domain.errors import LockLost, TaskChanged, TaskNotFound
from domain.ports import EventFeed
from domain.task import StopKind, Task, TaskError, TaskStatus
from domain.values import EnqueueOutcome, LeaseState, StopRequest
from infrastructure.redis.client import database_of
from infrastructure.redis.keys import keys_of
from tests.contract.queue_support import (
    CONFIGURED,
    LEASE_MS,
    OPS_OTHER,
    PROBED,
    QUEUE,
    T0,
    WAIT_S,
    WINDOW_MS,
    TaskStore,
    claim,
    claim_one,
    enqueue_claimed,
    failure,
    make_task,
    renew,
)
from tests.fakes import FEED_SIZE, eventually
from tests.stores import RedisStore


async def finished_task(queue: TaskStore, task_id: str, status: TaskStatus, at: int) -> Task:
    """A task of QUEUE that reached `status` (a terminal one) at `at`; nothing else may
    be waiting in QUEUE."""
    if status is TaskStatus.CANCELLED:
        await queue.enqueue([make_task(task_id)])
        waiting = await queue.get(task_id, QUEUE)
        await queue.change(waiting.cancelled(at), waiting)
    else:
        task = await enqueue_claimed(queue, task_id)
        if status is TaskStatus.COMPLETED:
            await queue.settle(task.complete("ok", at))
        else:
            await queue.settle(task.fail(failure(retryable=False), at, Random(0)))
    stored = await queue.get(task_id, QUEUE)
    assert stored.status is status
    return stored


# --- change: operators' transitions, optimistic ----------------------------------------------


@pytest.mark.parametrize("run_at", [T0, T0 + 5_000], ids=["waiting", "delayed"])
async def test_cancel_of_a_waiting_or_delayed_task_takes_it_off_the_queue(
    queue: TaskStore, run_at: int
) -> None:
    await queue.enqueue([make_task("t1", run_at=run_at), make_task("t2")])
    read = await queue.get("t1")

    await queue.change(read.cancelled(T0 + 10), read)

    stored = await queue.get("t1")
    assert (stored.status, stored.finished_at, stored.history) == (
        TaskStatus.CANCELLED,
        T0 + 10,
        (),
    )
    batch = await queue.claim(QUEUE, "w", 5, LEASE_MS, T0 + 10_000)
    assert [task.id for task in batch.tasks] == ["t2"]
    assert (await queue.claim(QUEUE, "w", 5, LEASE_MS, T0 + 10_000)).next_due_at is None


async def test_change_of_a_task_that_moved_meanwhile_raises_task_changed(
    queue: TaskStore,
) -> None:
    await queue.enqueue([make_task("t1")])
    read = await queue.get("t1")
    claimed = await claim_one(queue)

    with pytest.raises(TaskChanged):
        await queue.change(read.cancelled(T0 + 1), read)

    assert await queue.get("t1") == claimed


async def test_change_checks_the_fence_as_well_as_the_status(queue: TaskStore) -> None:
    first = await enqueue_claimed(queue)
    await queue.settle(first.returned(T0 + 1))
    second = await claim_one(queue, now=T0 + 2)
    assert first.status is second.status is TaskStatus.ACTIVE

    with pytest.raises(TaskChanged):
        await queue.change(first.killed(T0 + 3), first, stop=StopKind.KILL)

    assert (await queue.get("t1")).status is TaskStatus.ACTIVE
    await queue.change(second.killed(T0 + 3), second, stop=StopKind.KILL)
    assert (await queue.get("t1")).status is TaskStatus.FAILED


async def test_the_same_read_cannot_be_changed_twice(queue: TaskStore) -> None:
    await queue.enqueue([make_task("t1")])
    read = await queue.get("t1")
    await queue.change(read.cancelled(T0 + 1), read)

    with pytest.raises(TaskChanged):
        await queue.change(read.killed(T0 + 2), read)

    assert (await queue.get("t1")).status is TaskStatus.CANCELLED


async def test_change_of_a_removed_task_raises_task_not_found(queue: TaskStore) -> None:
    await queue.enqueue([make_task("t1")])
    read = await queue.get("t1")
    await queue.remove(read)

    with pytest.raises(TaskNotFound):
        await queue.change(read.cancelled(T0 + 1), read)

    with pytest.raises(TaskNotFound):
        await queue.get("t1")


@pytest.mark.parametrize("status", [TaskStatus.FAILED, TaskStatus.CANCELLED])
async def test_a_retried_task_is_claimable_again_with_fresh_attempts(
    queue: TaskStore, status: TaskStatus
) -> None:
    finished = await finished_task(queue, "t1", status, T0 + 10)
    await queue.enqueue([make_task("t0")])

    await queue.change(finished.retried(T0 + 20), finished)

    stored = await queue.get("t1")
    assert (stored.status, stored.attempts, stored.stalls) == (TaskStatus.WAITING, 0, 0)
    assert (stored.run_at, stored.finished_at, stored.error, stored.result) == (
        T0 + 20,
        None,
        None,
        None,
    )
    claimed = await claim(queue, limit=5, now=T0 + 20)
    assert [task.id for task in claimed] == ["t0", "t1"]  # behind what was already waiting
    assert claimed[1].fence > finished.fence


async def test_a_killed_active_task_is_failed_and_its_worker_fenced_out(
    queue: TaskStore,
) -> None:
    task = await enqueue_claimed(queue)

    await queue.change(task.killed(T0 + 50), task, stop=StopKind.KILL)

    stored = await queue.get("t1")
    assert stored.status is TaskStatus.FAILED
    assert stored.error == TaskError("Killed", "killed by an operator")
    assert [entry.outcome for entry in stored.history] == ["killed"]
    assert await renew(queue, task, T0 + 60) is LeaseState.LOST
    with pytest.raises(LockLost):
        await queue.settle(task.complete("late", T0 + 70))
    assert await queue.expired(QUEUE, T0 + 10**6, 10) == []
    assert (await queue.get("t1")).status is TaskStatus.FAILED


# --- request_cancel and lease renewals ---------------------------------------------------------


async def test_a_cancel_request_is_reported_by_the_next_lease_renewal(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)
    assert await renew(queue, task, T0 + 100) is LeaseState.HELD

    await queue.request_cancel(task)

    assert await renew(queue, task, T0 + 200) is LeaseState.CANCEL_REQUESTED
    assert await renew(queue, task, T0 + 300) is LeaseState.CANCEL_REQUESTED  # until it settles
    assert (await queue.get("t1")).status is TaskStatus.ACTIVE  # the worker records it
    await queue.settle(task.cancelled(T0 + 400))
    stored = await queue.get("t1")
    assert stored.status is TaskStatus.CANCELLED
    assert [entry.outcome for entry in stored.history] == ["cancelled"]


async def test_a_cancel_request_ends_with_the_claim_it_was_made_for(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)
    await queue.request_cancel(task)
    await queue.settle(task.returned(T0 + 1))  # a shutdown raced the cancel

    again = await claim_one(queue, now=T0 + 2)

    assert await renew(queue, again, T0 + 3) is LeaseState.HELD


async def test_only_an_active_task_can_be_asked_to_cancel(queue: TaskStore) -> None:
    await queue.enqueue([make_task("t1")])
    waiting = await queue.get("t1")

    with pytest.raises(TaskChanged):
        await queue.request_cancel(waiting)
    with pytest.raises(TaskNotFound):
        await queue.request_cancel(make_task("nobody"))

    claimed = await claim_one(queue)
    assert await renew(queue, claimed, T0 + 1) is LeaseState.HELD


# --- stop_requests -------------------------------------------------------------------------


class StopStream:
    """A subscriber to stop requests that tells when it is listening: pub/sub drops
    messages sent before, so `ready` sends probe cancels until one comes through."""

    def __init__(self, queue: TaskStore, queues: list[str]) -> None:
        self._queue = queue
        self._requests = queue.stop_requests(queues)
        self._next: asyncio.Future[StopRequest] | None = None

    async def ready(self, probe: Task) -> None:
        async def listening() -> StopRequest:
            while True:
                await self._queue.request_cancel(probe)
                with contextlib.suppress(TimeoutError):
                    return await self.next(timeout_s=0.05)

        request = await asyncio.wait_for(listening(), WAIT_S)
        assert request == StopRequest(probe.id, probe.queue, StopKind.CANCEL)

    async def next(self, timeout_s: float = WAIT_S) -> StopRequest:
        if self._next is None:
            self._next = asyncio.ensure_future(anext(self._requests))
        done, _ = await asyncio.wait({self._next}, timeout=timeout_s)
        if not done:
            raise TimeoutError
        arrived, self._next = self._next, None
        return arrived.result()

    async def next_other_than(self, probe: Task) -> StopRequest:
        """The next request that is not a late copy of the probes."""
        while (request := await self.next()) == StopRequest(probe.id, probe.queue, StopKind.CANCEL):
            pass
        return request

    async def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await self._next
        await self._requests.aclose()  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def stop_stream(queue: TaskStore, queues: list[str]) -> AsyncIterator[StopStream]:
    stream = StopStream(queue, queues)
    try:
        yield stream
    finally:
        await stream.close()


async def test_a_kill_reaches_the_stop_requests_of_its_queue(queue: TaskStore) -> None:
    probe = await enqueue_claimed(queue, "probe")
    target = await enqueue_claimed(queue, "target")

    async with stop_stream(queue, [OPS_OTHER, QUEUE]) as stream:
        await stream.ready(probe)
        await queue.change(target.killed(T0 + 5), target, stop=StopKind.KILL)

        assert await stream.next_other_than(probe) == StopRequest("target", QUEUE, StopKind.KILL)


async def test_stop_requests_of_other_queues_are_not_delivered(queue: TaskStore) -> None:
    probe = await enqueue_claimed(queue, "probe")
    elsewhere = await enqueue_claimed(queue, "elsewhere", queue=OPS_OTHER)
    elsewhere_probe = await enqueue_claimed(queue, "elsewhere-probe", queue=OPS_OTHER)

    async with stop_stream(queue, [QUEUE]) as mine, stop_stream(queue, [OPS_OTHER]) as theirs:
        await mine.ready(probe)
        await theirs.ready(elsewhere_probe)
        await queue.change(elsewhere.killed(T0 + 5), elsewhere, stop=StopKind.KILL)
        await queue.request_cancel(probe)  # then one for `mine`, which must come first

        assert await theirs.next_other_than(elsewhere_probe) == StopRequest(
            "elsewhere", OPS_OTHER, StopKind.KILL
        )
        assert await mine.next() == StopRequest("probe", QUEUE, StopKind.CANCEL)


async def test_a_change_without_stop_sends_no_stop_request(queue: TaskStore) -> None:
    probe = await enqueue_claimed(queue, "probe")
    await queue.enqueue([make_task("quiet")])
    quiet = await queue.get("quiet")

    async with stop_stream(queue, [QUEUE]) as stream:
        await stream.ready(probe)
        await queue.change(quiet.cancelled(T0 + 5), quiet)
        target = await enqueue_claimed(queue, "target")
        await queue.change(target.killed(T0 + 6), target, stop=StopKind.KILL)

        assert await stream.next_other_than(probe) == StopRequest("target", QUEUE, StopKind.KILL)


# --- wait_finished -------------------------------------------------------------------------


async def started(waiter: asyncio.Future[Any]) -> None:
    """Give a waiter a moment to start listening. Not needed for correctness (a waiter
    reads the task again once it listens), only so that the wake-up path is the one used."""
    await asyncio.wait({waiter}, timeout=0.05)
    assert not waiter.done()


async def test_wait_finished_wakes_on_the_settle(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)
    waiter = asyncio.ensure_future(queue.wait_finished(task, 60_000))
    await started(waiter)

    await queue.settle(task.complete({"ok": True}, T0 + 5))

    finished = await asyncio.wait_for(waiter, WAIT_S)
    assert finished.status is TaskStatus.COMPLETED
    assert finished.result == {"ok": True}


async def test_wait_finished_wakes_on_an_operators_cancel(queue: TaskStore) -> None:
    await queue.enqueue([make_task("t1", run_at=T0 + 60_000)])
    read = await queue.get("t1")
    waiter = asyncio.ensure_future(queue.wait_finished(read, 60_000))
    await started(waiter)

    await queue.change(read.cancelled(T0 + 5), read)

    assert (await asyncio.wait_for(waiter, WAIT_S)).status is TaskStatus.CANCELLED


async def test_wait_finished_sleeps_through_a_retry(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)
    waiter = asyncio.ensure_future(queue.wait_finished(task, 60_000))
    await started(waiter)

    await queue.settle(task.fail(failure(), T0 + 5, Random(0)))
    await started(waiter)  # still waiting: a retry is not an outcome
    again = await claim_one(queue, now=T0 + 10_000)
    await queue.settle(again.complete("second time", T0 + 10_001))

    finished = await asyncio.wait_for(waiter, WAIT_S)
    assert (finished.status, finished.result, finished.attempts) == (
        TaskStatus.COMPLETED,
        "second time",
        2,
    )


async def test_wait_finished_gives_the_task_as_it_is_after_the_timeout(
    queue: TaskStore,
) -> None:
    task = await enqueue_claimed(queue)
    await queue.set_progress(task, 7)

    after = await asyncio.wait_for(queue.wait_finished(task, 50), WAIT_S)

    assert after.status is TaskStatus.ACTIVE
    assert after == await queue.get("t1")
    assert after.progress == 7  # read again, not the caller's copy


async def test_wait_finished_of_a_finished_task_returns_it_at_once(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)
    await queue.settle(task.complete(1, T0 + 1))
    done = await queue.get("t1")

    assert await asyncio.wait_for(queue.wait_finished(done, 60_000), WAIT_S) == done
    assert await queue.wait_finished(task, 0) == task  # no wait: the caller's copy


async def test_wait_finished_of_a_task_removed_meanwhile_raises_task_not_found(
    queue: TaskStore,
) -> None:
    await queue.enqueue([make_task("t1", run_at=T0 + 60_000)])
    read = await queue.get("t1")
    waiter = asyncio.ensure_future(queue.wait_finished(read, 60_000))
    await started(waiter)

    await queue.remove(read)

    with pytest.raises(TaskNotFound):
        await asyncio.wait_for(waiter, WAIT_S)


# --- set_paused ----------------------------------------------------------------------------


async def test_a_paused_queue_hands_out_nothing_until_resumed(queue: TaskStore) -> None:
    await queue.enqueue([make_task("a"), make_task("later", run_at=T0 + 100)])
    await queue.enqueue([make_task("elsewhere", queue=OPS_OTHER)])

    await queue.set_paused(QUEUE, True)

    batch = await queue.claim(QUEUE, "w", 5, LEASE_MS, T0 + 200)
    assert (batch.tasks, batch.next_due_at) == ([], None)
    assert (await queue.get("later")).status is TaskStatus.WAITING  # due: promoted anyway
    assert [t.id for t in await claim(queue, 5, T0 + 200, OPS_OTHER)] == ["elsewhere"]
    await queue.set_paused(QUEUE, True)  # pausing twice is harmless
    await queue.set_paused(QUEUE, False)
    assert [t.id for t in await claim(queue, limit=5, now=T0 + 200)] == ["a", "later"]


async def test_resuming_wakes_idle_workers(queue: TaskStore) -> None:
    await queue.set_paused(QUEUE, True)
    await queue.enqueue([make_task("t1")])
    await queue.wait_for_work([QUEUE], 1_000)  # takes the enqueue's wake-up
    assert await claim(queue) == []
    waiter = asyncio.ensure_future(queue.wait_for_work([QUEUE], 60_000))
    await started(waiter)

    await queue.set_paused(QUEUE, False)

    await asyncio.wait_for(waiter, WAIT_S)
    assert [t.id for t in await claim(queue)] == ["t1"]


async def test_a_running_task_of_a_paused_queue_still_settles(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)

    await queue.set_paused(QUEUE, True)
    assert await renew(queue, task, T0 + 1) is LeaseState.HELD
    await queue.settle(task.complete("done", T0 + 2))

    assert (await queue.get("t1")).status is TaskStatus.COMPLETED


# --- sweep ---------------------------------------------------------------------------------


async def test_sweep_removes_only_tasks_finished_before_their_statuses_time(
    queue: TaskStore,
) -> None:
    await finished_task(queue, "done-old", TaskStatus.COMPLETED, T0 + 10)
    await finished_task(queue, "done-edge", TaskStatus.COMPLETED, T0 + 1_000)
    await finished_task(queue, "failed-old", TaskStatus.FAILED, T0 + 10)
    await finished_task(queue, "cancelled-old", TaskStatus.CANCELLED, T0 + 10)
    active = await enqueue_claimed(queue, "running")
    await queue.enqueue([make_task("waiting"), make_task("delayed", run_at=T0 + 10)])

    removed = await queue.sweep(
        QUEUE, {TaskStatus.COMPLETED: T0 + 1_000, TaskStatus.CANCELLED: 0}, 100
    )

    assert removed == 1
    with pytest.raises(TaskNotFound):
        await queue.get("done-old")
    for kept in ("done-edge", "failed-old", "cancelled-old", "running", "waiting", "delayed"):
        await queue.get(kept)
    assert (await queue.get("running")).fence == active.fence


async def test_sweep_honours_its_limit_across_statuses(queue: TaskStore) -> None:
    for n in range(3):
        await finished_task(queue, f"c{n}", TaskStatus.COMPLETED, T0 + n)
    await finished_task(queue, "f", TaskStatus.FAILED, T0)
    before = dict.fromkeys((TaskStatus.COMPLETED, TaskStatus.FAILED), T0 + 100)

    assert await queue.sweep(QUEUE, before, 2) == 2
    assert await queue.sweep(QUEUE, before, 2) == 2
    assert await queue.sweep(QUEUE, before, 2) == 0
    with pytest.raises(TaskNotFound):
        await queue.get("f")


async def test_sweep_removes_the_oldest_first(queue: TaskStore) -> None:
    for n, at in enumerate([T0 + 30, T0 + 10, T0 + 20]):
        await finished_task(queue, f"c{n}", TaskStatus.COMPLETED, at)

    assert await queue.sweep(QUEUE, {TaskStatus.COMPLETED: T0 + 100}, 1) == 1

    with pytest.raises(TaskNotFound):
        await queue.get("c1")
    assert {(await queue.get(task_id)).id for task_id in ("c0", "c2")} == {"c0", "c2"}


async def test_swept_ids_stay_reserved_like_removed_ones(queue: TaskStore) -> None:
    await finished_task(queue, "t1", TaskStatus.COMPLETED, T0)
    await finished_task(queue, "t2", TaskStatus.COMPLETED, T0)
    assert await queue.sweep(QUEUE, {TaskStatus.COMPLETED: T0 + 1}, 10) == 2

    results = await queue.enqueue(
        [make_task("t1"), make_task("t2", payload={"n": 2}), make_task("t1", queue=OPS_OTHER)]
    )

    assert [r.outcome for r in results] == [
        EnqueueOutcome.REMOVED,
        EnqueueOutcome.CONFLICT,
        EnqueueOutcome.CONFLICT,  # reserved deployment-wide, not only in its queue
    ]
    for task_id in ("t1", "t2"):
        with pytest.raises(TaskNotFound):
            await queue.get(task_id)


async def test_sweep_keeps_to_its_queue(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue, "t1", queue=OPS_OTHER)
    await queue.settle(task.complete(None, T0))

    assert await queue.sweep(QUEUE, {TaskStatus.COMPLETED: T0 + 1}, 10) == 0
    assert await queue.sweep("never-used", {TaskStatus.COMPLETED: T0 + 1}, 10) == 0
    assert (await queue.get("t1", OPS_OTHER)).status is TaskStatus.COMPLETED


# --- batches -------------------------------------------------------------------------------


async def test_a_batch_gathers_its_tasks_as_they_are_now(queue: TaskStore) -> None:
    await queue.enqueue([make_task("old")])
    tasks = [make_task("b1"), make_task("b2", queue=OPS_OTHER), make_task("old"), make_task("b3")]

    results = await queue.enqueue(tasks, batch_id="batch-1")

    assert [r.outcome for r in results] == [EnqueueOutcome.CREATED] * 2 + [
        EnqueueOutcome.EXISTING,
        EnqueueOutcome.CREATED,
    ]
    gathered = await queue.batch("batch-1")
    assert [(t.id, t.queue) for t in gathered] == [
        ("b1", QUEUE),
        ("b2", OPS_OTHER),
        ("old", QUEUE),
        ("b3", QUEUE),
    ]
    running = await claim_one(queue)  # "old", the first enqueued
    await queue.settle(running.complete(42, T0 + 1))
    await queue.remove(await queue.get("b3"))
    gathered = await queue.batch("batch-1")
    assert [(t.id, t.status) for t in gathered] == [
        ("b1", TaskStatus.WAITING),
        ("b2", TaskStatus.WAITING),
        ("old", TaskStatus.COMPLETED),
    ]
    assert gathered[2].result == 42


async def test_an_unknown_batch_raises_task_not_found(queue: TaskStore) -> None:
    await queue.enqueue([make_task("t1")])

    with pytest.raises(TaskNotFound):
        await queue.batch("nope")


async def test_an_enqueue_without_batch_id_records_no_batch(queue: TaskStore) -> None:
    await queue.enqueue([make_task("t1"), make_task("t2", queue=OPS_OTHER)])

    with pytest.raises(TaskNotFound):
        await queue.batch("t1")


async def test_a_conflicting_task_is_not_part_of_the_batch(queue: TaskStore) -> None:
    await queue.enqueue([make_task("taken", payload={"secret": "theirs"})])

    results = await queue.enqueue([make_task("mine"), make_task("taken")], batch_id="b")

    assert [r.outcome for r in results] == [EnqueueOutcome.CREATED, EnqueueOutcome.CONFLICT]
    assert [t.id for t in await queue.batch("b")] == ["mine"]


async def test_redis_an_empty_enqueue_with_a_batch_id_stores_nothing(
    redis: Redis, blocking_redis: Redis
) -> None:
    queue = RedisStore(redis, blocking_redis, WINDOW_MS, queues=CONFIGURED)

    assert await queue.enqueue([], batch_id="empty") == []
    with pytest.raises(TaskNotFound):
        await queue.batch("empty")


# --- events --------------------------------------------------------------------------------


async def events_until_sentinel(queue: TaskStore, feed: EventFeed) -> list[tuple[str, ...]]:
    """The events of QUEUE so far: those before a sentinel task's, enqueued now."""
    await queue.enqueue([make_task("sentinel")])
    seen: list[tuple[str, ...]] = []
    while True:
        batch = await feed.next_batch(WAIT_S)
        assert batch, f"no event within {WAIT_S} s (feed ended: {feed.ended})"
        for event in batch:
            if event.queue != QUEUE:
                continue
            if event.task_id == "sentinel":
                return seen
            seen.append((event.task_id, event.name, event.status))


async def test_events_report_every_transition_once_subscribed(queue: TaskStore) -> None:
    await queue.enqueue([make_task("before")])  # not reported: before the subscription
    feed = await queue.events()
    try:
        await queue.enqueue([make_task("t1"), make_task("later", run_at=T0 + 10)])
        await queue.enqueue([make_task("t1", payload={"n": 2})])  # a conflict moves nothing
        before, task = await claim(queue, limit=2)
        await queue.settle(task.complete(None, T0 + 1))
        await queue.remove(await queue.get("t1"))
        read = await queue.get("before", QUEUE)
        await queue.change(read.killed(T0 + 2), read, stop=StopKind.KILL)

        seen = await events_until_sentinel(queue, feed)
    finally:
        feed.close()

    assert seen == [
        ("t1", "echo", "waiting"),
        ("later", "echo", "delayed"),
        ("before", "echo", "active"),
        ("t1", "echo", "active"),
        ("t1", "echo", "completed"),
        ("t1", "echo", "removed"),
        ("before", "echo", "failed"),
    ]
    assert before.id == "before"


async def test_a_feed_whose_reader_falls_too_far_behind_ends_lagged(queue: TaskStore) -> None:
    feed = await queue.events()
    try:
        # One more event than the feed may hold, none of them read.
        await queue.enqueue([make_task(f"t{n}") for n in range(FEED_SIZE + 1)])
        await eventually(lambda: feed.ended == "lagged")
        assert await feed.next_batch(0.01) == []
    finally:
        feed.close()
    assert feed.ended == "lagged"  # closing an ended feed changes nothing


async def test_a_feed_closed_by_its_reader_delivers_nothing_more(queue: TaskStore) -> None:
    feed = await queue.events()
    other = await queue.events()
    try:
        feed.close()
        feed.close()
        await queue.enqueue([make_task("t1")])
        assert await feed.next_batch(0.01) == []
        assert feed.ended == "closed"
        assert await events_until_sentinel(queue, other) == [("t1", "echo", "waiting")]
    finally:
        other.close()


async def test_events_report_the_promotion_of_a_due_task(queue: TaskStore) -> None:
    await queue.enqueue([make_task("later", run_at=T0 + 10)])
    await queue.set_paused(QUEUE, True)
    feed = await queue.events()
    try:
        await queue.claim(QUEUE, "w", 1, LEASE_MS, T0 + 10)  # promotes, claims nothing
        await queue.set_paused(QUEUE, False)
        (later,) = await claim(queue, now=T0 + 10)

        seen = await events_until_sentinel(queue, feed)
    finally:
        feed.close()

    assert seen == [("later", "echo", "waiting"), ("later", "echo", "active")]
    assert later.id == "later"


@contextlib.asynccontextmanager
async def another_database(redis: Redis, redis_url: str) -> AsyncIterator[tuple[Redis, int]]:
    """A client of another database of the same server, and its number; only PUBLISH is
    sent there, so no key is written to a database the tests do not own."""
    url = urlsplit(redis_url)
    other = (int(url.path.lstrip("/") or 0) + 1) % 16
    elsewhere = Redis.from_url(urlunsplit(url._replace(path=f"/{other}")), decode_responses=True)
    assert database_of(elsewhere) != database_of(redis)
    try:
        yield elsewhere, other
    finally:
        await elsewhere.aclose()


async def test_redis_stop_requests_of_another_database_are_not_delivered(
    redis: Redis, blocking_redis: Redis, redis_url: str
) -> None:
    queue = RedisStore(redis, blocking_redis, WINDOW_MS, queues=CONFIGURED)
    probe = await enqueue_claimed(queue, "probe", queue=PROBED)
    mine = await enqueue_claimed(queue, "mine", queue=PROBED)
    async with (
        another_database(redis, redis_url) as (elsewhere, other),
        stop_stream(queue, [PROBED]) as stream,
    ):
        await stream.ready(probe)
        # What move_task.lua publishes for a kill of the same queue in that deployment,
        # then a kill here: pub/sub keeps their order, so the first would come first.
        channel = keys_of(PROBED).control(other)
        assert await elsewhere.publish(channel, "kill mine") == 0  # nobody listens there
        await queue.change(mine.killed(T0 + 5), mine, stop=StopKind.KILL)

        assert await stream.next_other_than(probe) == StopRequest("mine", PROBED, StopKind.KILL)


async def test_redis_events_of_another_database_are_not_delivered(
    redis: Redis, blocking_redis: Redis, redis_url: str
) -> None:
    queue = RedisStore(redis, blocking_redis, WINDOW_MS, queues=CONFIGURED)
    feed = await queue.events()
    try:
        async with another_database(redis, redis_url) as (elsewhere, other):
            # What an enqueue of the same queue publishes in that deployment.
            event = {"id": "theirs", "queue": QUEUE, "name": "echo", "status": "waiting"}
            await elsewhere.publish(keys_of(QUEUE).events(other), json.dumps([event]))
            await queue.enqueue([make_task("ours")])

            seen = await events_until_sentinel(queue, feed)
    finally:
        feed.close()
        await queue.aclose()

    assert seen == [("ours", "echo", "waiting")]
