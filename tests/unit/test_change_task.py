"""ChangeTask and BulkChange: operators' cancel, kill and retry, on the fake queue."""

from __future__ import annotations

import asyncio
from random import Random
from typing import Any

import pytest

from application.bulk_change import BulkChange, BulkOutcome
from application.change_task import Action, ChangeTask
from domain.audit import AuditEntry
from domain.errors import InvalidTransition, TaskChanged, TaskNotFound
from domain.task import Failure, StopKind, Task, TaskError, TaskStatus
from domain.values import LeaseState, StopRequest
from tests.fakes import InMemoryTaskQueue, ManualClock

NOW = 1_700_000_000_000
QUEUE = "default"


class RecordingAudit:
    """IAuditLog that keeps what it is given."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    async def read(
        self, limit: int, before: str | None = None, target: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        entries = [e for e in self.entries if target is None or e.target == target]
        return entries[::-1][:limit], None


class Harness:
    def __init__(self, queue: InMemoryTaskQueue | None = None) -> None:
        self.clock = ManualClock(NOW + 1_000)
        self.queue = queue or InMemoryTaskQueue(60_000, self.clock)
        self.audit = RecordingAudit()
        self.change = ChangeTask(self.queue, self.queue, self.clock, self.audit)

    async def add(self, task_id: str, **changes: Any) -> Task:
        fields: dict[str, Any] = {"name": "echo", "payload": {}, "created_at": NOW, "run_at": NOW}
        fields.update(changes)
        task = Task(id=task_id, **fields)
        await self.queue.enqueue([task])
        return task

    async def claimed(self, task_id: str) -> Task:
        await self.add(task_id)
        (task,) = (await self.queue.claim(QUEUE, "w1", 1, 30_000, NOW)).tasks
        assert task.id == task_id
        return task

    async def finished(self, task_id: str, status: TaskStatus) -> Task:
        task = await self.claimed(task_id)
        if status is TaskStatus.FAILED:
            failure = Failure(TaskError("RuntimeError", "boom"), retryable=False)
            outcome = task.fail(failure, NOW + 10, Random(0))
        elif status is TaskStatus.CANCELLED:
            outcome = task.cancelled(NOW + 10)
        else:
            outcome = task.complete("ok", NOW + 10)
        await self.queue.settle(outcome)
        return outcome


@pytest.fixture
def harness() -> Harness:
    return Harness()


# --- ChangeTask ----------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0, 5_000], ids=["waiting", "delayed"])
async def test_cancel_of_a_task_not_running_is_immediate(harness: Harness, delay: int) -> None:
    status = TaskStatus.DELAYED if delay else TaskStatus.WAITING
    await harness.add("t1", run_at=NOW + delay, status=status)

    changed = await harness.change.execute(Action.CANCEL, "t1", actor="alice")

    assert changed.status is TaskStatus.CANCELLED
    assert changed.finished_at == NOW + 1_000
    assert await harness.queue.get("t1") == changed
    assert (await harness.queue.claim(QUEUE, "w", 5, 1_000, NOW + 10**6)).tasks == []
    assert harness.audit.entries == [
        AuditEntry(NOW + 1_000, "alice", "cancel", "t1", {"queue": QUEUE, "from": status.value})
    ]


async def test_cancel_of_a_running_task_asks_its_worker(harness: Harness) -> None:
    running = await harness.claimed("t1")

    answer = await harness.change.execute(Action.CANCEL, "t1")

    assert answer == running  # still active: the worker records the outcome
    renewal = await harness.queue.extend_leases([(running, None)], 30_000, NOW + 1)
    assert renewal == [LeaseState.CANCEL_REQUESTED]
    assert harness.audit.entries[0].detail == {"queue": QUEUE, "from": "active"}


async def test_kill_of_a_running_task_fails_it_and_stops_its_worker(harness: Harness) -> None:
    running = await harness.claimed("t1")
    requests = harness.queue.stop_requests([QUEUE])
    listening = asyncio.ensure_future(anext(requests))
    await asyncio.sleep(0)  # the fake subscribes as soon as the iterator starts

    killed = await harness.change.execute(Action.KILL, "t1", actor="bob")

    assert await asyncio.wait_for(listening, 5) == StopRequest("t1", QUEUE, StopKind.KILL)
    await requests.aclose()  # type: ignore[attr-defined]
    assert killed.status is TaskStatus.FAILED
    assert await harness.queue.get("t1") == killed
    assert [entry.outcome for entry in killed.history] == ["killed"]
    assert killed.fence == running.fence
    assert [(e.actor, e.action) for e in harness.audit.entries] == [("bob", "kill")]


async def test_kill_of_a_waiting_task_sends_no_stop_request(harness: Harness) -> None:
    probe = await harness.claimed("probe")
    await harness.add("t1")
    requests = harness.queue.stop_requests([QUEUE])
    listening = asyncio.ensure_future(anext(requests))
    await asyncio.sleep(0)

    killed = await harness.change.execute(Action.KILL, "t1")
    await harness.queue.request_cancel(probe)  # the next request, then

    assert killed.status is TaskStatus.FAILED
    assert await asyncio.wait_for(listening, 5) == StopRequest("probe", QUEUE, StopKind.CANCEL)
    await requests.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [TaskStatus.FAILED, TaskStatus.CANCELLED])
async def test_retry_puts_a_finished_task_back_in_the_queue(
    harness: Harness, status: TaskStatus
) -> None:
    await harness.finished("t1", status)

    retried = await harness.change.execute(Action.RETRY, "t1", queue=QUEUE)

    assert (retried.status, retried.attempts, retried.run_at) == (
        TaskStatus.WAITING,
        0,
        NOW + 1_000,
    )
    (again,) = (await harness.queue.claim(QUEUE, "w2", 5, 1_000, NOW + 1_000)).tasks
    assert again.id == "t1"


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (Action.RETRY, TaskStatus.COMPLETED),
        (Action.RETRY, TaskStatus.WAITING),
        (Action.CANCEL, TaskStatus.COMPLETED),
        (Action.KILL, TaskStatus.FAILED),
    ],
)
async def test_an_action_the_status_forbids_is_refused_and_not_audited(
    harness: Harness, action: Action, status: TaskStatus
) -> None:
    if status is TaskStatus.WAITING:
        await harness.add("t1")
    else:
        await harness.finished("t1", status)
    before = await harness.queue.get("t1")

    with pytest.raises(InvalidTransition):
        await harness.change.execute(action, "t1")

    assert await harness.queue.get("t1") == before
    assert harness.audit.entries == []


async def test_an_unknown_task_is_not_found(harness: Harness) -> None:
    with pytest.raises(TaskNotFound):
        await harness.change.execute(Action.CANCEL, "nope")


class MovingQueue(InMemoryTaskQueue):
    """Between the operator's read and write, a worker claims the task `moves` times."""

    def __init__(self, clock: ManualClock, moves: int) -> None:
        super().__init__(60_000, clock)
        self.moves = moves
        self.changes = 0

    async def change(self, task: Task, previous: Task, *, stop: StopKind | None = None) -> None:
        self.changes += 1
        if self.moves > 0:
            self.moves -= 1
            current = await self.get(task.id)
            if current.status is TaskStatus.ACTIVE:
                await self.settle(current.returned(NOW))
            else:
                await self.claim(QUEUE, "w1", 1, 30_000, NOW)
        await super().change(task, previous, stop=stop)


