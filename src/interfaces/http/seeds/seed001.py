"""Seed 001 (snake_case, its jobs table's shape).

`POST /api/job`, `GET /api/jobs`, `GET /api/jobs/export`, `POST /api/duplicate/{id}`,
`POST /api/bulk/cancel|retry`, `POST /api/retry/{id}`, `POST /api/cancel/{id}`. Its statuses
are mapped here alone: waiting and delayed are `pending` (both are "created, not yet
picked"), active is `running`, the rest keep their names. `picked` has no counterpart: a
task is claimed and started in one step, so a claimed task is `running` (`picked_at` =
`started_at`) and the filter `status=picked` matches nothing. The filter `status=pending`
lists waiting and delayed tasks, each from the top, merged newest first (deep pages cost up
to page x limit per status, bounded by the listing's 10,000-task page limit); the export
writes the waiting tasks, then the delayed ones. `startDate`/`endDate` bound the creation
time, as the native `from`/`to` do; a bare `endDate` date includes that whole day. Ids are
our string ids (seed 001's were integers; its numeric ids are taken as strings).

Errors name fields as seed 001 does: `task.type`, `task.data.to`, `scheduled_at`.
`/api/stats` and `/api/templates` are native routes that seed 001's clients use unchanged.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Stream
from pydantic import Field

from application.bulk_change import BulkChange, BulkOutcome
from application.change_task import Action, ChangeTask
from application.clone_task import CloneTask
from application.enqueue_task import EnqueueRequest, EnqueueTask
from application.list_tasks import ExportTasks, ListTasks
from application.templates import template_fields
from domain.errors import InvalidTask
from domain.task import Task, TaskStatus
from interfaces.http.auth import Principal, caller
from interfaces.http.errors import BODY, QUERY, documented
from interfaces.http.listing import (
    LimitParam,
    PageParam,
    SearchParam,
    TaskFilter,
    csv_stream,
    exported_tasks,
    millis,
    tasks_page,
)
from interfaces.http.schemas import BulkOutcomeOut, BulkOutcomesOut, IdsBody, Timestamp
from interfaces.http.seeds.common import SeedModel
from interfaces.http.values import DueTime, Payload


class JobStatus(StrEnum):
    PENDING = "pending"
    PICKED = "picked"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


JOB_STATUS: dict[TaskStatus, JobStatus] = {
    TaskStatus.WAITING: JobStatus.PENDING,
    TaskStatus.DELAYED: JobStatus.PENDING,
    TaskStatus.ACTIVE: JobStatus.RUNNING,
    TaskStatus.COMPLETED: JobStatus.COMPLETED,
    TaskStatus.FAILED: JobStatus.FAILED,
    TaskStatus.CANCELLED: JobStatus.CANCELLED,
}
TASK_STATUSES: dict[JobStatus, tuple[TaskStatus, ...]] = {
    job: tuple(task for task, mapped in JOB_STATUS.items() if mapped is job) for job in JobStatus
}


class JobTask(SeedModel):
    type: str = Field(min_length=1, max_length=200)
    data: Payload = Field(default_factory=dict)


class ScheduleBody(SeedModel):
    """When to run: an ISO 8601 moment (UTC if it names no zone); none or past: now."""

    scheduled_at: DueTime | None = None

    def run_at(self) -> int | None:
        return None if self.scheduled_at is None else millis(self.scheduled_at)


class JobBody(ScheduleBody):
    task: JobTask


class JobOut(SeedModel):
    """A row of seed 001's jobs table."""

    id: str
    task: JobTask
    scheduled_at: Timestamp
    status: JobStatus
    picked_at: Timestamp | None
    started_at: Timestamp | None
    completed_at: Timestamp | None
    created_at: Timestamp

    @classmethod
    def of(cls, task: Task) -> JobOut:
        return cls(
            id=task.id, task=JobTask(type=task.name, data=task.payload),
            scheduled_at=task.run_at, status=JOB_STATUS[task.status],
            picked_at=task.started_at, started_at=task.started_at,
            completed_at=task.finished_at, created_at=task.created_at,
        )  # fmt: skip


class JobsPageOut(SeedModel):
    jobs: list[JobOut]
    total: int | None  # None where a search scan cannot count
    page: int
    limit: int
    total_pages: int | None = Field(alias="totalPages")


JobStatusParam = Annotated[JobStatus | None, QueryParameter(name="status")]
TaskTypeParam = Annotated[str | None, QueryParameter(name="taskType", max_length=200)]
StartParam = Annotated[str | None, QueryParameter(name="startDate", max_length=64)]
EndParam = Annotated[str | None, QueryParameter(name="endDate", max_length=64)]
_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _day_or_moment(field: str, text: str | None, *, end: bool = False) -> datetime | None:
    """`YYYY-MM-DD` (as an end: that whole day, to its last microsecond) or ISO 8601."""
    if text is None:
        return None
    try:
        if _BARE_DATE.fullmatch(text):  # no day arithmetic: 9999-12-31 has no next day
            return datetime.combine(date.fromisoformat(text), time.max if end else time(), UTC)
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTask(field, "expected YYYY-MM-DD or an ISO 8601 date and time") from None


def _job_filter(
    status: JobStatus | None,
    task_type: str | None,
    search: str | None,
    dates: tuple[str | None, str | None],
    *,
    page: int = 1,
    limit: int = 20,
) -> TaskFilter:
    """Seed 001's names onto the listing's filter; its one status may be several of ours."""
    start, end = dates
    created = (_day_or_moment("startDate", start), _day_or_moment("endDate", end, end=True))
    return TaskFilter(
        statuses=None if status is None else TASK_STATUSES[status], name=task_type,
        search=search, created=created, page=page, limit=limit,
    )  # fmt: skip


