"""CloneTask: the API's duplicate, a new task with an existing one's work, on the fake."""

from __future__ import annotations

from random import Random

import pytest

from application.clone_task import CloneTask
from domain.errors import TaskNotFound
from domain.task import Backoff, Failure, Task, TaskError, TaskStatus
from domain.values import EnqueueOutcome
from tests.fakes import InMemoryTaskQueue, ManualClock

NOW = 1_700_000_000_000
LATER = NOW + 60_000


@pytest.fixture
def queue() -> InMemoryTaskQueue:
    return InMemoryTaskQueue(60_000, ManualClock(LATER))


def cloner(queue: InMemoryTaskQueue, *ids: str) -> CloneTask:
    fresh = iter(ids)
    return CloneTask(queue, queue, ManualClock(LATER), lambda: next(fresh))


async def failed_task(queue: InMemoryTaskQueue) -> Task:
    original = Task(
        id="orig",
        name="email",
        payload={"to": "a@example.com"},
        created_at=NOW,
        run_at=NOW,
        queue="mail",
        priority=-2,
        max_attempts=1,
        backoff=Backoff(delay_ms=7, jitter=False),
        timeout_ms=1_234,
        created_by="alice",
    )
    await queue.enqueue([original])
    (running,) = (await queue.claim("mail", "w1", 1, 1_000, NOW)).tasks
    failure = Failure(TaskError("RuntimeError", "boom"), retryable=False)
    failed = running.fail(failure, NOW + 5, Random(0))
    await queue.settle(failed)
    return await queue.get("orig")


async def test_a_clone_is_a_new_waiting_task_with_the_same_work(
    queue: InMemoryTaskQueue,
) -> None:
    original = await failed_task(queue)

    enqueued = await cloner(queue, "copy-1").execute("orig", created_by="bob")

    assert enqueued.outcome is EnqueueOutcome.CREATED
    copy = await queue.get("copy-1", "mail")
    assert copy == enqueued.task
    assert (copy.name, copy.payload, copy.priority, copy.created_by) == (
        "email",
        {"to": "a@example.com"},
        -2,
        "bob",  # whoever asked for the copy
    )
    assert (copy.max_attempts, copy.backoff, copy.timeout_ms) == (1, original.backoff, 1_234)
    assert (copy.status, copy.created_at, copy.attempts, copy.history) == (
        TaskStatus.WAITING,
        LATER,
        0,
        (),
    )
    assert await queue.get("orig") == original  # untouched
    (claimed,) = (await queue.claim("mail", "w2", 5, 1_000, LATER)).tasks
    assert claimed.id == "copy-1"


async def test_a_clone_can_be_due_later(queue: InMemoryTaskQueue) -> None:
    await failed_task(queue)

    enqueued = await cloner(queue, "copy-1").execute("orig", queue="mail", run_at=LATER + 500)

    assert (enqueued.task.status, enqueued.task.run_at) == (TaskStatus.DELAYED, LATER + 500)
    assert (await queue.claim("mail", "w", 1, 1_000, LATER)).next_due_at == LATER + 500


async def test_each_clone_gets_its_own_id(queue: InMemoryTaskQueue) -> None:
    await failed_task(queue)
    clone = cloner(queue, "copy-1", "copy-2")

    first, second = await clone.execute("orig"), await clone.execute("orig")

    assert (first.task.id, second.task.id) == ("copy-1", "copy-2")
    assert {(await queue.get(i)).status for i in ("copy-1", "copy-2")} == {TaskStatus.WAITING}


async def test_a_clone_of_an_unknown_task_is_not_found(queue: InMemoryTaskQueue) -> None:
    with pytest.raises(TaskNotFound):
        await cloner(queue, "copy-1").execute("nope")
    await failed_task(queue)
    with pytest.raises(TaskNotFound):
        await cloner(queue, "copy-1").execute("orig", queue="default")
