"""A task as the wire has it, built straight from the entity: the hot routes' answer.

`TaskOut` documents the shape (and the OpenAPI schema says so); validating every task
the domain already holds into a TaskOut, then dumping it, was a tenth of an enqueue's
cost. `task_wire` gives what `TaskOut.model_validate(task).model_dump(mode="json",
by_alias=True)` gives, and a test holds the two equal.
"""

from __future__ import annotations

from typing import Any

from litestar import Response
from litestar.enums import MediaType
from pydantic_core import to_json

from domain.errors import DuplicateTask
from domain.task import Attempt, Task
from domain.values import Enqueued, EnqueueOutcome
from interfaces.http.auth import Principal, may_read
from interfaces.http.schemas import RemovedOut, time_text


def task_wire(task: Task) -> dict[str, Any]:
    backoff, error = task.backoff, task.error
    return {
        "id": task.id,
        "taskName": task.name,
        "payload": task.payload,
        "queue": task.queue,
        "priority": task.priority,
        "status": task.status.value,
        "attempts": task.attempts,
        "maxAttempts": task.max_attempts,
        "stalls": task.stalls,
        "backoff": {
            "delayMs": backoff.delay_ms,
            "factor": float(backoff.factor),
            "maxDelayMs": backoff.max_delay_ms,
            "jitter": backoff.jitter,
        },
        "timeoutMs": task.timeout_ms,
        "runAt": time_text(task.run_at),
        "createdAt": time_text(task.created_at),
        "startedAt": None if task.started_at is None else time_text(task.started_at),
        "finishedAt": None if task.finished_at is None else time_text(task.finished_at),
        "result": task.result,
        "error": None
        if error is None
        else {"type": error.type, "message": error.message, "traceback": error.traceback},
        "progress": task.progress,
        "workerId": task.worker_id,
        "fence": task.fence,
        "history": [_attempt(entry) for entry in task.history],
        "createdBy": task.created_by,
        "group": task.group,
    }


def _attempt(entry: Attempt) -> dict[str, Any]:
    return {
        "workerId": entry.worker_id,
        "startedAt": time_text(entry.started_at),
        "finishedAt": time_text(entry.finished_at),
        "outcome": entry.outcome,
        "fence": entry.fence or None,
    }


def task_response(task: Task, status_code: int = 200) -> Response[Any]:
    """The task as a JSON response (its route declares TaskOut as what it answers)."""
    return json_response(status_code, task_wire(task))


def enqueued_answer(enqueued: Enqueued) -> tuple[int, dict[str, Any]]:
    """The status and body answering an enqueue: 202 and the task for a new one; 200 for
    the same request repeated, with the task or, for a removed one, its removal."""
    task = enqueued.task
    if enqueued.outcome is EnqueueOutcome.REMOVED:
        return 200, RemovedOut(id=task.id).model_dump(mode="json", by_alias=True)
    return (202 if enqueued.outcome is EnqueueOutcome.CREATED else 200), task_wire(task)


def answer_to(principal: Principal, enqueued: Enqueued) -> tuple[int, dict[str, Any]]:
    """`enqueued_answer` for the caller who enqueued; DuplicateTask when the id holds
    another key's task, which is never shown."""
    if not may_read(principal, enqueued.task.created_by):
        raise DuplicateTask(enqueued.task.id)
    return enqueued_answer(enqueued)


def json_response(status: int, body: Any) -> Response[Any]:
    return Response(to_json(body), status_code=status, media_type=MediaType.JSON)
