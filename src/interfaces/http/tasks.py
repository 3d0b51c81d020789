"""Native task routes: enqueue, read, delete."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from application.delete_task import DeleteTask
from application.enqueue_task import EnqueueTask
from application.get_task import GetTask
from domain.ports import Enqueued, EnqueueOutcome
from interfaces.http.schemas import EnqueueBody, RemovedOut, TaskOut

QueueParam = Annotated[
    str | None, QueryParameter(name="queue", pattern=r"^[A-Za-z0-9._:-]{1,128}$")
]


def enqueued_response(enqueued: Enqueued) -> Response[TaskOut | RemovedOut]:
    """202 for a new task; 200 for the same request repeated (existing or removed)."""
    if enqueued.outcome is EnqueueOutcome.REMOVED:
        return Response(RemovedOut(id=enqueued.task.id), status_code=200)
    status = 202 if enqueued.outcome is EnqueueOutcome.CREATED else 200
    return Response(TaskOut.model_validate(enqueued.task), status_code=status)


class TaskController(Controller):
    path = "/api/tasks"
    tags = ["tasks"]  # noqa: RUF012 - litestar reads it as a class attribute

    @post("/", status_code=202, summary="Enqueue a task")
    async def enqueue(
        self, data: JSONBody[EnqueueBody], enqueue_task: NamedDependency[EnqueueTask]
    ) -> Response[TaskOut | RemovedOut]:
        return enqueued_response(await enqueue_task.execute(data.to_request()))

    @get("/{task_id:str}", summary="Read a task")
    async def read(
        self, task_id: FromPath[str], get_task: NamedDependency[GetTask], queue: QueueParam = None
    ) -> TaskOut:
        return TaskOut.model_validate(await get_task.execute(task_id, queue))

    @delete("/{task_id:str}", status_code=204, summary="Remove a task that is not active")
    async def remove(
        self,
        task_id: FromPath[str],
        delete_task: NamedDependency[DeleteTask],
        queue: QueueParam = None,
    ) -> None:
        await delete_task.execute(task_id, queue)
