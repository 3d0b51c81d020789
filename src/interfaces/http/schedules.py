"""Schedule routes: recurring tasks by cron expression or interval, admins only."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import Field, model_validator

from application.schedules import ManageSchedules, ScheduleView
from domain.schedule import (
    CATCH_UP_LIMIT,
    MAX_CATCH_UP,
    MAX_EVERY_MS,
    MIN_EVERY_MS,
    MissedPolicy,
    OverlapPolicy,
    Schedule,
    ScheduledTask,
)
from domain.task import PRIORITY_LIMIT
from interfaces.http.auth import Principal
from interfaces.http.errors import BODY, QUERY, documented
from interfaces.http.schemas import (
    ID_PATTERN,
    BackoffBody,
    BackoffOut,
    TaskOut,
    Timestamp,
    WireModel,
)
from interfaces.http.values import TEN_YEARS_MS, Payload, WireInt

NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


class ScheduledTaskBody(WireModel):
    """The task each firing enqueues: POST /api/tasks's fields, but its id and due time."""

    task_name: str = Field(min_length=1, max_length=200)
    payload: Payload = Field(default_factory=dict)
    queue: str | None = Field(default=None, pattern=ID_PATTERN)
    priority: WireInt | None = Field(default=None, ge=-PRIORITY_LIMIT, le=PRIORITY_LIMIT)
    attempts: WireInt | None = Field(default=None, ge=1, le=1_000)
    backoff: BackoffBody | None = None
    timeout_ms: WireInt | None = Field(default=None, ge=1, le=TEN_YEARS_MS)

    def to_domain(self) -> ScheduledTask:
        return ScheduledTask(
            task_name=self.task_name,
            payload=self.payload,
            queue=self.queue,
            priority=self.priority,
            attempts=self.attempts,
            backoff=None if self.backoff is None else self.backoff.to_domain(),
            timeout_ms=self.timeout_ms,
        )


class ScheduleDefinition(WireModel):
    """A cadence (`cron` in `timezone`, or `everyMs`) and the task it fires."""

    cron: str | None = Field(
        default=None,
        min_length=1,
        max_length=120,
        description="5 fields (minute hour day month weekday), or 6 with seconds first",
    )
    every_ms: WireInt | None = Field(
        default=None,
        ge=MIN_EVERY_MS,
        le=MAX_EVERY_MS,
        description="an interval; the first slot is one interval after creation",
    )
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    task: ScheduledTaskBody
    missed_policy: MissedPolicy = MissedPolicy.ONCE
    catch_up_limit: WireInt = Field(default=CATCH_UP_LIMIT, ge=1, le=MAX_CATCH_UP)
    overlap_policy: OverlapPolicy = OverlapPolicy.ALLOW

    @model_validator(mode="after")
    def _one_cadence(self) -> ScheduleDefinition:
        if (self.cron is None) == (self.every_ms is None):
            raise ValueError("give cron or everyMs, one of the two")
        return self

    def to_domain(self, name: str) -> Schedule:
        return Schedule(
            name=name,
            task=self.task.to_domain(),
            cron=self.cron,
            every_ms=self.every_ms,
            timezone=self.timezone,
            missed_policy=self.missed_policy,
            catch_up_limit=self.catch_up_limit,
            overlap_policy=self.overlap_policy,
        )


class ScheduleBody(ScheduleDefinition):
    name: str = Field(pattern=NAME_PATTERN)


class ScheduledTaskOut(WireModel):
    task_name: str
    payload: dict[str, Any]
    queue: str | None
    priority: int | None
    attempts: int | None
    backoff: BackoffOut | None
    timeout_ms: int | None


