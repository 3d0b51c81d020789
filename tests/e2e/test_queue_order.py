"""A worker serving two busy queues: strict order, and weighted round robin (`a=3,b=1`)."""

from __future__ import annotations

import asyncio
import time

import redis

from domain.task import Task, TaskStatus
from infrastructure.redis.client import create_blocking_redis, create_redis
from infrastructure.redis.keys import keys_of
from tests.conftest import TEST_REDIS_URL
from tests.e2e.conftest import Cluster, wait_until

PER_QUEUE = 300
QUEUES = "default,heavy,light"


async def enqueue_both() -> None:
    """PER_QUEUE ready echo tasks in `heavy` and in `light`, before any worker runs."""
    from tests.stores import RedisStore  # noqa: PLC0415 - its clients live on this loop

    client, blocking = create_redis(TEST_REDIS_URL), create_blocking_redis(TEST_REDIS_URL)
    store = RedisStore(client, blocking, 60_000)
    now = int(time.time() * 1000)
    try:
        for queue in ("heavy", "light"):
            await store.enqueue(
                [
                    Task(
                        id=f"{queue}-{n}",
                        name="echo",
                        payload={},
                        queue=queue,
                        created_at=now,
                        run_at=now,
                    )
                    for n in range(PER_QUEUE)
                ]
            )
    finally:
        await store.aclose()
        await client.aclose()
        await blocking.aclose()


def start_times(cluster: Cluster, spec: str) -> dict[str, list[int]]:
    """Each queue's tasks' start times, once a worker serving `spec` ran them all."""
    asyncio.run(enqueue_both())
    cluster.worker("--queues", spec, "--concurrency", "4", env={"QUEUES": QUEUES})
    client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    try:
        completed = [keys_of(q).state(TaskStatus.COMPLETED) for q in ("heavy", "light")]
        wait_until(
            lambda: sum(client.zcard(key) for key in completed) == 2 * PER_QUEUE,
            timeout_s=60,
            what="every task",
        )
        return {
            queue: [
                int(client.hget(keys_of(queue).task(f"{queue}-{n}"), "started_at") or 0)
                for n in range(PER_QUEUE)
            ]
            for queue in ("heavy", "light")
        }
    finally:
        client.close()


def test_weights_split_the_starts_and_starve_no_queue(cluster: Cluster) -> None:
    started = start_times(cluster, "heavy=3,light")
    heavy_done = max(started["heavy"])
    light_meanwhile = sum(1 for at in started["light"] if at < heavy_done)
    # While both had work, light started one task for three of heavy's.
    assert PER_QUEUE / 3 * 0.8 <= light_meanwhile <= PER_QUEUE / 3 * 1.2, light_meanwhile
    # ... from the start: its first task among the first few.
    starts = sorted((at, queue) for queue, times in started.items() for at in times)
    first_starts = starts[:8]
    assert "light" in {queue for _, queue in first_starts}, first_starts


def test_strict_order_serves_the_second_queue_only_once_the_first_is_empty(
    cluster: Cluster,
) -> None:
    started = start_times(cluster, "heavy,light")
    assert min(started["light"]) >= max(started["heavy"])
