"""GET /api/overview: what the dashboard's overview shows, in one answer that every page
open on this API process shares for up to a second.

A page reloads its overview when tasks move, and twenty pages see the same events at the
same moment. Made once and handed to all of them, the overview costs the API the same with
one page open as with a hundred: the Redis commands and the JSON of one answer a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.openapi import ResponseSpec

from application.get_stats import GetStats
from application.list_tasks import ListTasks
from application.schedules import ManageSchedules
from application.workers import ListWorkers
from domain.task import TaskStatus
from interfaces.http.auth import caller
from interfaces.http.errors import documented
from interfaces.http.listing import TaskFilter, tasks_page
from interfaces.http.queues import stats_out
from interfaces.http.schedules import ScheduleOut
from interfaces.http.schemas import StatsOut, TaskOut, Timestamp, WireModel, WorkerOut

MAX_AGE_S = 1.0
RUNNING_SHOWN = 100
FAILURES_SHOWN = 10


class OverviewOut(WireModel):
    """Stats, live workers, the tasks running now (newest first, at most 100), the latest
    ten failures, and the schedules; `madeAt` is when this answer was read."""

    made_at: Timestamp
    stats: StatsOut
    workers: list[WorkerOut]
    running: list[TaskOut]
    failures: list[TaskOut]
    schedules: list[ScheduleOut]


class SharedAnswer:
    """An answer made at most once per `max_age_s`, however many ask for it. Callers that
    come while it is being made wait for that one; a failure is not kept, so the next
    caller tries again."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age_s = max_age_s
        self._clock = clock
        self._answer: bytes | None = None
        self._made_at = 0.0
        self._making: asyncio.Future[bytes] | None = None

    async def get(self, make: Callable[[], Awaitable[bytes]]) -> bytes:
        if self._answer is not None and self._clock() - self._made_at < self._max_age_s:
            return self._answer
        if self._making is None:
            self._making = asyncio.ensure_future(self._make(make))
        # Shielded: a caller that goes away does not cancel the answer the others wait for.
        return await asyncio.shield(self._making)

    async def _make(self, make: Callable[[], Awaitable[bytes]]) -> bytes:
        started = self._clock()  # the answer is as old as its first read
        try:
            answer = await make()
        finally:
            self._making = None
        self._answer, self._made_at = answer, started
        return answer


@get(
    "/api/overview",
    tags=["queues"],
    summary="The dashboard's overview in one answer, shared for up to a second",
    description=(
        "Stats, live workers, running tasks, the latest failures and the schedules. Every "
        "caller within a second gets the same answer (`madeAt` says when it was read)."
    ),
    # The answer is sent as the bytes all callers share; its shape is OverviewOut's.
    responses={
        200: ResponseSpec(OverviewOut, description="the overview", generate_examples=False),
        **documented(),
    },
)
async def overview(
    *,
    request: Request[Any, Any, Any],
    overview_answer: NamedDependency[SharedAnswer],
    get_stats: NamedDependency[GetStats],
    list_tasks: NamedDependency[ListTasks],
    list_workers: NamedDependency[ListWorkers],
    manage_schedules: NamedDependency[ManageSchedules],
) -> Response[bytes]:
    principal = caller(request)  # admin-only (auth.py); all callers read the same tasks

    async def make() -> bytes:
        made_at = datetime.now(UTC)
        stats, workers, running, failures, schedules = await asyncio.gather(
            get_stats.execute(),
            list_workers.execute(),
            tasks_page(list_tasks, _latest(TaskStatus.ACTIVE, RUNNING_SHOWN), principal),
            tasks_page(list_tasks, _latest(TaskStatus.FAILED, FAILURES_SHOWN), principal),
            manage_schedules.list(),
        )
        answer = OverviewOut(
            made_at=made_at,
            stats=stats_out(stats),
            workers=[WorkerOut.model_validate(info) for info in workers],
            running=[TaskOut.model_validate(task) for task in running.items],
            failures=[TaskOut.model_validate(task) for task in failures.items],
            schedules=[ScheduleOut.of(view) for view in schedules],
        )
        return answer.model_dump_json(by_alias=True).encode()

    return Response(await overview_answer.get(make), media_type=MediaType.JSON)


def _latest(status: TaskStatus, limit: int) -> TaskFilter:
    return TaskFilter(statuses=(status,), limit=limit)
