"""EnqueueTask: type defaults, request overrides, validation and due times, on the fake queue."""

from __future__ import annotations

import itertools

import pytest
from pydantic import BaseModel, Field

from application.enqueue_task import EnqueueRequest, EnqueueTask
from application.handlers import TaskContext
from application.registry import TaskRegistry, TaskType
from domain.errors import DuplicateTask, InvalidTask, TaskNotFound, UnknownTaskType
from domain.task import Backoff, TaskStatus
from domain.values import EnqueueOutcome
from tests.fakes import InMemoryTaskQueue, ManualClock

NOW = 1_700_000_000_000
DEFAULT_TIMEOUT_MS = 60_000
GREET_BACKOFF = Backoff(delay_ms=50, factor=3.0, max_delay_ms=1_000, jitter=False)


class Greeting(BaseModel):
    x: int
    name: str = "world"
    tags: list[str] = Field(default_factory=list)


async def greet(payload: Greeting, ctx: TaskContext) -> str:
    return f"hello {payload.name}"


def plain(payload: Greeting, ctx: TaskContext) -> None:
    return None


QUEUES = ("default", "greetings", "elsewhere")


@pytest.fixture
def queue() -> InMemoryTaskQueue:
    return InMemoryTaskQueue(60_000, ManualClock(NOW), queues=QUEUES)


@pytest.fixture
def enqueue(queue: InMemoryTaskQueue) -> EnqueueTask:
    registry = TaskRegistry()
    registry.add(
        TaskType(
            "greet",
            Greeting,
            greet,
            queue="greetings",
            attempts=5,
            backoff=GREET_BACKOFF,
            timeout_ms=1_234,
            priority=4,
        ),
        TaskType("plain", Greeting, plain),
    )
    ids = (f"gen-{n}" for n in itertools.count(1))
    return EnqueueTask(
        queue, registry, ManualClock(NOW), lambda: next(ids), DEFAULT_TIMEOUT_MS, queues=QUEUES
    )


async def test_a_request_gets_its_task_types_defaults(
    enqueue: EnqueueTask, queue: InMemoryTaskQueue
) -> None:
    enqueued = await enqueue.execute(EnqueueRequest("greet", {"x": 1}))

    task = enqueued.task
    assert enqueued.outcome is EnqueueOutcome.CREATED
    assert task.id == "gen-1"
    assert task.name == "greet"
    assert task.payload == {"x": 1, "name": "world", "tags": []}  # validated, defaults filled
    assert (task.queue, task.priority, task.max_attempts) == ("greetings", 4, 5)
    assert task.backoff == GREET_BACKOFF
    assert task.timeout_ms == 1_234
    assert (task.status, task.created_at, task.run_at) == (TaskStatus.WAITING, NOW, NOW)
    assert task.attempts == 0
    assert await queue.get("gen-1", "greetings") == task


async def test_a_type_without_a_timeout_gets_the_configured_default(
    enqueue: EnqueueTask,
) -> None:
    task = (await enqueue.execute(EnqueueRequest("plain", {"x": 1}))).task

    assert task.timeout_ms == DEFAULT_TIMEOUT_MS
    assert (task.queue, task.priority, task.max_attempts) == ("default", 0, 3)
    assert task.backoff == Backoff()


async def test_a_request_overrides_the_defaults(
    enqueue: EnqueueTask, queue: InMemoryTaskQueue
) -> None:
    backoff = Backoff(delay_ms=10, factor=1.0, jitter=False)
    request = EnqueueRequest(
        "greet",
        {"x": 2, "name": "ada"},
        task_id="mine",
        queue="elsewhere",
        priority=0,
        attempts=1,
        backoff=backoff,
        timeout_ms=99,
        created_by="producer-1",
    )

    task = (await enqueue.execute(request)).task

    assert task.id == "mine"
    assert task.payload == {"x": 2, "name": "ada", "tags": []}
    assert (task.queue, task.priority, task.max_attempts) == ("elsewhere", 0, 1)
    assert (task.backoff, task.timeout_ms, task.created_by) == (backoff, 99, "producer-1")
    assert await queue.get("mine") == task