async def test_a_task_that_moved_meanwhile_is_read_again() -> None:
    harness = Harness(MovingQueue(ManualClock(NOW + 1_000), moves=2))
    await harness.add("t1")

    killed = await harness.change.execute(Action.KILL, "t1")

    assert killed.status is TaskStatus.FAILED
    assert (await harness.queue.get("t1")).status is TaskStatus.FAILED
    assert len(harness.audit.entries) == 1


async def test_a_task_that_keeps_moving_is_given_up() -> None:
    queue = MovingQueue(ManualClock(NOW + 1_000), moves=100)
    harness = Harness(queue)
    await harness.add("t1")

    with pytest.raises(TaskChanged):
        await harness.change.execute(Action.KILL, "t1")

    assert queue.changes == 5
    assert harness.audit.entries == []


# --- BulkChange ----------------------------------------------------------------------------


async def test_a_bulk_change_answers_per_id_and_goes_on_after_a_refusal(
    harness: Harness,
) -> None:
    await harness.finished("done", TaskStatus.COMPLETED)
    await harness.claimed("running")
    await harness.add("waiting")
    bulk = BulkChange(harness.change)

    outcomes = await bulk.execute(
        Action.CANCEL, ["waiting", "nope", "done", "running", "waiting"], actor="carol"
    )

    assert [(o.task_id, o.outcome, o.status) for o in outcomes] == [
        ("waiting", "ok", "cancelled"),
        ("nope", "not_found", None),
        ("done", "conflict", None),
        ("running", "ok", "active"),  # asked to stop; the worker records it
    ]
    assert outcomes[2].detail is not None
    assert "completed" in outcomes[2].detail
    assert [e.target for e in harness.audit.entries] == ["waiting", "running"]


async def test_a_bulk_retry_of_failed_tasks(harness: Harness) -> None:
    await harness.finished("a", TaskStatus.FAILED)
    await harness.finished("b", TaskStatus.CANCELLED)
    await harness.add("c")

    outcomes = await BulkChange(harness.change).execute(Action.RETRY, ["a", "b", "c"])

    assert outcomes[:2] == [BulkOutcome("a", "ok", "waiting"), BulkOutcome("b", "ok", "waiting")]
    assert outcomes[2].outcome == "conflict"
    claimed = (await harness.queue.claim(QUEUE, "w", 5, 1_000, NOW + 1_000)).tasks
    assert [t.id for t in claimed] == ["c", "a", "b"]