def _outcomes(results: list[BulkOutcome]) -> BulkOutcomesOut:
    def shown(status: str | None) -> str | None:
        return None if status is None else JOB_STATUS[TaskStatus(status)].value

    return BulkOutcomesOut(
        results=[
            BulkOutcomeOut(id=r.task_id, outcome=r.outcome, status=shown(r.status), detail=r.detail)
            for r in results
        ]
    )


@post(
    "/api/job",
    status_code=202,
    tags=["seed 001"],
    summary="Create a job (seed 001)",
    responses=documented(*BODY, enqueues=True),
)
async def seed001_create_job(
    data: JSONBody[JobBody],
    enqueue_task: NamedDependency[EnqueueTask],
    request: Request[Any, Any, Any],
) -> JobOut:
    task, run_at, creator = data.task, data.run_at(), caller(request).name
    enqueue = EnqueueRequest(task.type, task.data, run_at=run_at, created_by=creator)
    with template_fields():  # task.type, task.data.<field>: seed 001's names too
        return JobOut.of((await enqueue_task.execute(enqueue)).task)


@get("/api/jobs", tags=["seed 001"], summary="List jobs (seed 001)", responses=documented(*QUERY))
async def seed001_list_jobs(
    *,
    list_tasks: NamedDependency[ListTasks],
    request: Request[Any, Any, Any],
    page: PageParam = 1,
    limit: LimitParam = 20,
    status: JobStatusParam = None,
    task_type: TaskTypeParam = None,
    search: SearchParam = None,
    start_date: StartParam = None,
    end_date: EndParam = None,
) -> JobsPageOut:
    wanted = _job_filter(status, task_type, search, (start_date, end_date), page=page, limit=limit)
    result = await tasks_page(list_tasks, wanted, caller(request))
    pages = None if result.total is None else math.ceil(result.total / limit)
    return JobsPageOut(
        jobs=[JobOut.of(task) for task in result.items],
        total=result.total, page=page, limit=limit, total_pages=pages,
    )  # fmt: skip


@get(
    "/api/jobs/export",
    tags=["seed 001"],
    summary="Jobs as CSV (seed 001)",
    media_type="text/csv",
    responses=documented(*QUERY),
)
async def seed001_export_jobs(
    *,
    export_tasks: NamedDependency[ExportTasks],
    request: Request[Any, Any, Any],
    status: JobStatusParam = None,
    task_type: TaskTypeParam = None,
    search: SearchParam = None,
    start_date: StartParam = None,
    end_date: EndParam = None,
) -> Stream:
    wanted = _job_filter(status, task_type, search, (start_date, end_date))
    return await csv_stream(exported_tasks(export_tasks, wanted, caller(request)))


@post(
    "/api/duplicate/{job_id:str}",
    status_code=202,
    tags=["seed 001"],
    summary="Copy a job",
    responses=documented(*BODY, 404, 409, enqueues=True),
)
async def seed001_duplicate_job(
    job_id: FromPath[str],
    clone_task: NamedDependency[CloneTask],
    principal: NamedDependency[Principal],
    data: JSONBody[ScheduleBody | None] = None,
) -> JobOut:
    run_at = None if data is None else data.run_at()
    return JobOut.of((await clone_task.execute(job_id, None, run_at, principal.name)).task)


@post(
    "/api/bulk/cancel",
    status_code=200,
    tags=["seed 001"],
    summary="Cancel jobs (seed 001)",
    responses=documented(*BODY),
)
async def seed001_bulk_cancel(
    data: JSONBody[IdsBody],
    bulk_change: NamedDependency[BulkChange],
    principal: NamedDependency[Principal],
) -> BulkOutcomesOut:
    return _outcomes(await bulk_change.execute(Action.CANCEL, data.task_ids(), principal.name))


@post(
    "/api/bulk/retry",
    status_code=200,
    tags=["seed 001"],
    summary="Retry jobs (seed 001)",
    responses=documented(*BODY),
)
async def seed001_bulk_retry(
    data: JSONBody[IdsBody],
    bulk_change: NamedDependency[BulkChange],
    principal: NamedDependency[Principal],
) -> BulkOutcomesOut:
    return _outcomes(await bulk_change.execute(Action.RETRY, data.task_ids(), principal.name))


@post(
    "/api/retry/{job_id:str}",
    status_code=200,
    tags=["seed 001"],
    summary="Retry a job",
    responses=documented(*QUERY, 404, 409),
)
async def seed001_retry_job(
    job_id: FromPath[str],
    change_task: NamedDependency[ChangeTask],
    principal: NamedDependency[Principal],
) -> JobOut:
    return JobOut.of(await change_task.execute(Action.RETRY, job_id, actor=principal.name))


@post(
    "/api/cancel/{job_id:str}",
    status_code=200,
    tags=["seed 001"],
    summary="Cancel a job",
    responses=documented(*QUERY, 404, 409),
)
async def seed001_cancel_job(
    job_id: FromPath[str],
    change_task: NamedDependency[ChangeTask],
    principal: NamedDependency[Principal],
) -> JobOut:
    return JobOut.of(await change_task.execute(Action.CANCEL, job_id, actor=principal.name))


ROUTES = [
    seed001_create_job,
    seed001_list_jobs,
    seed001_export_jobs,
    seed001_duplicate_job,
    seed001_bulk_cancel,
    seed001_bulk_retry,
    seed001_retry_job,
    seed001_cancel_job,
]