async def test_an_unknown_task_name_is_rejected(
    enqueue: EnqueueTask, queue: InMemoryTaskQueue
) -> None:
    with pytest.raises(UnknownTaskType) as raised:
        await enqueue.execute(EnqueueRequest("nope", {"x": 1}, task_id="t1"))

    assert raised.value.field == "taskName"
    with pytest.raises(TaskNotFound):
        await queue.get("t1")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"x": "not a number"}, "payload.x"),
        ({}, "payload.x"),
        ({"x": 1, "tags": ["a", 7]}, "payload.tags.1"),
    ],
)
async def test_an_invalid_payload_is_rejected_naming_the_field(
    enqueue: EnqueueTask, queue: InMemoryTaskQueue, payload: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidTask) as raised:
        await enqueue.execute(EnqueueRequest("greet", payload, task_id="t1"))

    assert raised.value.field == field
    assert field in raised.value.fields
    with pytest.raises(TaskNotFound):
        await queue.get("t1")


async def test_an_invalid_id_is_rejected(enqueue: EnqueueTask) -> None:
    with pytest.raises(InvalidTask) as raised:
        await enqueue.execute(EnqueueRequest("greet", {"x": 1}, task_id="no spaces"))

    assert raised.value.field == "customJobId"


async def test_a_bulk_request_is_accepted_or_rejected_whole(
    enqueue: EnqueueTask, queue: InMemoryTaskQueue
) -> None:
    requests = [
        EnqueueRequest("greet", {"x": 1}, task_id="ok-1"),
        EnqueueRequest("greet", {"x": "bad"}, task_id="bad"),
    ]

    with pytest.raises(InvalidTask):
        await enqueue.execute_many(requests)

    with pytest.raises(TaskNotFound):
        await queue.get("ok-1")


async def test_a_bulk_request_stores_every_task(enqueue: EnqueueTask) -> None:
    requests = [EnqueueRequest("plain", {"x": n}) for n in range(50)]

    results = await enqueue.execute_many(requests)

    assert [r.task.id for r in results] == [f"gen-{n}" for n in range(1, 51)]
    assert {r.outcome for r in results} == {EnqueueOutcome.CREATED}


async def test_run_at_in_the_past_means_now(enqueue: EnqueueTask) -> None:
    task = (await enqueue.execute(EnqueueRequest("greet", {"x": 1}, run_at=NOW - 60_000))).task

    assert task.run_at == NOW
    assert task.status is TaskStatus.WAITING


async def test_run_at_in_the_future_delays_the_task(
    enqueue: EnqueueTask, queue: InMemoryTaskQueue
) -> None:
    task = (await enqueue.execute(EnqueueRequest("plain", {"x": 1}, run_at=NOW + 1))).task

    assert (task.status, task.run_at) == (TaskStatus.DELAYED, NOW + 1)
    assert (await queue.claim("default", "w", 1, 1_000, NOW)).next_due_at == NOW + 1


async def test_delay_ms_delays_the_task(enqueue: EnqueueTask, queue: InMemoryTaskQueue) -> None:
    task = (await enqueue.execute(EnqueueRequest("plain", {"x": 1}, delay_ms=2_500))).task

    assert (task.status, task.run_at) == (TaskStatus.DELAYED, NOW + 2_500)
    assert (await queue.claim("default", "w", 1, 1_000, NOW + 2_499)).tasks == []
    claimed = (await queue.claim("default", "w", 1, 1_000, NOW + 2_500)).tasks
    assert [t.id for t in claimed] == [task.id]


@pytest.mark.parametrize("delay_ms", [0, -5])
async def test_no_positive_delay_means_waiting(enqueue: EnqueueTask, delay_ms: int) -> None:
    task = (await enqueue.execute(EnqueueRequest("plain", {"x": 1}, delay_ms=delay_ms))).task

    assert (task.status, task.run_at) == (TaskStatus.WAITING, NOW)


async def test_a_repeated_request_answers_the_existing_task(enqueue: EnqueueTask) -> None:
    first = await enqueue.execute(EnqueueRequest("greet", {"x": 1}, task_id="t1"))

    # The stored payload is normalized, so an explicit default is the same request.
    again = await enqueue.execute(EnqueueRequest("greet", {"x": 1, "name": "world"}, task_id="t1"))

    assert again.outcome is EnqueueOutcome.EXISTING
    assert again.task == first.task
    with pytest.raises(DuplicateTask):
        await enqueue.execute(EnqueueRequest("greet", {"x": 2}, task_id="t1"))


