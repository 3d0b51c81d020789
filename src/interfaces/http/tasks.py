"""Native task routes: enqueue (one or a batch), read (and wait), delete."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from application.delete_task import DeleteTask
from application.enqueue_task import EnqueueTask
from application.get_task import GetTask
from application.list_tasks import ListTasks
from domain.errors import TaskNotFound
from domain.values import Enqueued, EnqueueOutcome
from interfaces.http.auth import Principal, caller, may_read
from interfaces.http.errors import BODY, QUERY, documented
from interfaces.http.listing import (
    CursorParam,
    FromParam,
    LimitParam,
    NameParam,
    PageParam,
    QueueParam,
    SearchParam,
    StatusParam,
    TaskFilter,
    ToParam,
    page_out,
    statuses_of,
    tasks_page,
)
from interfaces.http.schemas import (
    BulkEnqueueBody,
    BulkEnqueueOut,
    BulkItemOut,
    EnqueueBody,
    PageOut,
    RemovedOut,
    TaskOut,
)
from interfaces.http.wire import answer_to, enqueued_answer, json_response, task_response

WaitParam = Annotated[int, QueryParameter(name="waitMs", ge=0, le=60_000)]


def bulk_item(enqueued: Enqueued, principal: Principal) -> BulkItemOut:
    task = enqueued.task
    hidden = not may_read(principal, task.created_by)  # another key's task: a conflict
    if hidden or enqueued.outcome in (EnqueueOutcome.REMOVED, EnqueueOutcome.CONFLICT):
        outcome = EnqueueOutcome.CONFLICT if hidden else enqueued.outcome
        return BulkItemOut(id=task.id, status=outcome.value)
    return BulkItemOut(id=task.id, status=task.status.value, task=TaskOut.model_validate(task))


def enqueued_response(enqueued: Enqueued) -> Response[TaskOut | RemovedOut]:
    """202 for a new task; 200 for the same request repeated (existing or removed)."""
    return json_response(*enqueued_answer(enqueued))


class TaskController(Controller):
    path = "/api/tasks"
    tags = ["tasks"]  # noqa: RUF012 - litestar reads it as a class attribute

    @post(
        "/",
        status_code=202,
        summary="Enqueue a task",
        responses=documented(*BODY, 409, enqueues=True),
    )
    async def enqueue(
        self,
        data: JSONBody[EnqueueBody],
        enqueue_task: NamedDependency[EnqueueTask],
        request: Request[Any, Any, Any],
    ) -> Response[TaskOut | RemovedOut]:
        principal = caller(request)
        enqueued = await enqueue_task.execute(data.to_request(principal.name))
        return json_response(*answer_to(principal, enqueued))

    @get(
        "/",
        summary="List tasks, newest first (a producer's key: its own tasks)",
        responses=documented(*QUERY),
    )
    async def list_tasks(
        self,
        *,
        list_tasks: NamedDependency[ListTasks],
        request: Request[Any, Any, Any],
        status: StatusParam = None,
        task_name: NameParam = None,
        queue: QueueParam = None,
        search: SearchParam = None,
        created_from: FromParam = None,
        created_to: ToParam = None,
        page: PageParam = 1,
        limit: LimitParam = 20,
        cursor: CursorParam = None,
    ) -> PageOut:
        wanted = TaskFilter(
            statuses=statuses_of(status), name=task_name, queue=queue, search=search,
            created=(created_from, created_to), page=page, limit=limit, cursor=cursor,
        )  # fmt: skip
        return page_out(await tasks_page(list_tasks, wanted, caller(request)))

    @post(
        "/bulk",
        status_code=202,
        summary="Enqueue many tasks in one round trip",
        responses=documented(*BODY, enqueues=True),
    )
    async def enqueue_many(
        self,
        data: JSONBody[BulkEnqueueBody],
        enqueue_task: NamedDependency[EnqueueTask],
        request: Request[Any, Any, Any],
    ) -> BulkEnqueueOut:
        principal = caller(request)
        batch_id = enqueue_task.new_batch_id()
        requests = [body.to_request(principal.name) for body in data.tasks]
        results = await enqueue_task.execute_many(requests, batch_id)
        return BulkEnqueueOut(
            batch_id=batch_id, tasks=[bulk_item(item, principal) for item in results]
        )

    @get(
        "/{task_id:str}",
        summary="Read a task; waitMs waits for it to finish",
        responses=documented(*QUERY, 404),
    )
    async def read(
        self,
        task_id: FromPath[str],
        get_task: NamedDependency[GetTask],
        request: Request[Any, Any, Any],
        queue: QueueParam = None,
        wait_ms: WaitParam = 0,
    ) -> Response[TaskOut]:
        task = await get_task.execute(task_id, queue)
        if not may_read(caller(request), task.created_by):
            raise TaskNotFound(task_id)  # another key's task: as if it did not exist
        return task_response(await get_task.wait(task, wait_ms))

    @delete(
        "/{task_id:str}",
        status_code=204,
        summary="Remove a task that is not active",
        responses=documented(*QUERY, 404, 409),
    )
    async def remove(
        self,
        task_id: FromPath[str],
        delete_task: NamedDependency[DeleteTask],
        principal: NamedDependency[Principal],
        queue: QueueParam = None,
    ) -> None:
        await delete_task.execute(task_id, queue, actor=principal.name)
