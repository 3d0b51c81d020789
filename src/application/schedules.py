"""Schedules: manage recurring tasks, and fire their slots.

Any number of processes run `FireSchedules`; each slot still becomes one task. A firing
enqueues the slot's task under the id `schedule:<name>:<slot>` (a second enqueue of that
id finds the task and creates nothing), then moves the schedule to its next slot only if
it is still at the slot it read. A process that dies between the two leaves the schedule
where it was; the next one to look enqueues the same id again (nothing new) and moves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from application.clock import Clock
from application.enqueue_task import EnqueueRequest, EnqueueTask
from domain.audit import AuditEntry
from domain.errors import InvalidTask, QueueFull, TaskNotFound
from domain.ports import IAuditLog, ICalendar, ISchedules, ITaskViews
from domain.schedule import (
    MAX_CATCH_UP,
    OverlapPolicy,
    Schedule,
    ScheduleState,
    check_cadence,
    check_schedule_name,
    manual_task_id,
    plan_firing,
    upcoming,
)
from domain.values import Enqueued, EnqueueOutcome

DUE_PER_ROUND = 100  # schedules one process fires per look
LOOK_EVERY_MS = 500  # the longest sleep between looks: new and changed schedules show up
FAILED_LOOK_DELAY_MS = 1_000


@dataclass(frozen=True, slots=True)
class ScheduleView:
    """A schedule and its next fire times (none while paused)."""

    schedule: Schedule
    upcoming: list[int]


@contextmanager
def task_fields() -> Iterator[None]:
    """Name the culprit as the schedule's body does: `task.taskName`, `task.payload.x`."""
    try:
        yield
    except InvalidTask as exc:
        fields = {f"task.{name}": message for name, message in exc.fields.items()}
        raise InvalidTask(f"task.{exc.field}", exc.message, fields) from None


class ManageSchedules:
    """Create, change, pause, resume, delete and list schedules; trigger one by hand.

    A definition is checked whole before it is stored: its cadence, its time zone, and
    its task as an enqueue would check it (type, payload, queue, numbers).
    """

    def __init__(
        self,
        store: ISchedules,
        calendar: ICalendar,
        enqueue_task: EnqueueTask,
        clock: Clock,
        audit: IAuditLog | None = None,
    ) -> None:
        self._store = store
        self._calendar = calendar
        self._enqueue_task = enqueue_task
        self._clock = clock
        self._audit = audit

    async def create(self, schedule: Schedule, actor: str) -> ScheduleView:
        now = self._clock()
        check_schedule_name(schedule.name)
        checked = self._checked(schedule, now)
        created = replace(
            checked,
            state=ScheduleState.ACTIVE,
            created_at=now,
            updated_at=now,
            anchor=now,
            created_by=actor,
            fired=0,
            skipped=0,
            last_slot=None,
            last_task_id=None,
        )
        created = replace(created, next_at=self._calendar.cadence(created).next_after(now))
        await self._store.add(created)
        await self._record(actor, "schedule.create", created.name)
        return self.view(created)

    async def update(self, name: str, definition: Schedule, actor: str) -> ScheduleView:
        """Replace the definition; the next slot is counted again from now."""
        now = self._clock()
        current = await self._store.get(name)
        changed = current.with_definition(self._checked(replace(definition, name=name), now), now)
        changed = replace(changed, next_at=self._next_slot(changed, now))
        await self._store.replace(changed)
        await self._record(actor, "schedule.update", name)
        return self.view(changed)

    async def pause(self, name: str, actor: str) -> ScheduleView:
        return await self._set_state(name, ScheduleState.PAUSED, actor)

    async def resume(self, name: str, actor: str) -> ScheduleView:
        """Slots that passed while paused are not fired: the next is the first from now."""
        return await self._set_state(name, ScheduleState.ACTIVE, actor)

    async def delete(self, name: str, actor: str) -> None:
        """Tasks it fired already are not touched."""
        await self._store.remove(name)
        await self._record(actor, "schedule.delete", name)

    async def get(self, name: str) -> ScheduleView:
        return self.view(await self._store.get(name))

    async def list(self) -> list[ScheduleView]:
        return [self.view(schedule) for schedule in await self._store.list_all()]

    async def trigger(self, name: str, actor: str) -> Enqueued:
        """Enqueue the schedule's task now, besides its slots (which do not move)."""
        schedule = await self._store.get(name)
        now = self._clock()
        enqueued = await self._enqueue_task.execute(
            _request(schedule, manual_task_id(name, now), actor)
        )
        await self._record(actor, "schedule.trigger", name, {"taskId": enqueued.task.id})
        return enqueued

    def view(self, schedule: Schedule) -> ScheduleView:
        if schedule.next_at is None:
            return ScheduleView(schedule, [])
        cadence = self._calendar.cadence(schedule)
        return ScheduleView(schedule, [schedule.next_at, *upcoming(cadence, schedule.next_at, 4)])

    async def _set_state(self, name: str, state: ScheduleState, actor: str) -> ScheduleView:
        now = self._clock()
        current = await self._store.get(name)
        changed = replace(current, state=state, updated_at=now)
        changed = replace(changed, next_at=self._next_slot(changed, now))
        await self._store.replace(changed)
        await self._record(actor, "schedule.pause" if changed.paused else "schedule.resume", name)
        return self.view(changed)

    def _next_slot(self, schedule: Schedule, now: int) -> int | None:
        if schedule.paused:
            return None
        return self._calendar.cadence(schedule).next_after(now)

    def _checked(self, schedule: Schedule, now: int) -> Schedule:
        check_cadence(schedule.cron, schedule.every_ms)
        if not 1 <= schedule.catch_up_limit <= MAX_CATCH_UP:
            raise InvalidTask("catchUpLimit", f"must be from 1 to {MAX_CATCH_UP}")
        self._calendar.check(schedule.cron, schedule.timezone, now)
        with task_fields():
            self._enqueue_task.check(_request(schedule, None, None))
        return schedule

    async def _record(
        self, actor: str, action: str, name: str, detail: dict[str, Any] | None = None
    ) -> None:
        if self._audit is not None:
            await self._audit.record(AuditEntry(self._clock(), actor, action, name, detail or {}))


