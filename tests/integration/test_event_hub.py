"""EventHub on a real Redis: its feeds counted and capped, a reader that falls behind dropped,
a broken subscription ending every feed (and its waiters subscribing again), shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from application.watch_events import ChangeDigest
from domain.errors import QueueUnavailable, TooManyStreams
from domain.ports import EventFeed
from domain.task import TaskStatus
from domain.values import TaskEvent
from infrastructure.embedded_redis import EmbeddedRedis
from infrastructure.redis.client import create_blocking_redis, create_redis
from infrastructure.redis.events import EventHub
from tests.contract.queue_support import QUEUE, T0, WINDOW_MS, claim_one, make_task
from tests.e2e.conftest import free_port
from tests.fakes import eventually
from tests.stores import RedisStore

WAIT_S = 10.0


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedRedis, Redis, Redis]]:
    """A Redis of the test's own, to stop and to cut connections of, with two clients."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port())
    server.start()
    client, blocking = create_redis(server.url), create_blocking_redis(server.url)
    try:
        yield server, client, blocking
    finally:
        await client.aclose()
        await blocking.aclose()
        server.stop()


async def read_until(feed: EventFeed, count: int) -> list[TaskEvent]:
    """The first `count` events of QUEUE the feed delivers."""
    seen: list[TaskEvent] = []
    while len(seen) < count:
        batch = await feed.next_batch(WAIT_S)
        assert batch, f"no event within {WAIT_S} s (feed ended: {feed.ended})"
        seen += [event for event in batch if event.queue == QUEUE]
    return seen


async def test_feeds_are_counted_capped_and_forgotten_once_closed(redis: Redis) -> None:
    hub = EventHub(redis, max_streams=2)
    try:
        first, second = await hub.stream(), await hub.stream()
        assert hub.feeds == 2
        with pytest.raises(TooManyStreams):
            await hub.stream()
        first.close()
        assert (hub.feeds, first.ended) == (1, "closed")
        third = await hub.stream()
        assert hub.feeds == 2
    finally:
        await hub.aclose()
    assert (second.ended, third.ended, hub.feeds) == ("shutdown", "shutdown", 0)


async def test_a_quiet_feed_answers_an_empty_batch_at_its_timeout(redis: Redis) -> None:
    hub = EventHub(redis)
    try:
        feed = await hub.stream()
        assert await feed.next_batch(0.05) == []
        assert feed.ended is None
    finally:
        await hub.aclose()


async def test_a_reader_that_falls_behind_is_dropped_and_the_others_read_on(
    redis: Redis, blocking_redis: Redis
) -> None:
    hub = EventHub(redis, buffer=10)
    queue = RedisStore(redis, blocking_redis, WINDOW_MS, events=hub)
    try:
        stalled, reader = await queue.events(), await queue.events()
        reading = asyncio.create_task(read_until(reader, 100))
        tasks = [make_task(f"t{n:03}") for n in range(100)]
        await queue.enqueue(tasks)  # 100 events at once: ten times what a feed may lag

        seen = await asyncio.wait_for(reading, WAIT_S)
        assert [event.task_id for event in seen] == [task.id for task in tasks]
        await eventually(lambda: stalled.ended == "lagged")
        assert hub.feeds == 1  # the reader's: nothing more is done for the stalled one
        assert await stalled.next_batch(0.01) == []
    finally:
        await queue.aclose()


