"""TaskStore contract: the in-memory fake and the Redis store must behave alike."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from random import Random
from typing import Any

import pytest

from domain.errors import LockLost, TaskActive, TaskNotFound
from domain.task import TaskError, TaskStatus
from domain.values import ClaimRequest, EnqueueOutcome, LeaseState
from tests.contract.queue_support import (
    LEASE_MS,
    OTHER,
    QUEUE,
    T0,
    MakeQueue,
    TaskStore,
    claim,
    claim_one,
    enqueue_claimed,
    failure,
    make_task,
)
from tests.fakes import eventually

# --- storing and reading ------------------------------------------------------------------


async def test_a_stored_task_reads_back_equal(queue: TaskStore) -> None:
    task = make_task(
        "t:1.a_b-c",
        payload={"text": "héllo", "none": None, "nested": [1, 2.5, {"k": [True, None]}]},
        priority=-7,
        max_attempts=5,
        timeout_ms=1234,
        created_by="alice",
    )

    (enqueued,) = await queue.enqueue([task])

    assert enqueued.outcome is EnqueueOutcome.CREATED
    assert await queue.get(task.id, QUEUE) == task
    assert await queue.get(task.id) == task


async def test_get_of_an_unknown_id_raises_task_not_found(queue: TaskStore) -> None:
    await queue.enqueue([make_task("t1")])

    with pytest.raises(TaskNotFound):
        await queue.get("nope")
    with pytest.raises(TaskNotFound):
        await queue.get("t1", "another-queue")


# --- ordering -------------------------------------------------------------------------------


async def test_claim_takes_lower_priority_first(queue: TaskStore) -> None:
    priorities = {"a": 5, "b": -3, "c": 0, "d": 10, "e": -1_000_000, "f": 1_000_000}
    await queue.enqueue([make_task(task_id, priority=p) for task_id, p in priorities.items()])

    claimed = await claim(queue, limit=10)

    assert [task.id for task in claimed] == ["e", "b", "c", "a", "d", "f"]


async def test_equal_priorities_are_claimed_first_in_first_out(queue: TaskStore) -> None:
    ids = ["z", "a", "m", "b", "y"]  # not sorted, so id order cannot pass for FIFO
    for task_id in ids:
        await queue.enqueue([make_task(task_id, priority=2)])

    claimed = [(await claim_one(queue)).id for _ in ids]

    assert claimed == ids


async def test_claim_honours_its_limit(queue: TaskStore) -> None:
    await queue.enqueue([make_task(f"t{i}") for i in range(5)])

    assert len(await claim(queue, limit=2)) == 2
    assert len(await claim(queue, limit=10)) == 3
    assert await claim(queue, limit=10) == []


# --- delays ---------------------------------------------------------------------------------


async def test_a_delayed_task_is_claimed_at_its_run_at_not_before(queue: TaskStore) -> None:
    await queue.enqueue([make_task("later", run_at=T0 + 1_000)])

    early = await queue.claim(QUEUE, "w", 1, LEASE_MS, T0 + 999)
    assert early.tasks == []
    assert early.next_due_at == T0 + 1_000
    assert (await queue.get("later")).status is TaskStatus.DELAYED

    (task,) = (await queue.claim(QUEUE, "w", 1, LEASE_MS, T0 + 1_000)).tasks
    assert task.id == "later"
    assert task.status is TaskStatus.ACTIVE


async def test_next_due_at_reports_the_earliest_delayed_task(queue: TaskStore) -> None:
    assert (await queue.claim(QUEUE, "w", 1, LEASE_MS, T0)).next_due_at is None
    await queue.enqueue([make_task("t500", run_at=T0 + 500), make_task("t200", run_at=T0 + 200)])

    assert (await queue.claim(QUEUE, "w", 1, LEASE_MS, T0)).next_due_at == T0 + 200
    # Something claimed: no need to tell when the next one is due.
    batch = await queue.claim(QUEUE, "w", 1, LEASE_MS, T0 + 200)
    assert [task.id for task in batch.tasks] == ["t200"]
    assert batch.next_due_at is None


async def test_a_due_task_queues_by_priority_then_by_when_it_became_ready(
    queue: TaskStore,
) -> None:
    await queue.enqueue([make_task("delayed", run_at=T0 + 100)])
    await queue.enqueue([make_task("ready")])
    await queue.enqueue([make_task("urgent-later", run_at=T0 + 50, priority=-1)])

    claimed = await claim(queue, limit=3, now=T0 + 100)

    assert [task.id for task in claimed] == ["urgent-later", "ready", "delayed"]


async def test_a_past_run_at_stored_as_delayed_is_claimable_at_once(queue: TaskStore) -> None:
    await queue.enqueue([make_task("past", run_at=T0 - 5, status=TaskStatus.DELAYED)])

    assert [task.id for task in await claim(queue)] == ["past"]


# --- claims and fencing ---------------------------------------------------------------------


async def test_a_claim_marks_the_task_active_for_its_worker(queue: TaskStore) -> None:
    await queue.enqueue([make_task("t1")])

    task = await claim_one(queue, now=T0 + 7)

    assert task.status is TaskStatus.ACTIVE
    assert task.worker_id == "worker-1"
    assert task.started_at == T0 + 7
    assert task.fence > 0
    assert task.attempts == 0
    assert await queue.get("t1") == task


async def test_each_claim_gets_a_strictly_increasing_fence(queue: TaskStore) -> None:
    await queue.enqueue([make_task(f"t{i}") for i in range(3)])
    fences = [task.fence for task in await claim(queue, limit=2)]
    fences.append((await claim_one(queue)).fence)
    again = await queue.get("t0")
    await queue.settle(again.returned(T0))
    fences.append((await claim_one(queue)).fence)

    assert fences == sorted(set(fences))
    assert len(fences) == 4


async def test_settle_with_a_stale_fence_raises_lock_lost(queue: TaskStore) -> None:
    first = await enqueue_claimed(queue)
    await queue.settle(first.returned(T0 + 1))
    second = await claim_one(queue, now=T0 + 2)

    with pytest.raises(LockLost):
        await queue.settle(first.complete("late", T0 + 3))

    await queue.settle(second.complete("on time", T0 + 3))
    stored = await queue.get("t1")
    assert stored.status is TaskStatus.COMPLETED
    assert stored.result == "on time"


async def test_settle_is_accepted_only_while_active(queue: TaskStore) -> None:
    (enqueued,) = await queue.enqueue([make_task("t1")])
    with pytest.raises(LockLost):
        await queue.settle(enqueued.task.complete(None, T0))

    task = await claim_one(queue)
    await queue.settle(task.complete(None, T0 + 1))
    # Under the same token a second settle is a retry whose answer was lost: answered as
    # written, and the first outcome stands.
    await queue.settle(task.complete(None, T0 + 2))
    assert (await queue.get("t1")).finished_at == T0 + 1


async def test_complete_records_result_and_history(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)

    await queue.settle(task.complete({"answer": [4, 2]}, T0 + 10))

    stored = await queue.get("t1")
    assert stored.status is TaskStatus.COMPLETED
    assert stored.result == {"answer": [4, 2]}
    assert stored.attempts == 1
    assert stored.finished_at == T0 + 10
    assert [entry.outcome for entry in stored.history] == ["completed"]
    assert await claim(queue, limit=5, now=T0 + 10_000) == []


async def test_a_retryable_failure_is_delayed_then_claimable_again(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)

    await queue.settle(task.fail(failure(), T0 + 10, Random(0)))

    stored = await queue.get("t1")
    assert stored.status is TaskStatus.DELAYED
    assert stored.run_at == T0 + 110  # Backoff(delay_ms=100, jitter=False), first attempt
    assert stored.error == TaskError("RuntimeError", "boom")
    assert stored.worker_id is None
    assert await claim(queue, now=T0 + 109) == []
    again = await claim_one(queue, now=T0 + 110)
    assert again.attempts == 1
    assert again.fence > task.fence


async def test_a_final_failure_is_failed(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)

    await queue.settle(task.fail(failure(retryable=False), T0 + 10, Random(0)))

    stored = await queue.get("t1")
    assert stored.status is TaskStatus.FAILED
    assert stored.finished_at == T0 + 10
    assert stored.error == TaskError("RuntimeError", "boom")
    assert await claim(queue, limit=5, now=T0 + 10**9) == []


async def test_a_returned_task_is_waiting_again_behind_earlier_ones(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)
    await queue.enqueue([make_task("t2")])

    await queue.settle(task.returned(T0 + 5))

    stored = await queue.get("t1")
    assert stored.status is TaskStatus.WAITING
    assert stored.attempts == 0
    assert stored.worker_id is None
    assert [entry.outcome for entry in stored.history] == ["returned"]
    assert [t.id for t in await claim(queue, limit=2, now=T0 + 5)] == ["t2", "t1"]


async def test_a_settle_keeps_what_it_does_not_decide(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)
    await queue.set_progress(task, 42)

    await queue.settle(task.complete("done", T0 + 1))

    stored = await queue.get("t1")
    assert stored.progress == 42
    assert stored.fence == task.fence
    assert stored.started_at == T0
    assert stored.payload == {"n": 1}


# --- leases ---------------------------------------------------------------------------------


async def test_expired_lists_tasks_whose_lease_ended_before_now(queue: TaskStore) -> None:
    await queue.enqueue([make_task("early"), make_task("late")])
    await claim(queue, now=T0)
    await claim(queue, now=T0 + 500)

    assert await queue.expired(QUEUE, T0 + LEASE_MS, 10) == []
    assert [t.id for t in await queue.expired(QUEUE, T0 + LEASE_MS + 1, 10)] == ["early"]
    assert [t.id for t in await queue.expired(QUEUE, T0 + 10_000, 10)] == ["early", "late"]
    assert [t.id for t in await queue.expired(QUEUE, T0 + 10_000, 1)] == ["early"]


async def test_renewals_are_fenced_and_move_the_deadline(queue: TaskStore) -> None:
    first = await enqueue_claimed(queue)
    await queue.settle(first.returned(T0))
    task = await claim_one(queue)

    states = await queue.extend_leases([(first, None), (task, None)], LEASE_MS, T0 + 500)

    assert states == [LeaseState.LOST, LeaseState.HELD]
    assert await queue.expired(QUEUE, T0 + 1_500, 10) == []
    assert [t.id for t in await queue.expired(QUEUE, T0 + 1_501, 10)] == ["t1"]
    await queue.settle(task.complete(None, T0 + 600))
    assert await queue.extend_leases([(task, None)], LEASE_MS, T0 + 700) == [LeaseState.LOST]


async def test_one_renewal_covers_tasks_of_several_queues_in_order(queue: TaskStore) -> None:
    await queue.enqueue([make_task("a"), make_task("b", queue=OTHER), make_task("c")])
    running = [*await claim(queue, limit=2), *await claim(queue, name=OTHER)]

    states = await queue.extend_leases([(task, None) for task in running], LEASE_MS, T0 + 900)

    assert states == [LeaseState.HELD] * 3
    assert await queue.expired(QUEUE, T0 + 900 + LEASE_MS, 10) == []
    assert await queue.expired(OTHER, T0 + 900 + LEASE_MS, 10) == []


async def test_a_stall_is_settled_only_once_the_lease_ran_out(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)
    deadline = T0 + LEASE_MS

    too_early = task.stalled(deadline, 3, Random(0))
    with pytest.raises(LockLost):
        await queue.recover(too_early, expired_by=deadline)

    stalled = task.stalled(deadline + 1, 3, Random(0))
    await queue.recover(stalled, expired_by=deadline + 1)
    stored = await queue.get("t1")
    assert stored.status is TaskStatus.WAITING  # a first stall: no backoff
    assert stored.stalls == 1
    assert stored.attempts == 0
    assert await queue.expired(QUEUE, T0 + 10**6, 10) == []
    again = await queue.claim(QUEUE, "w2", 1, LEASE_MS, deadline + 1)
    assert [claimed.id for claimed in again.tasks] == ["t1"]


async def test_the_history_keeps_each_execution_s_fence(queue: TaskStore) -> None:
    first = await enqueue_claimed(queue)
    now = T0 + LEASE_MS + 1
    await queue.recover(first.stalled(now, 3, Random(0)), expired_by=now)
    second = await claim_one(queue, now)
    await queue.settle(second.fail(failure(), now + 10, Random(0)))
    third = await claim_one(queue, now + 10**6)

    await queue.settle(third.complete(None, now + 10**6 + 5))

    stored = await queue.get("t1")
    assert [(entry.outcome, entry.fence) for entry in stored.history] == [
        ("stalled", first.fence),
        ("retry", second.fence),
        ("completed", third.fence),
    ]
    assert 0 < first.fence < second.fence < third.fence


async def test_a_stalled_task_goes_ahead_of_the_tasks_of_its_priority(queue: TaskStore) -> None:
    first = await enqueue_claimed(queue, "t1")
    second = await enqueue_claimed(queue, "t2")
    await queue.enqueue([make_task("t3"), make_task("t4"), make_task("urgent", priority=-1)])
    now = T0 + LEASE_MS + 1
    for stalled in (second, first):  # gone ahead together, they keep the sets' id order
        await queue.recover(stalled.stalled(now, 3, Random(0)), expired_by=now)

    claimed = await claim(queue, 5, now)

    assert [task.id for task in claimed] == ["urgent", "t1", "t2", "t3", "t4"]


async def test_set_progress_is_fenced(queue: TaskStore) -> None:
    first = await enqueue_claimed(queue)
    await queue.settle(first.returned(T0))
    task = await claim_one(queue)

    await queue.set_progress(task, {"done": 3, "of": 10})
    with pytest.raises(LockLost):
        await queue.set_progress(first, {"done": 9})

    assert (await queue.get("t1")).progress == {"done": 3, "of": 10}
    await queue.settle(task.complete(None, T0 + 1))
    with pytest.raises(LockLost):
        await queue.set_progress(task, {"done": 10})


# --- idempotency and removal ----------------------------------------------------------------


async def test_a_repeated_enqueue_answers_the_stored_task(queue: TaskStore) -> None:
    await queue.enqueue([make_task("t1", payload={"a": 1, "b": [1, 2]})])
    claimed = await claim_one(queue)

    (again,) = await queue.enqueue(
        [make_task("t1", payload={"b": [1, 2], "a": 1}, priority=9, created_at=T0 + 5)]
    )

    assert again.outcome is EnqueueOutcome.EXISTING
    assert again.task == claimed
    assert await claim(queue, limit=5) == []


@pytest.mark.parametrize(
    "changes", [{"payload": {"n": 2}}, {"name": "other"}], ids=["payload", "name"]
)
async def test_the_same_id_with_another_request_is_a_conflict(
    queue: TaskStore, changes: dict[str, Any]
) -> None:
    await queue.enqueue([make_task("t1")])
    request = make_task("t1", priority=3, **changes)

    (result,) = await queue.enqueue([request])

    assert result.outcome is EnqueueOutcome.CONFLICT
    assert result.task == request  # the request as it would have been stored
    stored = await queue.get("t1")
    assert (stored.name, stored.payload, stored.priority) == ("echo", {"n": 1}, 0)
    assert [t.id for t in await claim(queue, limit=5)] == ["t1"]


async def test_a_conflict_in_a_bulk_stores_the_other_tasks(queue: TaskStore) -> None:
    await queue.enqueue([make_task("b"), make_task("d")])

    results = await queue.enqueue(
        [make_task("a"), make_task("b", payload={}), make_task("c"), make_task("d", name="x")]
    )

    assert [(r.task.id, r.outcome) for r in results] == [
        ("a", EnqueueOutcome.CREATED),
        ("b", EnqueueOutcome.CONFLICT),
        ("c", EnqueueOutcome.CREATED),
        ("d", EnqueueOutcome.CONFLICT),
    ]
    assert (await queue.get("b")).payload == {"n": 1}
    assert (await queue.get("d")).name == "echo"
    assert sorted(t.id for t in await claim(queue, limit=10)) == ["a", "b", "c", "d"]


async def test_a_bulk_over_two_queues_answers_in_request_order(queue: TaskStore) -> None:
    await queue.enqueue([make_task("x", queue=OTHER)])
    tasks = [
        make_task("x", queue=OTHER, payload={"n": 9}),
        make_task("w"),
        make_task("y", queue=OTHER),
        make_task("w"),
        make_task("x", queue=OTHER),
    ]

    results = await queue.enqueue(tasks)

    assert [(r.task.id, r.task.queue, r.outcome) for r in results] == [
        ("x", OTHER, EnqueueOutcome.CONFLICT),
        ("w", QUEUE, EnqueueOutcome.CREATED),
        ("y", OTHER, EnqueueOutcome.CREATED),
        ("w", QUEUE, EnqueueOutcome.EXISTING),
        ("x", OTHER, EnqueueOutcome.EXISTING),
    ]
    assert (await queue.get("x", OTHER)).payload == {"n": 1}


async def test_an_id_names_one_task_across_queues(queue: TaskStore) -> None:
    await queue.enqueue([make_task("x", queue=OTHER)])

    (same_content,) = await queue.enqueue([make_task("x")])
    both = await queue.enqueue([make_task("z"), make_task("z", queue=OTHER)])

    assert same_content.outcome is EnqueueOutcome.CONFLICT
    assert [r.outcome for r in both] == [EnqueueOutcome.CREATED, EnqueueOutcome.CONFLICT]
    assert (await queue.get("x")).queue == OTHER  # found by the id index, one lookup
    assert (await queue.get("z")).queue == QUEUE
    with pytest.raises(TaskNotFound):
        await queue.get("x", QUEUE)


async def test_a_removed_id_stays_reserved_for_its_own_queue_alone(queue: TaskStore) -> None:
    await queue.enqueue([make_task("x", queue=OTHER)])
    await queue.remove(await queue.get("x"))

    (elsewhere,) = await queue.enqueue([make_task("x")])
    (again,) = await queue.enqueue([make_task("x", queue=OTHER)])

    assert elsewhere.outcome is EnqueueOutcome.CONFLICT
    assert again.outcome is EnqueueOutcome.REMOVED
    with pytest.raises(TaskNotFound):
        await queue.get("x")


async def test_the_same_request_from_another_creator_is_a_conflict(queue: TaskStore) -> None:
    """Whether a guessed payload is right must not show: another creator's identical
    request conflicts like a different one, before and after the task is removed."""
    await queue.enqueue([make_task("x", created_by="alice")])
    theirs = make_task("x", created_by="mallory")
    wrong_guess = make_task("x", created_by="mallory", payload={"n": 2})

    assert [r.outcome for r in await queue.enqueue([theirs, wrong_guess])] == [
        EnqueueOutcome.CONFLICT,
        EnqueueOutcome.CONFLICT,
    ]
    (mine,) = await queue.enqueue([make_task("x", created_by="alice")])
    assert mine.outcome is EnqueueOutcome.EXISTING
    await queue.remove(await queue.get("x"))
    assert [r.outcome for r in await queue.enqueue([theirs, wrong_guess])] == [
        EnqueueOutcome.CONFLICT,
        EnqueueOutcome.CONFLICT,
    ]
    (mine,) = await queue.enqueue([make_task("x", created_by="alice")])
    assert mine.outcome is EnqueueOutcome.REMOVED


async def test_the_same_id_twice_in_one_bulk_is_stored_once(queue: TaskStore) -> None:
    results = await queue.enqueue([make_task("t1"), make_task("t1")])

    assert [r.outcome for r in results] == [EnqueueOutcome.CREATED, EnqueueOutcome.EXISTING]
    assert len(await claim(queue, limit=5)) == 1


async def test_an_active_task_cannot_be_removed(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)

    with pytest.raises(TaskActive):
        await queue.remove(task)

    assert (await queue.get("t1")).status is TaskStatus.ACTIVE


async def test_a_removed_id_stays_reserved(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)
    await queue.settle(task.complete(None, T0 + 1))

    await queue.remove(await queue.get("t1"))

    with pytest.raises(TaskNotFound):
        await queue.get("t1")
    (again,) = await queue.enqueue([make_task("t1")])
    assert again.outcome is EnqueueOutcome.REMOVED
    assert again.task.id == "t1"
    with pytest.raises(TaskNotFound):
        await queue.get("t1")
    (other,) = await queue.enqueue([make_task("t1", payload={"n": 2})])
    assert other.outcome is EnqueueOutcome.CONFLICT
    with pytest.raises(TaskNotFound):
        await queue.get("t1")
    with pytest.raises(TaskNotFound):
        await queue.remove(task)


async def test_a_waiting_or_delayed_task_can_be_removed(queue: TaskStore) -> None:
    await queue.enqueue([make_task("now"), make_task("later", run_at=T0 + 100)])

    for task_id in ("now", "later"):
        await queue.remove(await queue.get(task_id))

    assert await claim(queue, limit=5, now=T0 + 1_000) == []
    batch = await queue.claim(QUEUE, "w", 5, LEASE_MS, T0)
    assert batch.next_due_at is None


async def test_a_removed_id_is_free_again_after_the_window(make_queue: MakeQueue) -> None:
    queue = make_queue(300)
    await queue.enqueue([make_task("t1")])
    await queue.remove(await queue.get("t1"))

    async def outcome(n: int) -> EnqueueOutcome:
        (result,) = await queue.enqueue([make_task("t1", payload={"n": n})])
        return result.outcome

    # Until the window ends, another request for the id is a conflict; then it is stored.
    assert await outcome(2) is EnqueueOutcome.CONFLICT
    assert await outcome(3) is EnqueueOutcome.CONFLICT

    async def created() -> bool:
        return await outcome(2) is EnqueueOutcome.CREATED

    await eventually(created, timeout_s=3)
    assert (await queue.get("t1")).payload == {"n": 2}


# --- bulk and waking ------------------------------------------------------------------------


async def test_a_bulk_enqueue_stores_every_task(queue: TaskStore) -> None:
    tasks = [make_task(f"bulk-{i:04}", priority=i % 7) for i in range(500)]

    results = await queue.enqueue(tasks)

    assert {r.outcome for r in results} == {EnqueueOutcome.CREATED}
    assert [r.task.id for r in results] == [t.id for t in tasks]
    claimed = await claim(queue, limit=1_000)
    expected = sorted(tasks, key=lambda t: (t.priority, int(t.id.split("-")[1])))
    assert [t.id for t in claimed] == [t.id for t in expected]


async def test_an_empty_enqueue_stores_nothing(queue: TaskStore) -> None:
    assert await queue.enqueue([]) == []


async def test_wait_for_work_wakes_when_a_task_is_enqueued(queue: TaskStore) -> None:
    await queue.wait_for_work([QUEUE], 20)  # nothing there: returns after its timeout
    waiter = asyncio.ensure_future(queue.wait_for_work([OTHER, QUEUE], 10_000))
    await asyncio.sleep(0.02)
    assert not waiter.done()

    await queue.enqueue([make_task("t1")])

    await asyncio.wait_for(waiter, timeout=2)


# --- an outcome and the next claim in one step ----------------------------------------------


async def test_a_settle_claims_the_next_tasks_in_priority_order(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)
    await queue.enqueue([make_task("low", priority=5), make_task("high", priority=1)])

    then = ClaimRequest("w2", 2, LEASE_MS, T0 + 10)
    batch = await queue.settle(task.complete(None, T0 + 10), then=then)

    assert [t.id for t in batch.tasks] == ["high", "low"]
    assert all(t.status is TaskStatus.ACTIVE and t.worker_id == "w2" for t in batch.tasks)
    assert (await queue.get("t1")).status is TaskStatus.COMPLETED


async def test_a_settle_promotes_due_tasks_and_tells_the_next_due_time(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)
    await queue.enqueue([make_task("due", run_at=T0 + 5), make_task("later", run_at=T0 + 99)])

    batch = await queue.settle(
        task.complete(None, T0 + 10), then=ClaimRequest("w", 5, LEASE_MS, T0 + 10)
    )
    then = ClaimRequest("w", 5, LEASE_MS, T0 + 11)
    empty = await queue.settle(batch.tasks[0].complete(None, T0 + 11), then=then)

    assert [t.id for t in batch.tasks] == ["due"]
    assert (empty.tasks, empty.next_due_at) == ([], T0 + 99)


async def test_a_settle_claims_nothing_from_a_paused_queue_or_when_refused(
    queue: TaskStore,
) -> None:
    await queue.enqueue([make_task("a"), make_task("b"), make_task("c")])
    a, b = await claim(queue, limit=2)
    await queue.set_paused(QUEUE, True)

    paused = await queue.settle(a.complete(None, T0 + 1), then=ClaimRequest("w", 1, LEASE_MS, T0))
    await queue.set_paused(QUEUE, False)
    stale = replace(b, fence=b.fence + 100)
    with pytest.raises(LockLost):
        await queue.settle(stale.complete(None, T0 + 2), then=ClaimRequest("w", 1, LEASE_MS, T0))

    assert paused.tasks == []
    assert [t.id for t in await claim(queue)] == ["c"]  # still there: nothing took it


async def test_a_retried_settle_hands_out_the_tasks_its_first_answer_claimed(
    queue: TaskStore,
) -> None:
    """The first answer was lost (Redis froze after running the script): the retry gets
    the same next tasks, and claims no others."""
    task = await enqueue_claimed(queue)
    await queue.enqueue([make_task("n1"), make_task("n2"), make_task("n3")])
    outcome = task.complete(None, T0 + 1)

    first = await queue.settle(outcome, then=ClaimRequest("w", 2, LEASE_MS, T0 + 1))
    retry = await queue.settle(outcome, then=ClaimRequest("w", 2, LEASE_MS, T0 + 2))

    assert [t.id for t in first.tasks] == ["n1", "n2"]
    assert retry.tasks == first.tasks
    assert (await queue.get("n3")).status is TaskStatus.WAITING