def _request(schedule: Schedule, task_id: str | None, actor: str | None) -> EnqueueRequest:
    task = schedule.task
    return EnqueueRequest(
        task_name=task.task_name,
        payload=task.payload,
        task_id=task_id,
        queue=task.queue,
        priority=task.priority,
        attempts=task.attempts,
        backoff=task.backoff,
        timeout_ms=task.timeout_ms,
        created_by=actor,
    )


class FireSchedules:
    """Fire the slots that are due, in any number of processes at once.

    `execute` fires what is due now and returns when to look next (ms since the epoch, or
    None when no schedule is active).
    """

    def __init__(
        self,
        *,
        store: ISchedules,
        calendar: ICalendar,
        enqueue_task: EnqueueTask,
        views: ITaskViews,
        clock: Clock,
        log: Any,
    ) -> None:
        self._store = store
        self._calendar = calendar
        self._enqueue_task = enqueue_task
        self._views = views
        self._clock = clock
        self._log = log

    async def run(self) -> None:
        """Fire due slots for as long as the process runs: sleep until the next slot (at
        most `LOOK_EVERY_MS`, so new and changed schedules show up), fire, and again. The
        first look is after a pause, once the process is up. Survives its own failures."""
        delay = LOOK_EVERY_MS
        while True:
            await asyncio.sleep(delay / 1000)
            try:
                wake_at = await self.execute()
                delay = LOOK_EVERY_MS
                if wake_at is not None:
                    delay = min(max(wake_at - self._clock() + 1, 0), LOOK_EVERY_MS)
            except Exception as exc:  # noqa: BLE001 - Redis away: look again shortly
                self._log.warning("schedule.look_failed", error=repr(exc))
                delay = FAILED_LOOK_DELAY_MS

    async def execute(self) -> int | None:
        now = self._clock()
        waiting: set[str] = set()
        for schedule in await self._store.due(now, DUE_PER_ROUND):
            try:
                if not await self._fire(schedule, now):
                    waiting.add(schedule.name)
            except InvalidTask as exc:
                # Its task type went away, or its queue: the slot cannot become a task.
                self._log.error("schedule.invalid", schedule=schedule.name, error=str(exc))
                waiting.add(schedule.name)
            except QueueFull as exc:
                # The slot waits for room; if it comes too late, the slot is missed.
                self._log.warning("schedule.queue_full", schedule=schedule.name, error=str(exc))
                waiting.add(schedule.name)
        return await self._store.earliest(frozenset(waiting))

    async def _fire(self, schedule: Schedule, now: int) -> bool:
        """False when the schedule waits (for its previous run, or to be fixed)."""
        if schedule.next_at is None:
            return True
        cadence = self._calendar.cadence(schedule)
        running = await self._previous_running(schedule)
        plan = plan_firing(schedule, cadence, now, running)
        if plan.next_at is None:
            return False
        task_id = await self._enqueue(schedule, plan.fire)
        moved = await self._store.advance(
            schedule.name,
            expected=schedule.next_at,
            next_at=plan.next_at,
            fired=plan.fire,
            task_id=task_id,
            skipped=plan.skipped,
        )
        if moved:
            self._log.info(
                "schedule.fired",
                schedule=schedule.name,
                slots=plan.fire,
                skipped=plan.skipped,
                next_at=plan.next_at,
            )
        return True

    async def _enqueue(self, schedule: Schedule, slots: list[int]) -> str | None:
        if not slots:
            return None
        actor = schedule.created_by
        requests = [_request(schedule, schedule.task_id(slot), actor) for slot in slots]
        with task_fields():
            for enqueued in await self._enqueue_task.execute_many(requests):
                if enqueued.outcome is EnqueueOutcome.CONFLICT:
                    # The id is held by the same slot's task fired under an earlier
                    # definition: the slot has its task.
                    self._log.warning(
                        "schedule.slot_taken", schedule=schedule.name, task_id=enqueued.task.id
                    )
        return schedule.task_id(slots[-1])

    async def _previous_running(self, schedule: Schedule) -> bool:
        if schedule.overlap_policy is OverlapPolicy.ALLOW or schedule.last_task_id is None:
            return False
        try:
            task = await self._views.get(schedule.last_task_id)
        except TaskNotFound:
            return False
        return not task.status.is_terminal
