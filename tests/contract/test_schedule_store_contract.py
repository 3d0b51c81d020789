"""ISchedules contract: the in-memory fake and RedisScheduleStore must behave alike."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from domain.errors import DuplicateSchedule, ScheduleNotFound
from domain.ports import ISchedules
from domain.schedule import (
    MissedPolicy,
    OverlapPolicy,
    Schedule,
    ScheduledTask,
    ScheduleState,
)
from domain.task import Backoff
from infrastructure.redis.schedules import RedisScheduleStore
from tests.fakes_schedules import InMemorySchedules

T0 = 1_700_000_000_000
TASK = ScheduledTask(
    "echo",
    {"nested": {"é": [1, 2.5, None, True]}},
    queue="default",
    priority=-3,
    attempts=5,
    backoff=Backoff(500, 3.0, 60_000, jitter=False),
    timeout_ms=9_000,
)


def schedule(name: str = "s", **fields: object) -> Schedule:
    base = Schedule(
        name=name,
        task=TASK,
        cron="*/5 * * * *",
        timezone="Europe/Paris",
        missed_policy=MissedPolicy.ALL,
        catch_up_limit=7,
        overlap_policy=OverlapPolicy.QUEUE,
        created_at=T0,
        updated_at=T0,
        anchor=T0,
        created_by="ops",
        next_at=T0 + 300_000,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


@pytest.fixture(params=["fake", "redis"])
def store(request: pytest.FixtureRequest) -> ISchedules:
    if request.param == "fake":
        return InMemorySchedules()
    client: Redis = request.getfixturevalue("redis")
    return RedisScheduleStore(client)


async def test_a_schedule_reads_back_equal(store: ISchedules) -> None:
    await store.add(schedule())
    assert await store.get("s") == schedule()
    interval = schedule("i", cron=None, every_ms=1_000, task=ScheduledTask("echo"))
    await store.add(interval)
    assert await store.get("i") == interval


async def test_a_name_is_added_once(store: ISchedules) -> None:
    await store.add(schedule())
    with pytest.raises(DuplicateSchedule):
        await store.add(schedule(cron="0 * * * *"))
    assert (await store.get("s")).cron == "*/5 * * * *"


async def test_unknown_names(store: ISchedules) -> None:
    with pytest.raises(ScheduleNotFound):
        await store.get("none")
    with pytest.raises(ScheduleNotFound):
        await store.replace(schedule("none"))
    with pytest.raises(ScheduleNotFound):
        await store.remove("none")
    assert await store.list_all() == []


async def test_the_listing_is_oldest_first(store: ISchedules) -> None:
    await store.add(schedule("b", created_at=T0 + 1))
    await store.add(schedule("a", created_at=T0 + 2))
    await store.add(schedule("c", created_at=T0))
    assert [s.name for s in await store.list_all()] == ["c", "b", "a"]


async def test_due_and_earliest_follow_the_next_slots(store: ISchedules) -> None:
    await store.add(schedule("late", next_at=T0 + 50))
    await store.add(schedule("early", next_at=T0 + 10))
    await store.add(schedule("paused", next_at=None, state=ScheduleState.PAUSED))
    assert [s.name for s in await store.due(T0 + 10, 10)] == ["early"]
    assert [s.name for s in await store.due(T0 + 99, 10)] == ["early", "late"]
    assert [s.name for s in await store.due(T0 + 99, 1)] == ["early"]
    assert await store.earliest() == T0 + 10
    assert await store.earliest(frozenset({"early"})) == T0 + 50
    assert await store.earliest(frozenset({"early", "late"})) is None


async def test_advance_moves_only_from_the_slot_read(store: ISchedules) -> None:
    await store.add(schedule(next_at=T0))
    moved = await store.advance(
        "s", expected=T0, next_at=T0 + 300_000, fired=[T0], task_id="schedule:s:1", skipped=2
    )
    assert moved
    again = await store.advance(
        "s", expected=T0, next_at=T0 + 600_000, fired=[T0], task_id="x", skipped=0
    )
    assert not again
    found = await store.get("s")
    assert (found.next_at, found.last_slot, found.last_task_id) == (
        T0 + 300_000,
        T0,
        "schedule:s:1",
    )
    assert (found.fired, found.skipped) == (1, 2)
    assert [s.name for s in await store.due(T0 + 300_000, 5)] == ["s"]


async def test_an_advance_that_fires_nothing_keeps_the_last_run(store: ISchedules) -> None:
    await store.add(schedule(next_at=T0))
    await store.advance("s", expected=T0, next_at=T0 + 1, fired=[T0], task_id="t1", skipped=0)
    await store.advance("s", expected=T0 + 1, next_at=T0 + 2, fired=[], task_id=None, skipped=1)
    found = await store.get("s")
    assert (found.last_slot, found.last_task_id, found.fired, found.skipped) == (T0, "t1", 1, 1)


async def test_concurrent_advances_from_one_slot_move_it_once(store: ISchedules) -> None:
    await store.add(schedule(next_at=T0))
    results = await asyncio.gather(
        *(
            store.advance("s", expected=T0, next_at=T0 + k, fired=[T0], task_id="t", skipped=0)
            for k in range(1, 11)
        )
    )
    assert sum(results) == 1
    assert (await store.get("s")).fired == 1


async def test_a_change_keeps_the_record_and_pausing_leaves_due(store: ISchedules) -> None:
    await store.add(schedule(next_at=T0))
    await store.advance("s", expected=T0, next_at=T0 + 5, fired=[T0], task_id="t1", skipped=0)
    paused = schedule(next_at=None, state=ScheduleState.PAUSED, cron="0 * * * *")
    await store.replace(paused)
    found = await store.get("s")
    assert (found.cron, found.state, found.next_at) == ("0 * * * *", ScheduleState.PAUSED, None)
    assert (found.fired, found.last_task_id) == (1, "t1")
    assert await store.due(T0 + 10**9, 10) == []
    assert not await store.advance(
        "s", expected=T0 + 5, next_at=T0 + 9, fired=[T0 + 5], task_id="t2", skipped=0
    )


async def test_a_removed_name_can_be_added_again(store: ISchedules) -> None:
    await store.add(schedule(next_at=T0))
    await store.advance("s", expected=T0, next_at=T0 + 5, fired=[T0], task_id="t1", skipped=0)
    await store.remove("s")
    assert await store.due(T0 + 10, 10) == []
    await store.add(schedule(next_at=T0 + 7))
    assert (await store.get("s")).fired == 0
