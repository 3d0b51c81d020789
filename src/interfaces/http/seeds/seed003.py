"""Seed 003 (BullMQ's vocabulary, the same status names as ours).

`POST /jobs/enqueue` answers 202 with the bare task, `GET /jobs`, `GET /jobs/{id}`,
`GET /jobs/stats`, `GET /jobs/failed/jobs`, `POST /jobs/pause|resume` (the default queue),
`POST /jobs/{id}/kill`, `DELETE /jobs/{id}`. Litestar matches literal segments before a
parameter, so `/jobs/stats` and `/jobs/failed/jobs` are never read as ids. Errors name
fields as seed 003 does: `type`, `payload.to`, `delay`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from litestar import Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import Field

from application.change_task import Action, ChangeTask
from application.delete_task import DeleteTask
from application.enqueue_task import EnqueueRequest, EnqueueTask
from application.get_stats import GetStats
from application.get_task import GetTask
from application.list_tasks import ListTasks
from application.pause_queue import PauseQueue
from domain.errors import InvalidTask, UnknownTaskType
from domain.task import PRIORITY_LIMIT, TaskStatus
from interfaces.http.auth import Principal, caller
from interfaces.http.errors import BODY, QUERY, documented
from interfaces.http.listing import (
    CursorParam,
    LimitParam,
    PageParam,
    StatusParam,
    TaskFilter,
    page_out,
    statuses_of,
    tasks_page,
)
from interfaces.http.schemas import PageOut, QueueStateOut, TaskOut
from interfaces.http.seeds.common import SeedModel
from interfaces.http.values import TEN_YEARS_MS, Payload

DEFAULT_QUEUE = "default"  # seed 003's one queue: where built-in and demo types go


class JobEnqueueBody(SeedModel):
    type: str = Field(min_length=1, max_length=200)
    payload: Payload = Field(default_factory=dict)
    priority: int | None = Field(default=None, ge=-PRIORITY_LIMIT, le=PRIORITY_LIMIT)
    delay: int | None = Field(default=None, ge=0, le=TEN_YEARS_MS)  # ms, as BullMQ's


class JobCountsOut(SeedModel):
    waiting: int
    active: int
    completed: int
    failed: int
    delayed: int
    cancelled: int


@contextmanager
def _type_field() -> Iterator[None]:
    """Seed 003 names the task type `type` (its payload is `payload`, as ours)."""
    try:
        yield
    except UnknownTaskType as exc:
        raise InvalidTask("type", exc.message) from None


@post(
    "/jobs/enqueue",
    status_code=202,
    tags=["seed 003"],
    summary="Enqueue (seed 003)",
    responses=documented(*BODY, enqueues=True),
)
async def seed003_enqueue(
    data: JSONBody[JobEnqueueBody],
    enqueue_task: NamedDependency[EnqueueTask],
    request: Request[Any, Any, Any],
) -> TaskOut:
    enqueue = EnqueueRequest(
        data.type, data.payload, priority=data.priority, delay_ms=data.delay,
        created_by=caller(request).name,
    )  # fmt: skip
    with _type_field():
        return TaskOut.model_validate((await enqueue_task.execute(enqueue)).task)


@get("/jobs", tags=["seed 003"], summary="List jobs (seed 003)", responses=documented(*QUERY))
async def seed003_list_jobs(
    *,
    list_tasks: NamedDependency[ListTasks],
    request: Request[Any, Any, Any],
    status: StatusParam = None,
    page: PageParam = 1,
    limit: LimitParam = 20,
    cursor: CursorParam = None,
) -> PageOut:
    wanted = TaskFilter(statuses=statuses_of(status), page=page, limit=limit, cursor=cursor)
    return page_out(await tasks_page(list_tasks, wanted, caller(request)))


@get(
    "/jobs/stats", tags=["seed 003"], summary="Counts by status (seed 003)", responses=documented()
)
async def seed003_stats(get_stats: NamedDependency[GetStats]) -> JobCountsOut:
    totals = (await get_stats.execute()).totals
    return JobCountsOut(**{status.value: totals.get(status, 0) for status in TaskStatus})


@get(
    "/jobs/failed/jobs",
    tags=["seed 003"],
    summary="Failed jobs (seed 003)",
    responses=documented(*QUERY),
)
async def seed003_failed_jobs(
    *,
    list_tasks: NamedDependency[ListTasks],
    request: Request[Any, Any, Any],
    page: PageParam = 1,
    limit: LimitParam = 20,
    cursor: CursorParam = None,
) -> PageOut:
    wanted = TaskFilter(statuses=(TaskStatus.FAILED,), page=page, limit=limit, cursor=cursor)
    return page_out(await tasks_page(list_tasks, wanted, caller(request)))


@post(
    "/jobs/pause",
    status_code=200,
    tags=["seed 003"],
    summary="Pause the default queue",
    responses=documented(),
)
async def seed003_pause(
    pause_queue: NamedDependency[PauseQueue], principal: NamedDependency[Principal]
) -> QueueStateOut:
    await pause_queue.execute(DEFAULT_QUEUE, paused=True, actor=principal.name)
    return QueueStateOut(queue=DEFAULT_QUEUE, paused=True)


@post(
    "/jobs/resume",
    status_code=200,
    tags=["seed 003"],
    summary="Resume the default queue",
    responses=documented(),
)
async def seed003_resume(
    pause_queue: NamedDependency[PauseQueue], principal: NamedDependency[Principal]
) -> QueueStateOut:
    await pause_queue.execute(DEFAULT_QUEUE, paused=False, actor=principal.name)
    return QueueStateOut(queue=DEFAULT_QUEUE, paused=False)


@get(
    "/jobs/{job_id:str}",
    tags=["seed 003"],
    summary="A job (seed 003)",
    responses=documented(*QUERY, 404),
)
async def seed003_read_job(job_id: FromPath[str], get_task: NamedDependency[GetTask]) -> TaskOut:
    return TaskOut.model_validate(await get_task.execute(job_id))


@post(
    "/jobs/{job_id:str}/kill",
    status_code=200,
    tags=["seed 003"],
    summary="Force-fail a job",
    responses=documented(*QUERY, 404, 409),
)
async def seed003_kill_job(
    job_id: FromPath[str],
    change_task: NamedDependency[ChangeTask],
    principal: NamedDependency[Principal],
) -> TaskOut:
    return TaskOut.model_validate(
        await change_task.execute(Action.KILL, job_id, actor=principal.name)
    )


@delete(
    "/jobs/{job_id:str}",
    status_code=204,
    tags=["seed 003"],
    summary="Remove a job",
    responses=documented(*QUERY, 404, 409),
)
async def seed003_delete_job(
    job_id: FromPath[str],
    delete_task: NamedDependency[DeleteTask],
    principal: NamedDependency[Principal],
) -> None:
    await delete_task.execute(job_id, actor=principal.name)


ROUTES = [
    seed003_enqueue,
    seed003_list_jobs,
    seed003_stats,
    seed003_failed_jobs,
    seed003_pause,
    seed003_resume,
    seed003_read_job,
    seed003_kill_job,
    seed003_delete_job,
]
