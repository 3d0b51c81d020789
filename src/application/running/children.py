"""Handlers in child processes (executor="process"): the pool's port, and what a child
does with one job."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from application.handlers import Logger, TaskContext
from application.registry import TaskRegistry, TaskType
from application.running.failures import failure_from, json_value, unstorable
from domain.errors import SchedulerError
from domain.task import Failure, Task, TaskError
from domain.values import FencedWrite

Reply = tuple[Literal["done"], Any] | tuple[Literal["failed"], Failure]
"""A child's answer to a job: the result as JSON data, or the handler's failure."""


@dataclass(frozen=True, slots=True)
class ChildJob:
    """One attempt of a task, as a child process needs it: plain data, no live objects."""

    task_name: str
    payload: Any
    task_id: str
    queue: str
    attempt: int
    fence: int
    worker_id: str | None = None  # for the child's log lines

    @classmethod
    def of(cls, task: Task) -> ChildJob:
        return cls(
            task.name, task.payload, task.id, task.queue, task.attempt, task.fence, task.worker_id
        )


class ChildDied(Exception):
    """The child process ended before it answered: os._exit, a crash, a signal from
    outside. A failed attempt like any other (retryable); the pool starts another child."""


class IChildPool(Protocol):
    """The worker's child processes, for the handlers of task types with executor="process".

    `run` hands the job to an idle child, starting one while fewer than the pool's size
    are alive, else waiting for one to be free. It returns the handler's result as JSON
    data; it raises `RaisedInChild` with the handler's failure, and `ChildDied` (naming the
    exit code or signal) when the child ended before it answered. What the handler reports
    with `ctx.report_progress` reaches `on_progress` in the caller's event loop, which is
    never blocked waiting for a child. A fenced write (`ctx.fenced_sync`) is carried out
    by `on_write` in the caller's event loop while the handler waits for its answer; the
    handler gets `FenceLost` (nothing written) or the ValueError of a refused write as if
    it had written itself. Without `on_write`, each fenced write raises RuntimeError.

    Cancelling `run` ends its child (SIGTERM, then SIGKILL) before the cancellation goes
    on: the handler has stopped once `run` has returned or raised, so no retry overlaps it.
    A fresh child takes its place when one is next needed.
    """

    async def run(
        self,
        job: ChildJob,
        on_progress: Callable[[Any], None],
        on_write: Callable[[FencedWrite], Awaitable[Any]] | None = None,
    ) -> Any: ...


def child_registry(modules: Iterable[str], context: Mapping[str, Any]) -> TaskRegistry:
    """A child's own registry: the process task types of the modules' TASKS lists, found
    again by name (handlers are not sent over the pipe, only the task type's name)."""
    registry = TaskRegistry(context)
    for path in modules:
        task_types: Iterable[TaskType] = getattr(importlib.import_module(path), "TASKS", ())
        registry.add(*(task_type for task_type in task_types if task_type.in_child))
    return registry


def run_job(
    registry: TaskRegistry,
    job: ChildJob,
    report: Callable[[Any], None],
    log: Logger,
    *,
    write: Callable[[FencedWrite], Any] | None = None,
    effect_key: Callable[[str, str], str] | None = None,
) -> Reply:
    """Run the handler in this (child) process and turn whatever it does into a reply.
    `write` sends `ctx.fenced_sync`'s writes to the worker and waits for their answer;
    `effect_key(queue, name)` names their keys.

    `ctx.raise_if_cancelled()` never raises here: a cancelled task's child is ended
    instead, wherever its handler is.
    """
    try:
        task_type = registry.get(job.task_name)
        payload = registry.parse(task_type, job.payload)
    except SchedulerError as exc:
        return "failed", Failure(TaskError(type(exc).__name__, str(exc)), retryable=False)
    ctx = TaskContext(
        task_id=job.task_id,
        queue=job.queue,
        attempt=job.attempt,
        fence=job.fence,
        log=log,
        on_progress=report,
        **_writes(job.queue, write, effect_key),
    )
    try:
        result = task_type.handler(payload, ctx)
    except Exception as exc:  # noqa: BLE001 - whatever a handler raises is its failure
        return "failed", failure_from(exc)
    try:
        return "done", json_value(result)
    except ValueError as reason:
        return "failed", unstorable(reason)


def _writes(
    queue: str,
    write: Callable[[FencedWrite], Any] | None,
    effect_key: Callable[[str, str], str] | None,
) -> dict[str, Any]:
    """A child's context's fenced writes: blocking ones only (its handler is sync)."""
    if write is None or effect_key is None:
        return {}
    return {"write_sync": write, "effect_key": functools.partial(effect_key, queue)}