async def test_a_dropped_subscription_ends_every_feed_and_waiters_wait_on(
    own_redis: tuple[EmbeddedRedis, Redis, Redis],
) -> None:
    _, client, blocking = own_redis
    hub = EventHub(client)
    queue = RedisStore(client, blocking, WINDOW_MS, events=hub)
    try:
        await queue.enqueue([make_task("t1")])
        active = await claim_one(queue)
        feed = await queue.events()
        waiting = asyncio.create_task(queue.wait_finished(active, int(WAIT_S * 1000)))
        await eventually(lambda: hub.waiting == 1)

        # redis-py reconnects and subscribes again by itself: only the events in between
        # are lost, and nothing says so but the feed's end.
        await client.client_kill_filter(_type="pubsub")
        await eventually(lambda: feed.ended == "lost")

        assert not waiting.done()  # woken, it read its task again, still active: it waits on
        await queue.settle(active.complete(None, T0 + 1))
        assert (await asyncio.wait_for(waiting, WAIT_S)).status is TaskStatus.COMPLETED
        fresh = await queue.events()
        await queue.enqueue([make_task("t2")])
        assert [event.task_id for event in await read_until(fresh, 1)] == ["t2"]
    finally:
        await queue.aclose()


async def test_a_redis_restart_ends_every_feed_and_a_new_one_hears_events(
    own_redis: tuple[EmbeddedRedis, Redis, Redis],
) -> None:
    server, client, blocking = own_redis
    queue = RedisStore(client, blocking, WINDOW_MS, events=EventHub(client))
    try:
        feed = await queue.events()
        server.stop()
        await eventually(lambda: feed.ended == "lost", timeout_s=WAIT_S)
        with pytest.raises(QueueUnavailable):
            await queue.events()  # subscribing needs Redis: a 503, not a silent feed
        server.start()

        fresh = await queue.events()
        await queue.enqueue([make_task("after")])
        assert [event.task_id for event in await read_until(fresh, 1)] == ["after"]
    finally:
        await queue.aclose()


async def test_at_shutdown_every_feed_ends_and_new_ones_are_born_ended(redis: Redis) -> None:
    hub = EventHub(redis)
    try:
        feed = await hub.stream()
        waiting = asyncio.create_task(feed.next_batch(WAIT_S))
        hub.end_streams()
        assert await asyncio.wait_for(waiting, WAIT_S) == []
        late = await hub.stream()
        assert (feed.ended, late.ended, hub.feeds) == ("shutdown", "shutdown", 0)
    finally:
        await hub.aclose()


async def test_summaries_of_a_burst_come_through_one_feed_of_the_hub(
    redis: Redis, blocking_redis: Redis
) -> None:
    hub = EventHub(redis, buffer=10)
    queue = RedisStore(redis, blocking_redis, WINDOW_MS, events=hub)
    digest = ChangeDigest(queue, max_readers=20, every_s=0.05, max_ids=5)
    try:
        readers = [await digest.subscribe() for _ in range(20)]
        assert hub.feeds == 1
        await queue.enqueue([make_task(f"t{n:03}") for n in range(100)])  # 10x the buffer

        for reader in readers:
            counted, ids = 0, []
            while counted < 100:
                (changes,) = await reader.next_batch(WAIT_S)
                counted += changes.count
                ids += changes.ids
                assert changes.queues == (QUEUE,)
            assert counted == 100
            assert ids[:5] == ["t000", "t001", "t002", "t003", "t004"]
    finally:
        await digest.aclose()
        await queue.aclose()


async def test_summaries_end_lost_with_the_subscription_and_shutdown_with_the_process(
    own_redis: tuple[EmbeddedRedis, Redis, Redis],
) -> None:
    _, client, blocking = own_redis
    hub = EventHub(client)
    queue = RedisStore(client, blocking, WINDOW_MS, events=hub)
    digest = ChangeDigest(queue, max_readers=5)
    try:
        reader = await digest.subscribe()
        await client.client_kill_filter(_type="pubsub")
        assert await reader.next_batch(WAIT_S) == []
        assert reader.ended == "lost"

        again = await digest.subscribe()  # on a fresh feed of the hub
        await queue.enqueue([make_task("after")])
        assert (await again.next_batch(WAIT_S))[0].ids == ("after",)
        hub.end_streams()
        assert await again.next_batch(WAIT_S) == []
        assert again.ended == "shutdown"
        assert (await digest.subscribe()).ended == "shutdown"
    finally:
        await digest.aclose()
        await queue.aclose()
