"""Admission and retention on a redis-server of the test's own (its counters and memory
are the test's alone): no limit costs no command; Redis out of memory refuses an enqueue
whole (a 503, nothing written) and a worker's outcome is written whole or not at all;
with a count to keep, memory stays flat under steady load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from application.clock import system_clock
from application.sweep_finished import Retention, SweepFinished
from domain.admission import DepthLimits
from domain.errors import QueueFull, StoreFull
from domain.task import Task, TaskStatus
from domain.values import EnqueueOutcome
from infrastructure.redis.client import create_blocking_redis, create_redis
from infrastructure.redis.keys import keys_of
from tests.conftest import api_client
from tests.fakes import eventually
from tests.freezable_redis import FreezableRedis, freezable_redis
from tests.stores import RedisStore

LEASE_MS = 30_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FreezableRedis]:
    with freezable_redis(tmp_path / "redis") as started:
        yield started


@pytest.fixture
async def own(server: FreezableRedis) -> AsyncIterator[Redis]:
    client = create_redis(server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def stores(own: Redis, server: FreezableRedis) -> AsyncIterator[list[RedisStore]]:
    """Stores a test makes over its own server, closed after it."""
    blocking = create_blocking_redis(server.url)
    made: list[RedisStore] = []
    yield made
    for store in made:
        await store.aclose()
    await blocking.aclose()


def store_of(own: Redis, made: list[RedisStore], window_ms: int = 60_000, **kw: Any) -> RedisStore:
    made.append(RedisStore(own, own, window_ms, queues=("default", "other"), **kw))
    return made[-1]


def new(task_id: str, queue: str = "default", run_at: int | None = None) -> Task:
    now = int(time.time() * 1000)
    due = now if run_at is None else run_at
    status = Task.status_for(due, now)
    return Task(id=task_id, name="echo", payload={"n": 1}, created_at=now, run_at=due,
                status=status, queue=queue)  # fmt: skip


async def commands(own: Redis) -> dict[str, int]:
    stats = await own.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def test_without_a_limit_an_enqueue_sends_no_command_more(
    own: Redis, stores: list[RedisStore]
) -> None:
    free = store_of(own, stores)
    limited = store_of(own, stores, depth_limits=DepthLimits(1_000))
    await free.enqueue([new("warm-up")])  # loads the script

    await own.config_resetstat()
    for n in range(20):
        await free.enqueue([new(f"free-{n}")])
    await free.enqueue(
        [new(f"bulk-{n}", queue) for n in range(5) for queue in ("default", "other")]
    )
    sent_free = await commands(own)
    await own.config_resetstat()
    await limited.enqueue([new("limited")])
    sent_limited = await commands(own)

    assert sent_free["evalsha"] == 21, sent_free  # one script call per request
    assert "zcard" not in sent_free, sent_free  # no depth read
    assert sent_limited["zcard"] == 3, sent_limited  # waiting + delayed + active


async def test_no_concurrent_enqueues_pass_the_limit(own: Redis, stores: list[RedisStore]) -> None:
    limit = 25
    lanes = [store_of(own, stores, depth_limits=DepthLimits(limit)) for _ in range(4)]

    async def attempt(n: int) -> bool:
        try:
            await lanes[n % len(lanes)].enqueue([new(f"c{n}")])
        except QueueFull:
            return False
        return True

    admitted = await asyncio.gather(*(attempt(n) for n in range(100)))

    assert sum(admitted) == limit
    assert await own.zcard(keys_of("default").wait) == limit


async def fill_memory(own: Redis) -> int:
    """Write until Redis refuses: the number of keys written."""
    n = 0
    blob = "x" * 10_000
    while True:
        try:
            await own.set(f"fill:{n}", blob)
        except OutOfMemoryError:
            return n
        n += 1


async def keys_in(own: Redis) -> set[str]:
    return {key for key in await own.keys("*") if not key.startswith("fill:")}


@pytest.fixture
async def full_redis(own: Redis) -> AsyncIterator[Redis]:
    """The server at `maxmemory` with `noeviction`; room again when the test ends."""
    await own.config_set("maxmemory-policy", "noeviction")
    await own.config_set("maxmemory", str(int((await own.info("memory"))["used_memory"]) + 2**21))
    yield own
    await own.config_set("maxmemory", "0")


async def test_an_enqueue_redis_refuses_for_memory_is_a_503_that_wrote_nothing(
    full_redis: Redis, server: FreezableRedis, tmp_path: Path
) -> None:
    async with api_client(server.url, tmp_path / "files", queues="default,other") as client:
        assert (
            await client.post("/api/tasks", json={"taskName": "echo", "payload": {}})
        ).status_code == 202
        await fill_memory(full_redis)
        before = await keys_in(full_redis)

        one = await client.post("/api/tasks", json={"taskName": "echo", "payload": {"n": 1}})
        many = await client.post("/api/tasks/bulk", json={"tasks": [
            {"taskName": "echo", "payload": {"n": n}, "queue": queue}
            for n in range(50) for queue in ("default", "other")]})  # fmt: skip

        for refused in (one, many):
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "unavailable"
            assert refused.json()["detail"].startswith("Redis refuses writes (out of memory)")
        assert await keys_in(full_redis) == before  # not a key more, nor one changed
        assert await full_redis.zcard(keys_of("default").wait) == 1
        await full_redis.delete(*[f"fill:{n}" for n in range(40)])
        again = await client.post("/api/tasks", json={"taskName": "echo", "payload": {"n": 1}})
        assert again.status_code == 202


async def test_a_worker_facing_a_full_redis_loses_no_task(
    full_redis: Redis, stores: list[RedisStore]
) -> None:
    """A settle's first write frees memory (ZREM, or the lock's DEL), which Redis allows
    over `maxmemory`, so the whole outcome is written; a claim whose first write is refused
    (promoting a due task) raises StoreFull having written nothing."""
    store = store_of(full_redis, stores)
    now = int(time.time() * 1000)
    await store.enqueue([new("run"), new("later", run_at=now + 60_000)])
    (running,) = (await store.claim("default", "w1", 1, LEASE_MS, now)).tasks
    await fill_memory(full_redis)

    await store.settle(running.complete({"ok": True}, now + 1))
    assert (await store.get("run")).status is TaskStatus.COMPLETED
    with pytest.raises(StoreFull):
        await store.claim("default", "w1", 1, LEASE_MS, now + 120_000)  # "later" falls due
    assert (await store.get("later")).status is TaskStatus.DELAYED
    assert await full_redis.zscore(keys_of("default").delayed, "later") is not None


async def used_memory(own: Redis) -> int:
    return int((await own.info("memory"))["used_memory"])


async def run_round(store: RedisStore, sweep: SweepFinished, round_no: int, size: int) -> None:
    """`size` tasks enqueued, run to completion, and swept (as a worker's chores do)."""
    await store.enqueue([new(f"r{round_no}-{n}") for n in range(size)])
    now = int(time.time() * 1000)
    while claimed := (await store.claim("default", "w1", 200, LEASE_MS, now)).tasks:
        for task in claimed:
            await store.settle(task.complete({"n": task.id}, now))
    while await sweep.execute("default", 1_000) == 1_000:
        pass


async def test_memory_stays_flat_with_a_count_to_keep(own: Redis, stores: list[RedisStore]) -> None:
    window_ms, keep, size = 1_000, 200, 2_000
    store = store_of(own, stores, window_ms)
    sweep = SweepFinished(store, system_clock, Retention(completed_count=keep))
    completed = keys_of("default").state(TaskStatus.COMPLETED)
    start = await used_memory(own)

    await run_round(store, sweep, 0, size)
    assert await own.zcard(completed) == keep
    (swept,) = await store.enqueue([new("r0-0")])  # the oldest: swept, its id reserved
    assert swept.outcome is EnqueueOutcome.REMOVED
    # Without the sweep a round would have kept every task: that is what it costs.
    per_round = await used_memory(own) - start

    async def settled() -> bool:  # the reserved ids expired: a hash and an id entry per task
        return await own.dbsize() <= 2 * keep + 20  # and the queue's own few keys

    readings = []
    for round_no in range(1, 9):
        await run_round(store, sweep, round_no, size)
        assert await own.zcard(completed) == keep
        await eventually(settled, timeout_s=15)
        readings.append(await used_memory(own))

    # 16,000 tasks more, and what they left is less than an eighth of one round's cost
    # (the allocator's own tables settle within a few rounds).
    growth = max(readings) - readings[0]
    assert growth < per_round / 8, (readings, per_round)
