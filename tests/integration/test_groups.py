"""Groups on a real Redis: a queue serves its groups (tenants) in turn, whatever their
sizes and priorities; priorities order tasks within a group; a group's limits hold across
claims; a group's keys go when it has no tasks left."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from random import Random
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from domain.admission import DepthLimits
from domain.errors import QueueFull
from domain.limits import Limit, QueueLimits, Rate
from domain.task import Task, TaskStatus
from infrastructure.redis.client import database_of
from infrastructure.redis.flow import RedisFlowLimits
from infrastructure.redis.keys import keys_of
from infrastructure.redis.scripts import Scripts
from tests.stores import RedisStore

T0 = 1_900_000_000_000
LEASE_MS = 60_000


@pytest.fixture
async def store(redis: Redis, blocking_redis: Redis) -> AsyncIterator[RedisStore]:
    made = RedisStore(redis, blocking_redis, 60_000)
    try:
        yield made
    finally:
        await made.aclose()


@pytest.fixture
def limits(redis: Redis, store: RedisStore) -> RedisFlowLimits:
    return RedisFlowLimits(redis, store.lane, Scripts.load(database_of(redis)))


def grouped(group: str | None, count: int, *, priority: int = 0, start: int = 0) -> list[Task]:
    return [
        Task(id=f"{group or 'none'}-{start + n}", name="echo", payload={}, created_at=T0,
             run_at=T0, priority=priority, group=group)
        for n in range(count)
    ]  # fmt: skip


async def claim_ids(store: RedisStore, limit: int = 1, now: int = T0) -> list[str]:
    batch = await store.claim("default", "w1", limit, LEASE_MS, now)
    return [task.id for task in batch.tasks]


async def claim_one_by_one(store: RedisStore, count: int) -> list[str]:
    return [task_id for _ in range(count) for task_id in await claim_ids(store)]


async def test_a_small_group_is_served_in_turn_with_a_large_one(store: RedisStore) -> None:
    await store.enqueue(grouped("big", 1_000))
    await store.enqueue(grouped("small", 10))
    order = await claim_one_by_one(store, 20)
    assert order[0::2] == [f"big-{n}" for n in range(10)]
    assert order[1::2] == [f"small-{n}" for n in range(10)]
    (stats,) = await store.stats(T0)
    assert stats.counts[TaskStatus.WAITING] == 990  # behind their heads, still waiting


async def test_ungrouped_tasks_take_turns_with_groups_as_they_came(store: RedisStore) -> None:
    await store.enqueue(grouped("big", 100))
    await store.enqueue(grouped(None, 3))
    order = await claim_one_by_one(store, 6)
    assert order == ["big-0", "none-0", "none-1", "none-2", "big-1", "big-2"]


async def test_priorities_order_a_group_but_do_not_jump_other_groups(store: RedisStore) -> None:
    urgent = grouped("loud", 5, priority=-100)
    await store.enqueue([*grouped("quiet", 3), *urgent[:2]])
    # Within a group the higher priority (the lower number) goes first.
    await store.enqueue([*grouped("mixed", 2), *grouped("mixed", 1, priority=-5, start=2)])
    await store.enqueue(urgent[2:])
    order = await claim_one_by_one(store, 11)
    assert order == [
        "quiet-0", "loud-0", "mixed-2",
        "quiet-1", "loud-1", "mixed-0",
        "quiet-2", "loud-2", "mixed-1",
        "loud-3", "loud-4",
    ]  # fmt: skip


async def test_a_group_concurrency_holds_and_a_finished_task_frees_its_slot(
    store: RedisStore, limits: RedisFlowLimits
) -> None:
    group_limits = {"*": Limit(concurrency=2), "vip": Limit(concurrency=3)}
    await limits.set("default", QueueLimits(groups=group_limits))
    await store.enqueue([*grouped("a", 6), *grouped("vip", 6), *grouped(None, 2)])
    first = await store.claim("default", "w1", 20, LEASE_MS, T0)
    started = sorted(task.id for task in first.tasks)
    assert started == ["a-0", "a-1", "none-0", "none-1", "vip-0", "vip-1", "vip-2"]
    assert await claim_ids(store, 20) == []
    done = next(task for task in first.tasks if task.id == "a-0")
    await store.settle(done.complete(None, T0 + 1))
    assert await claim_ids(store, 20) == ["a-2"]
    view = await limits.get("default", T0)
    assert view.limits.groups == group_limits


async def test_a_group_rate_lets_so_many_start_and_says_when_more_may(
    store: RedisStore, limits: RedisFlowLimits
) -> None:
    await limits.set("default", QueueLimits(groups={"*": Limit(rate=Rate(2, 60_000))}))
    await store.enqueue([*grouped("a", 5), *grouped("b", 1)])
    now = int(time.time() * 1000)
    assert sorted(await claim_ids(store, 10, now)) == ["a-0", "a-1", "b-0"]
    held = await store.claim("default", "w1", 10, LEASE_MS, now)
    assert held.tasks == []
    assert held.next_due_at is not None
    assert now + 59_000 <= held.next_due_at <= now + 61_000  # when a's window opens


async def test_a_cancelled_or_removed_waiting_task_hands_its_groups_turn_on(
    store: RedisStore,
) -> None:
    tasks = grouped("a", 4)
    await store.enqueue(tasks)
    head, behind = await store.get("a-0"), await store.get("a-2")
    await store.change(head.cancelled(T0), head)  # the head: a-1 takes its place
    await store.change(behind.cancelled(T0), behind)  # behind it: just leaves
    await store.remove(await store.get("a-3"))
    assert await claim_one_by_one(store, 3) == ["a-1"]
    retried = await store.get("a-0")
    await store.change(retried.retried(T0), retried)
    assert await claim_ids(store) == ["a-0"]


async def test_a_stalled_task_goes_back_first_in_its_group(store: RedisStore) -> None:
    await store.enqueue(grouped("a", 3))
    (stalled,) = (await store.claim("default", "w1", 1, 1_000, T0)).tasks
    await store.recover(stalled.stalled(T0 + 2_000, 5, Random(1)), T0 + 2_000)
    # a-1 became the head when a-0 started; a-0 is first of the rest.
    assert await claim_one_by_one(store, 3) == ["a-1", "a-0", "a-2"]


async def test_a_delayed_task_joins_its_group_when_due(store: RedisStore) -> None:
    later = Task(id="late", name="echo", payload={}, created_at=T0, run_at=T0 + 1_000,
                 status=TaskStatus.DELAYED, group="a", priority=-1)  # fmt: skip
    await store.enqueue([later, *grouped("a", 3)])
    assert await claim_ids(store, 1, T0) == ["a-0"]
    # a-1 took its turn when a-0 started; the due task goes ahead of the rest of its group.
    assert await claim_ids(store, 5, T0 + 1_000) == ["a-1", "late", "a-2"]


async def test_a_groups_keys_go_when_it_has_no_tasks_left(
    store: RedisStore, limits: RedisFlowLimits, redis: Redis
) -> None:
    await limits.set("default", QueueLimits(groups={"*": Limit(Rate(100, 1_000), 5)}))
    await store.enqueue(grouped("gone", 30))
    while batch := (await store.claim("default", "w1", 7, LEASE_MS, T0)).tasks:
        for task in batch:
            await store.settle(task.complete(None, T0 + 1))
    k = keys_of("default")
    assert await redis.exists(k.group("gone"), k.group_active("gone")) == 0
    assert await redis.hlen(k.group_heads) == 0
    assert int(await redis.get(k.grouped) or 0) == 0
    # The rate window is the last to go: it expires with the window.
    assert 0 < await redis.pttl(k.starts("group:gone")) <= 1_000


async def test_tasks_behind_their_heads_count_against_the_depth_limit(
    redis: Redis, blocking_redis: Redis
) -> None:
    store = RedisStore(redis, blocking_redis, 60_000, depth_limits=DepthLimits(10))
    await store.enqueue(grouped("a", 10))
    with pytest.raises(QueueFull):
        await store.enqueue(grouped("b", 1))
    await store.aclose()


async def test_the_api_takes_and_shows_a_group_and_its_limits(
    client: AsyncTestClient[Any],
) -> None:
    response = await client.post(
        "/api/tasks", json={"taskName": "echo", "payload": {}, "group": "acme"}
    )
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    assert (await client.get(f"/api/tasks/{task_id}")).json()["group"] == "acme"
    bad = await client.post("/api/tasks", json={"taskName": "echo", "group": "a b"})
    assert bad.status_code == 422
    assert "group" in bad.json()["fields"]
    body = {"groups": {"*": {"concurrency": 2}, "acme": {"rate": {"max": 5, "windowMs": 1000}}}}
    put = await client.put("/api/queues/default/limits", json=body)
    assert put.status_code == 200, put.text
    shown = (await client.get("/api/queues/default/limits")).json()["groups"]
    assert shown == {
        "*": {"rate": None, "concurrency": 2},
        "acme": {"rate": {"max": 5, "windowMs": 1000}, "concurrency": None},
    }
    wrong = await client.put("/api/queues/default/limits", json={"groups": {"a b": {}}})
    assert wrong.status_code == 422
    assert "groups.a b" in wrong.json()["fields"]