async def test_a_conflicting_single_request_raises_and_stores_nothing(
    enqueue: EnqueueTask, queue: InMemoryTaskQueue
) -> None:
    first = await enqueue.execute(EnqueueRequest("greet", {"x": 1}, task_id="t1"))

    with pytest.raises(DuplicateTask) as raised:
        await enqueue.execute(EnqueueRequest("greet", {"x": 2}, task_id="t1", priority=0))

    assert raised.value.task_id == "t1"
    assert await queue.get("t1") == first.task


async def test_a_bulk_request_answers_an_outcome_per_task(
    enqueue: EnqueueTask, queue: InMemoryTaskQueue
) -> None:
    await enqueue.execute(EnqueueRequest("greet", {"x": 1}, task_id="taken"))
    requests = [
        EnqueueRequest("greet", {"x": 1}, task_id="new-1"),
        EnqueueRequest("greet", {"x": 2}, task_id="taken"),  # another payload: a conflict
        EnqueueRequest("greet", {"x": 1}, task_id="taken"),  # the same request again
        EnqueueRequest("plain", {"x": 1}),
    ]

    results = await enqueue.execute_many(requests)

    assert [(r.task.id, r.outcome) for r in results] == [
        ("new-1", EnqueueOutcome.CREATED),
        ("taken", EnqueueOutcome.CONFLICT),
        ("taken", EnqueueOutcome.EXISTING),
        ("gen-1", EnqueueOutcome.CREATED),
    ]
    assert results[1].task.payload == {"x": 2, "name": "world", "tags": []}  # the request
    assert (await queue.get("taken")).payload["x"] == 1
    assert (await queue.get("new-1")).status is TaskStatus.WAITING


async def test_a_bulk_request_with_a_batch_id_can_be_gathered(
    enqueue: EnqueueTask, queue: InMemoryTaskQueue
) -> None:
    requests = [EnqueueRequest("plain", {"x": n}) for n in range(3)]
    requests.append(EnqueueRequest("greet", {"x": 9}, delay_ms=1_000))

    results = await enqueue.execute_many(requests, batch_id="batch-1")

    gathered = await queue.batch("batch-1")
    assert [t.id for t in gathered] == [r.task.id for r in results]
    assert [t.queue for t in gathered] == ["default"] * 3 + ["greetings"]
    with pytest.raises(TaskNotFound):
        await queue.batch("batch-2")


async def test_a_removed_id_answers_removed_without_raising(
    enqueue: EnqueueTask, queue: InMemoryTaskQueue
) -> None:
    first = await enqueue.execute(EnqueueRequest("greet", {"x": 1}, task_id="t1"))
    await queue.remove(first.task)

    again = await enqueue.execute(EnqueueRequest("greet", {"x": 1}, task_id="t1"))

    assert again.outcome is EnqueueOutcome.REMOVED
    with pytest.raises(DuplicateTask):
        await enqueue.execute(EnqueueRequest("greet", {"x": 3}, task_id="t1"))
    with pytest.raises(TaskNotFound):
        await queue.get("t1")


async def test_a_queue_that_is_not_configured_is_refused_and_nothing_is_stored(
    enqueue: EnqueueTask, queue: InMemoryTaskQueue
) -> None:
    good = EnqueueRequest("plain", {"x": 1}, task_id="fine")
    bad = EnqueueRequest("plain", {"x": 2}, task_id="astray", queue="made-up")
    with pytest.raises(InvalidTask) as refused:
        await enqueue.execute_many([good, bad])
    assert refused.value.field == "queue"
    for task_id in ("fine", "astray"):
        with pytest.raises(TaskNotFound):
            await queue.get(task_id)


async def test_a_task_type_s_queue_must_be_configured_too(queue: InMemoryTaskQueue) -> None:
    registry = TaskRegistry()
    registry.add(TaskType("greet", Greeting, greet, queue="greetings"))
    only_default = EnqueueTask(
        queue, registry, ManualClock(NOW), lambda: "x", DEFAULT_TIMEOUT_MS, queues=["default"]
    )
    with pytest.raises(InvalidTask) as refused:
        await only_default.execute(EnqueueRequest("greet", {}))
    assert refused.value.fields == {"queue": "'greetings' is not a configured queue"}
