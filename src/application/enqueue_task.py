"""EnqueueTask: validate a request against its task type and store it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from application.clock import Clock
from application.registry import TaskRegistry
from domain.errors import DuplicateTask
from domain.ports import ITaskTransitions
from domain.task import Backoff, JSONObject, Task, check_configured_queue
from domain.values import Enqueued, EnqueueOutcome


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    """A producer's request; None means "the task type's default"."""

    task_name: str
    payload: JSONObject
    task_id: str | None = None
    queue: str | None = None
    priority: int | None = None
    delay_ms: int | None = None
    run_at: int | None = None
    attempts: int | None = None
    backoff: Backoff | None = None
    timeout_ms: int | None = None
    created_by: str | None = None
    group: str | None = None


class EnqueueTask:
    """Turn requests into tasks (type defaults, validated payload, due time) and store them.

    Nothing reaches the queue unless every request of the call is valid, so a bulk
    request is accepted or rejected whole; storing is one round trip whatever the size.
    A task goes only to one of the configured `queues`.
    """

    def __init__(
        self,
        queue: ITaskTransitions,
        registry: TaskRegistry,
        clock: Clock,
        new_id: Callable[[], str],
        default_timeout_ms: int,
        *,
        queues: Collection[str],
    ) -> None:
        self._queue = queue
        self._registry = registry
        self._clock = clock
        self._new_id = new_id
        self._default_timeout_ms = default_timeout_ms
        self._queues = frozenset(queues)

    def new_batch_id(self) -> str:
        """An id for a bulk enqueue's batch, from the same source as task ids."""
        return self._new_id()

    async def execute(self, request: EnqueueRequest) -> Enqueued:
        """One task; `DuplicateTask` if its id is taken by other content."""
        (enqueued,) = await self.execute_many([request])
        if enqueued.outcome is EnqueueOutcome.CONFLICT:
            raise DuplicateTask(enqueued.task.id)
        return enqueued

    def check(self, request: EnqueueRequest) -> None:
        """Raise what `execute` would raise for this request, storing nothing: for a
        definition kept to enqueue later (a schedule's task)."""
        self._build(request, self._clock())

    async def execute_many(
        self, requests: Sequence[EnqueueRequest], batch_id: str | None = None
    ) -> list[Enqueued]:
        """Many tasks, each with its own outcome (a conflict stores nothing for that one)."""
        now = self._clock()
        tasks = [self._build(request, now) for request in requests]
        return await self._queue.enqueue(tasks, batch_id)

    def _build(self, request: EnqueueRequest, now: int) -> Task:
        task_type = self._registry.get(request.task_name)
        run_at = request.run_at if request.run_at is not None else now + (request.delay_ms or 0)
        run_at = max(run_at, now)
        queue = request.queue or task_type.queue
        check_configured_queue(queue, self._queues)
        return Task(
            id=request.task_id or self._new_id(),
            name=task_type.name,
            payload=self._registry.normalize(task_type, request.payload),
            created_at=now,
            run_at=run_at,
            status=Task.status_for(run_at, now),
            queue=queue,
            priority=_pick(request.priority, task_type.priority),
            max_attempts=_pick(request.attempts, task_type.attempts),
            backoff=request.backoff or task_type.backoff,
            timeout_ms=request.timeout_ms or task_type.timeout_ms or self._default_timeout_ms,
            created_by=request.created_by,
            group=request.group,
        )


def _pick(value: int | None, default: int) -> int:
    return default if value is None else value