class ScheduleOut(WireModel):
    """A schedule, its next fire times (`upcoming`, none while paused) and its record."""

    name: str
    cron: str | None
    every_ms: int | None
    timezone: str
    task: ScheduledTaskOut
    missed_policy: MissedPolicy
    catch_up_limit: int
    overlap_policy: OverlapPolicy
    status: Literal["active", "paused"]
    created_at: Timestamp
    updated_at: Timestamp
    created_by: str | None
    next_run_at: Timestamp | None
    upcoming: list[Timestamp]
    last_run_at: Timestamp | None = Field(description="the last slot fired")
    last_task_id: str | None
    fired: int
    skipped: int

    @classmethod
    def of(cls, view: ScheduleView) -> ScheduleOut:
        s = view.schedule
        return cls.model_validate(
            {
                "name": s.name,
                "cron": s.cron,
                "every_ms": s.every_ms,
                "timezone": s.timezone,
                "task": ScheduledTaskOut.model_validate(s.task),
                "missed_policy": s.missed_policy,
                "catch_up_limit": s.catch_up_limit,
                "overlap_policy": s.overlap_policy,
                "status": s.state.value,
                "created_at": s.created_at,
                "updated_at": s.updated_at,
                "created_by": s.created_by,
                "next_run_at": s.next_at,
                "upcoming": view.upcoming,
                "last_run_at": s.last_slot,
                "last_task_id": s.last_task_id,
                "fired": s.fired,
                "skipped": s.skipped,
            }
        )


class ScheduleListOut(WireModel):
    schedules: list[ScheduleOut]


class ScheduleController(Controller):
    path = "/api/schedules"
    tags = ["schedules"]  # noqa: RUF012 - litestar reads it as a class attribute

    @get("/", summary="List schedules, oldest first", responses=documented())
    async def list_all(self, manage_schedules: NamedDependency[ManageSchedules]) -> ScheduleListOut:
        views = await manage_schedules.list()
        return ScheduleListOut(schedules=[ScheduleOut.of(view) for view in views])

    @post(
        "/",
        status_code=201,
        summary="Create a recurring schedule",
        responses=documented(*BODY, 409),
    )
    async def create(
        self,
        data: JSONBody[ScheduleBody],
        manage_schedules: NamedDependency[ManageSchedules],
        principal: NamedDependency[Principal],
    ) -> ScheduleOut:
        schedule = data.to_domain(data.name)
        return ScheduleOut.of(await manage_schedules.create(schedule, principal.name))

    @get("/{name:str}", summary="A schedule and its next fire times", responses=documented(404))
    async def show(
        self, name: FromPath[str], manage_schedules: NamedDependency[ManageSchedules]
    ) -> ScheduleOut:
        return ScheduleOut.of(await manage_schedules.get(name))

    @put(
        "/{name:str}",
        summary="Replace a schedule's definition (its record is kept)",
        responses=documented(*BODY, 404),
    )
    async def update(
        self,
        name: FromPath[str],
        data: JSONBody[ScheduleDefinition],
        manage_schedules: NamedDependency[ManageSchedules],
        principal: NamedDependency[Principal],
    ) -> ScheduleOut:
        view = await manage_schedules.update(name, data.to_domain(name), principal.name)
        return ScheduleOut.of(view)

    @post("/{name:str}/pause", status_code=200, summary="Pause", responses=documented(404))
    async def pause(
        self,
        name: FromPath[str],
        manage_schedules: NamedDependency[ManageSchedules],
        principal: NamedDependency[Principal],
    ) -> ScheduleOut:
        return ScheduleOut.of(await manage_schedules.pause(name, principal.name))

    @post(
        "/{name:str}/resume",
        status_code=200,
        summary="Resume from the next slot (slots passed while paused are not fired)",
        responses=documented(404),
    )
    async def resume(
        self,
        name: FromPath[str],
        manage_schedules: NamedDependency[ManageSchedules],
        principal: NamedDependency[Principal],
    ) -> ScheduleOut:
        return ScheduleOut.of(await manage_schedules.resume(name, principal.name))

    @post(
        "/{name:str}/trigger",
        status_code=202,
        summary="Enqueue the schedule's task now (its slots do not move)",
        responses=documented(404, 409, 422),
    )
    async def trigger(
        self,
        name: FromPath[str],
        manage_schedules: NamedDependency[ManageSchedules],
        principal: NamedDependency[Principal],
    ) -> TaskOut:
        enqueued = await manage_schedules.trigger(name, principal.name)
        return TaskOut.model_validate(enqueued.task)

    @delete(
        "/{name:str}",
        status_code=204,
        summary="Delete a schedule (tasks it fired stay)",
        responses=documented(*QUERY, 404),
    )
    async def remove(
        self,
        name: FromPath[str],
        manage_schedules: NamedDependency[ManageSchedules],
        principal: NamedDependency[Principal],
    ) -> None:
        await manage_schedules.delete(name, principal.name)
