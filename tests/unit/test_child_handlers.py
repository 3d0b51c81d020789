"""Task types with executor="process": their checks, what a child does with a job, and how
ProcessTask settles what the pool answers (a fake pool here; the real one in
tests/integration/test_child_pool.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

import pytest
from pydantic import BaseModel

from application.handlers import NonRetryableError, RetryAfter, TaskContext
from application.registry import TaskRegistry, TaskType
from application.running.children import ChildDied, ChildJob, child_registry, run_job
from application.running.execution import Execution
from application.running.failures import RaisedInChild
from application.running.process_task import ProcessPolicy, ProcessTask
from domain.task import Task, TaskStatus
from tests.fakes import InMemoryLockService, InMemoryTaskQueue, ManualClock, RecordingLog

NOW = 1_700_000_000_000
POLICY = ProcessPolicy(lock_ttl_ms=300, shutdown_grace_ms=1_000)
MODULE = __name__


class Numbers(BaseModel):
    x: int = 0


@dataclass
class Point:
    x: int


def square(payload: Numbers, ctx: TaskContext) -> dict[str, Any]:
    ctx.report_progress({"pct": 50})
    return {"square": payload.x**2, "ctx": [ctx.task_id, ctx.queue, ctx.attempt, ctx.fence]}


def point(payload: Numbers, ctx: TaskContext) -> Point:
    return Point(payload.x)


def opaque(payload: Numbers, ctx: TaskContext) -> object:
    return object()


def fatal(payload: Numbers, ctx: TaskContext) -> None:
    raise NonRetryableError("bad input")


def later(payload: Numbers, ctx: TaskContext) -> None:
    raise RetryAfter(7_000, "rate limited")


def boom(payload: Numbers, ctx: TaskContext) -> None:
    raise RuntimeError("boom")


async def echo(payload: Numbers, ctx: TaskContext) -> int:
    return payload.x


TASKS = [
    *(TaskType(h.__name__, Numbers, h, executor="process")
      for h in (square, point, opaque, fatal, later, boom)),
    TaskType("echo", Numbers, echo),
]  # fmt: skip


def job(name: str, payload: Any = None) -> ChildJob:
    return ChildJob(name, {"x": 3} if payload is None else payload, "t1", "default", 2, 9)


# --- the task type's checks -----------------------------------------------------------------


def test_an_unknown_executor_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown executor 'threads'"):
        TaskType("t", Numbers, square, executor="threads")  # type: ignore[arg-type]


def test_an_async_handler_cannot_run_in_a_child() -> None:
    with pytest.raises(ValueError, match="runs sync handlers only; echo is async"):
        TaskType("t", Numbers, echo, executor="process")


def closure() -> Callable[[Numbers, TaskContext], None]:
    def inner(payload: Numbers, ctx: TaskContext) -> None:
        pass

    return inner


@pytest.mark.parametrize(
    "handler", [lambda payload, ctx: None, closure(), RecordingLog().info, Numbers]
)
def test_a_child_needs_a_module_level_function(handler: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="needs a module-level function"):
        TaskType("t", Numbers, handler, executor="process")


def test_the_registry_knows_which_modules_a_child_imports() -> None:
    registry = TaskRegistry()
    assert registry.child_modules == []
    registry.add(TaskType("inline", Numbers, echo))
    assert registry.child_modules == []
    registry.add(TaskType("direct", Numbers, square, executor="process"))
    assert registry.child_modules == [MODULE]
    registry.load(["tests.e2e.child_tasks"])
    assert registry.child_modules == ["tests.e2e.child_tasks", MODULE]


def test_a_child_finds_the_process_task_types_of_its_modules_by_name() -> None:
    registry = child_registry([MODULE], {"base": "/data"})
    assert registry.names == ["boom", "fatal", "later", "opaque", "point", "square"]
    assert registry.context == {"base": "/data"}


# --- what a child does with a job -----------------------------------------------------------


@pytest.fixture
def registry() -> TaskRegistry:
    return child_registry([MODULE], {})


def test_a_job_answers_with_the_result_as_json_and_reports_progress(
    registry: TaskRegistry,
) -> None:
    reported: list[Any] = []
    assert run_job(registry, job("square"), reported.append, RecordingLog()) == (
        "done",
        {"square": 9, "ctx": ["t1", "default", 2, 9]},
    )
    assert reported == [{"pct": 50}]
    assert run_job(registry, job("point"), reported.append, RecordingLog()) == ("done", {"x": 3})


@pytest.mark.parametrize(
    ("name", "error", "retryable", "retry_after_ms"),
    [
        ("fatal", "NonRetryableError", False, None),
        ("later", "RetryAfter", True, 7_000),
        ("boom", "RuntimeError", True, None),
        ("opaque", "NonRetryableError", False, None),
        ("nobody", "UnknownTaskType", False, None),
    ],
)
def test_a_job_answers_with_the_failure_the_worker_would_have_made(
    registry: TaskRegistry, name: str, error: str, retryable: bool, retry_after_ms: int | None
) -> None:
    kind, failure = run_job(registry, job(name), [].append, RecordingLog())
    assert kind == "failed"
    assert (failure.error.type, failure.retryable) == (error, retryable)
    assert failure.retry_after_ms == retry_after_ms


def test_an_invalid_payload_fails_the_job_for_good(registry: TaskRegistry) -> None:
    kind, failure = run_job(registry, job("square", {"x": "three"}), [].append, RecordingLog())
    assert kind == "failed"
    assert (failure.error.type, failure.retryable) == ("InvalidTask", False)


# --- ProcessTask with a pool ----------------------------------------------------------------


class FakeChildPool:
    """Runs the job in this process, as a child would; `hang` makes it wait until it is
    cancelled (the real pool ends its child then), `die` makes the child vanish."""

    def __init__(self) -> None:
        self.registry = child_registry([MODULE], {})
        self.hang = False
        self.die = False
        self.ended = 0

    async def run(
        self, job: ChildJob, on_progress: Callable[[Any], None], on_write: Any = None
    ) -> Any:
        """The job in this process (no fenced writes: tests/e2e runs those in children)."""
        if self.die:
            raise ChildDied("the handler's child process (pid 1) killed by SIGKILL")
        if self.hang:
            try:
                await asyncio.Event().wait()
            finally:
                self.ended += 1
        kind, value = run_job(self.registry, job, on_progress, RecordingLog())
        if kind == "failed":
            raise RaisedInChild(value)
        return value


@dataclass
class Harness:
    queue: InMemoryTaskQueue
    locks: InMemoryLockService
    pool: FakeChildPool
    process: ProcessTask

    async def run(self, name: str, **fields: Any) -> Task:
        task = Task(id="t1", name=name, created_at=NOW, run_at=NOW, payload={"x": 3}, **fields)
        await self.queue.enqueue([task])
        batch = await self.queue.claim("default", "w1", 1, POLICY.lock_ttl_ms, NOW)
        await asyncio.wait_for(self.process.execute(Execution(batch.tasks[0])), 5.0)
        return await self.queue.get("t1")


def make_harness(pool: FakeChildPool | None) -> Harness:
    clock = ManualClock(NOW)
    queue = InMemoryTaskQueue(60_000, clock)
    locks = InMemoryLockService(ManualClock(0))
    registry = TaskRegistry()
    registry.add(*TASKS)
    process = ProcessTask(
        queue=queue, locks=locks, registry=registry, policy=POLICY, clock=clock,
        log=RecordingLog(), rng=Random(1), children=pool,
    )  # fmt: skip
    return Harness(queue, locks, pool or FakeChildPool(), process)


@pytest.fixture
def harness() -> Harness:
    return make_harness(FakeChildPool())


async def test_a_process_task_completes_with_what_its_child_answered(harness: Harness) -> None:
    stored = await harness.run("square")

    assert stored.status is TaskStatus.COMPLETED
    assert stored.result == {"square": 9, "ctx": ["t1", "default", 1, stored.fence]}
    assert stored.progress == {"pct": 50}


async def test_a_child_s_failure_is_settled_as_an_inline_handler_s(harness: Harness) -> None:
    stored = await harness.run("later")

    assert stored.status is TaskStatus.DELAYED
    assert stored.run_at == NOW + 7_000
    assert stored.error is not None
    assert stored.error.message == "rate limited"
    assert "in later" in stored.error.traceback  # the child's own traceback


async def test_a_timeout_cancels_the_pool_s_call_and_fails_the_attempt(harness: Harness) -> None:
    harness.pool.hang = True

    stored = await harness.run("square", timeout_ms=50)

    assert harness.pool.ended == 1
    assert stored.status is TaskStatus.DELAYED
    assert stored.error is not None
    assert stored.error.type == "TaskTimeout"


async def test_a_child_that_died_is_a_retryable_failed_attempt(harness: Harness) -> None:
    harness.pool.die = True

    stored = await harness.run("square")

    assert stored.status is TaskStatus.DELAYED
    assert stored.error is not None
    assert stored.error.type == "ChildDied"
    assert "killed by SIGKILL" in stored.error.message


def test_a_process_task_gets_a_bounded_lock_budget() -> None:
    """Its handler stops when its child is ended: no need to renew past timeout + grace."""
    (task_type,) = [t for t in TASKS if t.name == "square"]
    task = Task(id="t1", name="square", created_at=NOW, run_at=NOW, payload={})
    assert POLICY.extension_budget(task, task_type) == 3_012  # as an async handler's


async def test_without_a_pool_a_process_task_fails_its_attempt() -> None:
    stored = await make_harness(None).run("square")

    assert stored.status is TaskStatus.DELAYED
    assert stored.error is not None
    assert "needs a worker's child processes" in stored.error.message
