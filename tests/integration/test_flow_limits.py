"""Flow limits on a real Redis: the claim scripts hold a queue's rate and concurrency, its
own and per task type, and the routes show and change them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from domain.limits import Limit, QueueLimits, Rate
from domain.task import Task, TaskStatus
from infrastructure.redis.client import database_of
from infrastructure.redis.flow import RedisFlowLimits
from infrastructure.redis.scripts import Scripts
from tests.conftest import api_client
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


async def enqueue(store: RedisStore, *names: str) -> list[str]:
    tasks = [
        Task(id=f"t{n}", name=name, payload={}, created_at=T0, run_at=T0,
             status=TaskStatus.WAITING)
        for n, name in enumerate(names)
    ]  # fmt: skip
    await store.enqueue(tasks)
    return [task.id for task in tasks]


async def claim(store: RedisStore, limit: int, now: int, lease_ms: int = LEASE_MS) -> Any:
    return await store.claim("default", "w1", limit, lease_ms, now)


async def test_a_rate_lets_so_many_start_per_window_and_says_when_more_may(
    store: RedisStore, limits: RedisFlowLimits
) -> None:
    await limits.set("default", QueueLimits(Limit(rate=Rate(3, 1_000))))
    await enqueue(store, *["echo"] * 10)
    first = await claim(store, 10, T0)
    assert len(first.tasks) == 3
    held = await claim(store, 10, T0 + 500)
    assert (held.tasks, held.next_due_at) == ([], T0 + 1_000)  # the worker sleeps till then
    assert len((await claim(store, 10, T0 + 1_000)).tasks) == 3
    view = await limits.get("default", T0 + 1_000)
    assert (view.queue.running, view.queue.started_in_window) == (6, 3)


async def test_a_concurrency_counts_running_tasks_until_their_lease_runs_out(
    store: RedisStore, limits: RedisFlowLimits
) -> None:
    await limits.set("default", QueueLimits(Limit(concurrency=2)))
    await enqueue(store, *["echo"] * 6)
    first = await claim(store, 6, T0, lease_ms=1_000)
    assert len(first.tasks) == 2
    assert (await claim(store, 6, T0 + 10)).tasks == []
    done = first.tasks[0].complete(None, T0 + 20)
    await store.settle(done)
    assert len((await claim(store, 6, T0 + 30)).tasks) == 1
    # The other first task's worker died: its slot comes back when its lease runs out.
    assert len((await claim(store, 6, T0 + 1_001)).tasks) == 1


async def test_a_task_types_limit_parks_its_tasks_and_lets_others_pass(
    store: RedisStore, limits: RedisFlowLimits
) -> None:
    await limits.set("default", QueueLimits(task_types={"slow": Limit(concurrency=1)}))
    ids = await enqueue(store, "slow", "slow", "echo", "slow", "echo")
    first = await claim(store, 5, T0)
    assert [t.id for t in first.tasks] == [ids[0], ids[2], ids[4]]
    view = await limits.get("default", T0)
    assert view.parked == {"slow": 2}
    assert view.task_types["slow"].running == 1
    (stats,) = await store.stats(T0)
    assert stats.counts[TaskStatus.WAITING] == 2  # parked tasks are still waiting
    parked = await store.get(ids[1])
    assert (parked.status, parked.attempts) == (TaskStatus.WAITING, 0)
    assert (await claim(store, 5, T0 + 1)).tasks == []
    await store.settle(first.tasks[0].complete(None, T0 + 2))
    assert [t.id for t in (await claim(store, 5, T0 + 3)).tasks] == [ids[1]]


async def test_a_type_rate_wakes_the_worker_when_its_window_opens(
    store: RedisStore, limits: RedisFlowLimits
) -> None:
    await limits.set("default", QueueLimits(task_types={"echo": Limit(rate=Rate(1, 500))}))
    await enqueue(store, "echo", "echo")
    assert len((await claim(store, 5, T0)).tasks) == 1
    held = await claim(store, 5, T0 + 100)
    assert (held.tasks, held.next_due_at) == ([], T0 + 500)
    assert len((await claim(store, 5, T0 + 500)).tasks) == 1


async def test_lifting_the_limits_puts_parked_tasks_back(
    store: RedisStore, limits: RedisFlowLimits, redis: Redis
) -> None:
    await limits.set("default", QueueLimits(task_types={"slow": Limit(concurrency=1)}))
    await enqueue(store, "slow", "slow", "slow")
    assert len((await claim(store, 5, T0)).tasks) == 1
    await limits.set("default", QueueLimits())
    assert len((await claim(store, 5, T0 + 1)).tasks) == 2
    assert await redis.hget("conveyor:{default}:meta", "limited") is None


async def test_a_cancelled_parked_task_never_starts(
    store: RedisStore, limits: RedisFlowLimits
) -> None:
    await limits.set("default", QueueLimits(task_types={"slow": Limit(concurrency=1)}))
    ids = await enqueue(store, "slow", "slow")
    first = await claim(store, 5, T0)
    parked = await store.get(ids[1])
    cancelled = parked.cancelled(T0 + 1)
    await store.change(cancelled, parked)
    await store.settle(first.tasks[0].complete(None, T0 + 2))
    assert (await claim(store, 5, T0 + 3)).tasks == []
    assert (await store.get(ids[1])).status is TaskStatus.CANCELLED


# --- the routes ---------------------------------------------------------------------------


@pytest.fixture
async def client(redis: Redis, redis_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    async with api_client(redis_url, tmp_path / "files") as made:
        yield made


async def test_the_routes_show_and_replace_limits(client: AsyncTestClient[Any]) -> None:
    empty = await client.get("/api/queues/default/limits")
    assert empty.status_code == 200, empty.text
    assert empty.json()["rate"] is None
    assert empty.json()["taskTypes"] == {}
    body = {
        "rate": {"max": 100, "windowMs": 1000},
        "concurrency": 5,
        "taskTypes": {"sleep": {"concurrency": 2}, "echo": {"rate": {"max": 1, "windowMs": 60000}}},
    }
    changed = await client.put("/api/queues/default/limits", json=body)
    assert changed.status_code == 200, changed.text
    shown = (await client.get("/api/queues/default/limits")).json()
    assert shown["rate"] == {"max": 100, "windowMs": 1000}
    assert shown["concurrency"] == 5
    assert shown["taskTypes"]["sleep"]["concurrency"] == 2
    assert shown["taskTypes"]["echo"]["rate"] == {"max": 1, "windowMs": 60000}
    assert shown["usage"] == {"running": 0, "startedInWindow": 0}
    audit = (await client.get("/api/audit")).json()["items"]
    assert audit[0]["action"] == "limits"
    lifted = await client.put("/api/queues/default/limits", json={})
    assert lifted.json()["taskTypes"] == {}
    assert lifted.json()["concurrency"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"rate": {"max": 0, "windowMs": 10}}, "rate.max"),
        ({"rate": {"max": 1, "windowMs": 10**9}}, "rate.windowMs"),
        ({"rate": {"max": 1}}, "rate.windowMs"),
        ({"taskTypes": {"nope": {"concurrency": 1}}}, "taskTypes.nope"),
        ({"taskTypes": {"echo": {"concurrency": -1}}}, "taskTypes.echo.concurrency"),
        ({"concurrency": "5"}, "concurrency"),
    ],
)
async def test_bad_limits_are_422_naming_the_field(
    client: AsyncTestClient[Any], body: dict[str, Any], field: str
) -> None:
    response = await client.put("/api/queues/default/limits", json=body)
    assert response.status_code == 422, response.text
    assert field in (response.json().get("fields") or {}), response.json()


async def test_an_unknown_queue_is_422(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/api/queues/elsewhere/limits")
    assert response.status_code == 422
    assert "queue" in response.json()["fields"]


async def test_a_rate_lifted_leaves_no_window_behind(
    store: RedisStore, limits: RedisFlowLimits, redis: Redis
) -> None:
    rate = Limit(rate=Rate(5, 1_000))
    await limits.set("default", QueueLimits(rate, {"echo": rate}))
    await enqueue(store, "echo", "echo")
    assert len((await claim(store, 5, T0)).tasks) == 2
    assert await redis.exists("conveyor:{default}:starts:queue") == 1
    assert await redis.exists("conveyor:{default}:starts:type:echo") == 1
    await limits.set("default", QueueLimits(Limit(concurrency=3)))
    assert await redis.exists("conveyor:{default}:starts:queue") == 0
    assert await redis.exists("conveyor:{default}:starts:type:echo") == 0
