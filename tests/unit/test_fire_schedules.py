"""FireSchedules and ManageSchedules on the fakes: each slot becomes one task however many
firers look, a firing cut short is finished by the next look, and the policies hold."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import replace

import pytest

from application.enqueue_task import EnqueueTask
from application.registry import TaskRegistry, TaskType
from application.schedules import FireSchedules, ManageSchedules
from domain.admission import DepthLimits
from domain.errors import InvalidTask, TaskNotFound
from domain.schedule import OverlapPolicy, Schedule, ScheduledTask, slot_task_id
from domain.task import TaskStatus
from infrastructure.calendar import Calendar
from infrastructure.tasks.demo import Echo, echo
from tests.fakes import InMemoryTaskQueue, ManualClock, RecordingLog
from tests.fakes_schedules import InMemorySchedules

T0 = 1_700_000_000_000
SECOND = 1_000


class World:
    def __init__(self) -> None:
        self.clock = ManualClock(T0)
        self.queue = InMemoryTaskQueue(86_400_000, self.clock, queues=("default",))
        self.store = InMemorySchedules()
        self.registry = TaskRegistry()
        self.registry.add(TaskType("echo", Echo, echo))
        ids = (f"gen-{n}" for n in itertools.count(1))
        self.enqueue = EnqueueTask(
            self.queue, self.registry, self.clock, lambda: next(ids), 60_000, queues=["default"]
        )
        self.log = RecordingLog()
        self.manage = ManageSchedules(self.store, Calendar(), self.enqueue, self.clock)

    def firer(self) -> FireSchedules:
        return FireSchedules(
            store=self.store,
            calendar=Calendar(),
            enqueue_task=self.enqueue,
            views=self.queue,
            clock=self.clock,
            log=self.log,
        )

    async def waiting(self) -> int:
        (stats,) = await self.queue.stats(self.clock())
        return stats.counts.get(TaskStatus.WAITING, 0)

    async def slot_tasks(self, name: str, slots: list[int]) -> list[str]:
        found = []
        for slot in slots:
            with contextlib.suppress(TaskNotFound):
                found.append((await self.queue.get(slot_task_id(name, slot))).id)
        return found


def every_second(name: str = "tick", **fields: object) -> Schedule:
    return replace(  # type: ignore[arg-type]
        Schedule(name=name, task=ScheduledTask("echo", {"n": 1}), every_ms=SECOND), **fields
    )


@pytest.fixture
def world() -> World:
    return World()


async def test_five_firers_fire_each_slot_once(world: World) -> None:
    await world.manage.create(every_second(), "ops")
    firers = [world.firer() for _ in range(5)]
    for _ in range(200):  # 20 s in steps of 100 ms, every firer looking at each
        world.clock.advance(100)
        await asyncio.gather(*(firer.execute() for firer in firers))
    slots = [T0 + k * SECOND for k in range(1, 21)]
    assert await world.slot_tasks("tick", slots) == [slot_task_id("tick", s) for s in slots]
    schedule = await world.store.get("tick")
    assert (schedule.fired, schedule.skipped, schedule.next_at) == (20, 0, T0 + 21 * SECOND)
    assert await world.waiting() == 20


class AdvanceFailsOnce(InMemorySchedules):
    """A firer that dies between enqueueing a slot's task and moving the schedule."""

    failed = False

    async def advance(self, name: str, **fields: object) -> bool:  # type: ignore[override]
        if not self.failed:
            self.failed = True
            raise ConnectionError("the process died here")
        return await super().advance(name, **fields)  # type: ignore[arg-type]


async def test_a_firing_cut_short_is_finished_without_a_second_task(world: World) -> None:
    world.store = AdvanceFailsOnce()
    world.manage = ManageSchedules(world.store, Calendar(), world.enqueue, world.clock)
    await world.manage.create(every_second(), "ops")
    world.clock.advance(SECOND)
    with pytest.raises(ConnectionError):
        await world.firer().execute()
    assert (await world.store.get("tick")).next_at == T0 + SECOND  # not moved
    await world.firer().execute()
    schedule = await world.store.get("tick")
    assert (schedule.fired, schedule.next_at) == (1, T0 + 2 * SECOND)
    assert await world.waiting() == 1


