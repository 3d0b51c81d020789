"""Operators' actions on tasks: retry, cancel, kill, duplicate, one by one or in bulk."""

from __future__ import annotations

from litestar import Controller, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from application.bulk_change import BulkChange, BulkOutcome
from application.change_task import Action, ChangeTask
from application.clone_task import CloneTask
from interfaces.http.auth import Principal
from interfaces.http.errors import BODY, QUERY, documented
from interfaces.http.listing import QueueParam
from interfaces.http.schemas import (
    BulkOutcomeOut,
    BulkOutcomesOut,
    DuplicateBody,
    IdsBody,
    RemovedOut,
    TaskOut,
)
from interfaces.http.tasks import enqueued_response


class ActionController(Controller):
    path = "/api/tasks"
    tags = ["actions"]  # noqa: RUF012 - litestar reads it as a class attribute

    @post(
        "/{task_id:str}/retry",
        status_code=200,
        summary="Retry a failed or cancelled task",
        responses=documented(*QUERY, 404, 409),
    )
    async def retry(
        self,
        task_id: FromPath[str],
        change_task: NamedDependency[ChangeTask],
        principal: NamedDependency[Principal],
        queue: QueueParam = None,
    ) -> TaskOut:
        task = await change_task.execute(Action.RETRY, task_id, queue, principal.name)
        return TaskOut.model_validate(task)

    @post(
        "/{task_id:str}/cancel",
        status_code=200,
        summary="Cancel a task; an active one is stopped by its worker",
        responses=documented(*QUERY, 404, 409),
    )
    async def cancel(
        self,
        task_id: FromPath[str],
        change_task: NamedDependency[ChangeTask],
        principal: NamedDependency[Principal],
        queue: QueueParam = None,
    ) -> TaskOut:
        task = await change_task.execute(Action.CANCEL, task_id, queue, principal.name)
        return TaskOut.model_validate(task)

    @post(
        "/{task_id:str}/kill",
        status_code=200,
        summary="Force-fail a task that has not finished",
        responses=documented(*QUERY, 404, 409),
    )
    async def kill(
        self,
        task_id: FromPath[str],
        change_task: NamedDependency[ChangeTask],
        principal: NamedDependency[Principal],
        queue: QueueParam = None,
    ) -> TaskOut:
        task = await change_task.execute(Action.KILL, task_id, queue, principal.name)
        return TaskOut.model_validate(task)

    @post(
        "/{task_id:str}/duplicate",
        status_code=202,
        summary="Enqueue a copy under a new id",
        responses=documented(*BODY, 404, 409, enqueues=True),
    )
    async def duplicate(
        self,
        task_id: FromPath[str],
        clone_task: NamedDependency[CloneTask],
        principal: NamedDependency[Principal],
        data: JSONBody[DuplicateBody | None] = None,
        queue: QueueParam = None,
    ) -> Response[TaskOut | RemovedOut]:
        run_at = None if data is None else data.run_at_ms()
        copied = await clone_task.execute(task_id, queue, run_at, principal.name)
        return enqueued_response(copied)

    @post(
        "/bulk/cancel",
        status_code=200,
        summary="Cancel many tasks; an outcome per id",
        responses=documented(*BODY),
    )
    async def bulk_cancel(
        self,
        data: JSONBody[IdsBody],
        bulk_change: NamedDependency[BulkChange],
        principal: NamedDependency[Principal],
    ) -> BulkOutcomesOut:
        return outcomes(await bulk_change.execute(Action.CANCEL, data.task_ids(), principal.name))

    @post(
        "/bulk/retry",
        status_code=200,
        summary="Retry many tasks; an outcome per id",
        responses=documented(*BODY),
    )
    async def bulk_retry(
        self,
        data: JSONBody[IdsBody],
        bulk_change: NamedDependency[BulkChange],
        principal: NamedDependency[Principal],
    ) -> BulkOutcomesOut:
        return outcomes(await bulk_change.execute(Action.RETRY, data.task_ids(), principal.name))


def outcomes(results: list[BulkOutcome]) -> BulkOutcomesOut:
    return BulkOutcomesOut(
        results=[
            BulkOutcomeOut(id=r.task_id, outcome=r.outcome, status=r.status, detail=r.detail)
            for r in results
        ]
    )
