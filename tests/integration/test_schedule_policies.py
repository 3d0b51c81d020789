"""Missed and overlap policies on a real Redis: the composition root's schedule use cases
over Redis, on a clock the test moves (the processes being down is the clock jumping)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from redis.asyncio import Redis

from application.schedules import FireSchedules, ManageSchedules
from domain.errors import TaskNotFound
from domain.schedule import MissedPolicy, OverlapPolicy, Schedule, ScheduledTask, slot_task_id
from infrastructure.settings import Settings
from interfaces.container import Container, resolve
from tests.fakes import ManualClock

T0 = 1_900_000_000_000
SECOND = 1_000


class Deployment:
    def __init__(self, container: Container, clock: ManualClock) -> None:
        self.container = container
        self.clock = clock

    async def manage(self) -> ManageSchedules:
        made: ManageSchedules = await resolve(self.container.manage_schedules)
        return made

    async def look(self) -> None:
        firer: FireSchedules = await resolve(self.container.fire_schedules)
        await firer.execute()

    async def slots_fired(self, name: str, slots: list[int]) -> list[int]:
        views = await resolve(self.container.views)
        fired = []
        for slot in slots:
            try:
                await views.get(slot_task_id(name, slot))
                fired.append(slot)
            except TaskNotFound:
                pass
        return fired

    async def finish(self, task_id: str) -> None:
        """The task ran and was swept: it is gone."""
        views, queue = await resolve(self.container.views), await resolve(self.container.queue)
        await queue.remove(await views.get(task_id))


@pytest.fixture
async def deployment(redis: Redis, redis_url: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    clock = ManualClock(T0)
    container = Container()
    settings = Settings(redis_url=redis_url, files_base_dir=tmp_path / "files")
    container.settings.override(providers.Object(settings))
    container.clock.override(providers.Object(clock))
    await container.init_resources()  # type: ignore[misc]
    try:
        yield Deployment(container, clock)
    finally:
        await container.shutdown_resources()  # type: ignore[misc]


def every_second(**fields: Any) -> Schedule:
    task = ScheduledTask("echo", {"n": 1})
    return Schedule(name="tick", task=task, every_ms=SECOND, **fields)


def slots(first: int, last: int) -> list[int]:
    return [T0 + k * SECOND for k in range(first, last + 1)]


@pytest.mark.parametrize(
    ("policy", "fired"),
    [
        (MissedPolicy.SKIP, []),
        (MissedPolicy.ONCE, slots(9, 9)),
        (MissedPolicy.ALL, slots(5, 9)),  # the latest catchUpLimit of them
    ],
)
async def test_slots_missed_while_everything_was_down(
    deployment: Deployment, policy: MissedPolicy, fired: list[int]
) -> None:
    manage = await deployment.manage()
    await manage.create(every_second(missed_policy=policy, catch_up_limit=5), "ops")
    deployment.clock.advance(9 * SECOND + 600)  # down from before 1 s until 9.6 s
    await deployment.look()
    assert await deployment.slots_fired("tick", slots(1, 10)) == fired
    shown = await manage.get("tick")
    assert shown.schedule.next_at == T0 + 10 * SECOND
    assert (shown.schedule.fired, shown.schedule.skipped) == (len(fired), 9 - len(fired))
    deployment.clock.advance(400)  # up again: the next slot is on time
    await deployment.look()
    assert await deployment.slots_fired("tick", slots(10, 10)) == slots(10, 10)


async def test_overlap_skip_and_queue_follow_the_last_run(deployment: Deployment) -> None:
    manage = await deployment.manage()
    await manage.create(every_second(overlap_policy=OverlapPolicy.SKIP), "ops")
    deployment.clock.advance(SECOND)
    await deployment.look()
    deployment.clock.advance(SECOND)
    await deployment.look()  # the first run is still waiting: skipped
    assert await deployment.slots_fired("tick", slots(1, 2)) == slots(1, 1)

    await manage.update("tick", every_second(overlap_policy=OverlapPolicy.QUEUE), "ops")
    deployment.clock.advance(SECOND)  # the next slot counted from the update: 3 s
    await deployment.look()
    deployment.clock.advance(3 * SECOND)
    await deployment.look()
    assert await deployment.slots_fired("tick", slots(3, 6)) == []
    await deployment.finish(slot_task_id("tick", T0 + SECOND))
    await deployment.look()
    assert await deployment.slots_fired("tick", slots(3, 6)) == slots(6, 6)
    shown = (await manage.get("tick")).schedule
    assert (shown.fired, shown.skipped, shown.next_at) == (2, 4, T0 + 7 * SECOND)