async def test_overlap_skip_skips_while_the_last_run_waits(world: World) -> None:
    await world.manage.create(every_second(overlap_policy=OverlapPolicy.SKIP), "ops")
    firer = world.firer()
    world.clock.advance(SECOND)
    await firer.execute()
    first = await world.queue.get(slot_task_id("tick", T0 + SECOND))
    world.clock.advance(SECOND)
    await firer.execute()  # the first run has not run yet: skipped
    assert await world.slot_tasks("tick", [T0 + 2 * SECOND]) == []
    await world.queue.remove(first)  # it ran, and retention removed it
    world.clock.advance(SECOND)
    await firer.execute()
    assert await world.slot_tasks("tick", [T0 + 3 * SECOND]) == [slot_task_id("tick", T0 + 3000)]
    schedule = await world.store.get("tick")
    assert (schedule.fired, schedule.skipped) == (2, 1)


async def test_overlap_queue_fires_once_the_last_run_ends(world: World) -> None:
    await world.manage.create(every_second(overlap_policy=OverlapPolicy.QUEUE), "ops")
    firer = world.firer()
    world.clock.advance(SECOND)
    await firer.execute()
    first = await world.queue.get(slot_task_id("tick", T0 + SECOND))
    world.clock.advance(2 * SECOND + 100)  # slots at 2 s and 3 s wait behind the first run
    wake = await firer.execute()
    assert wake is None  # nothing else to wake for: it looks again within LOOK_EVERY_MS
    assert (await world.store.get("tick")).next_at == T0 + 2 * SECOND
    await world.queue.remove(first)
    await firer.execute()
    assert await world.slot_tasks("tick", [T0 + 2 * SECOND, T0 + 3 * SECOND]) == [
        slot_task_id("tick", T0 + 3 * SECOND)
    ]
    assert (await world.store.get("tick")).next_at == T0 + 4 * SECOND


async def test_a_schedule_whose_task_cannot_be_made_waits_and_others_fire(world: World) -> None:
    await world.manage.create(every_second("broken"), "ops")
    await world.manage.create(every_second("fine"), "ops")
    broken = await world.store.get("broken")
    await world.store.replace(replace(broken, task=ScheduledTask("gone")))
    world.clock.advance(SECOND)
    await world.firer().execute()
    assert (await world.store.get("broken")).next_at == T0 + SECOND
    assert (await world.store.get("fine")).fired == 1
    assert any(event == "schedule.invalid" for _, event, _ in world.log.events)


async def test_resume_starts_from_the_next_slot_and_update_keeps_the_record(
    world: World,
) -> None:
    await world.manage.create(every_second(), "ops")
    firer = world.firer()
    world.clock.advance(SECOND)
    await firer.execute()
    await world.manage.pause("tick", "ops")
    world.clock.advance(10 * SECOND + 500)
    await firer.execute()
    resumed = await world.manage.resume("tick", "ops")
    assert resumed.schedule.next_at == T0 + 12 * SECOND
    await firer.execute()
    assert (await world.store.get("tick")).fired == 1
    changed = await world.manage.update("tick", every_second(every_ms=5 * SECOND), "ops")
    assert changed.schedule.fired == 1
    assert changed.schedule.next_at == world.clock() + 5 * SECOND
    assert changed.upcoming[:2] == [world.clock() + 5 * SECOND, world.clock() + 10 * SECOND]


async def test_a_definition_is_checked_like_an_enqueue(world: World) -> None:
    bad = every_second(task=ScheduledTask("echo", queue="elsewhere"))
    with pytest.raises(InvalidTask) as raised:
        await world.manage.create(bad, "ops")
    assert raised.value.field == "task.queue"
    with pytest.raises(InvalidTask) as raised:
        await world.manage.create(every_second("bad name"), "ops")
    assert raised.value.field == "name"
    assert await world.store.list_all() == []


async def test_a_slot_waits_while_its_queue_is_full(world: World) -> None:
    world.queue = InMemoryTaskQueue(
        86_400_000, world.clock, queues=("default",), depth_limits=DepthLimits(default=1)
    )
    world.enqueue = EnqueueTask(
        world.queue, world.registry, world.clock, lambda: "x", 60_000, queues=["default"]
    )
    world.manage = ManageSchedules(world.store, Calendar(), world.enqueue, world.clock)
    await world.manage.create(every_second(), "ops")
    world.clock.advance(SECOND)
    await world.firer().execute()  # the first slot takes the one place
    world.clock.advance(SECOND)
    await world.firer().execute()
    assert (await world.store.get("tick")).next_at == T0 + 2 * SECOND  # waits for room
    assert any(event == "schedule.queue_full" for _, event, _ in world.log.events)
    await world.queue.remove(await world.queue.get(slot_task_id("tick", T0 + SECOND)))
    world.clock.advance(100)
    await world.firer().execute()
    assert await world.slot_tasks("tick", [T0 + 2 * SECOND]) == [slot_task_id("tick", T0 + 2000)]
