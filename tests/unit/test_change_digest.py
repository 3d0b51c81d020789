"""ChangeDigest: the transitions summed up for any number of readers, from one feed of the
store (the in-memory store here; tests/integration/test_event_hub.py runs it on Redis)."""

from __future__ import annotations

import asyncio

import pytest

from application.watch_events import ChangeDigest, ChangeFeed, TaskChanges
from domain.errors import TooManyStreams
from domain.ports import EventFeed
from tests.contract.queue_support import QUEUE, WINDOW_MS, make_task
from tests.fakes import InMemoryTaskQueue

WAIT_S = 5.0


class CountedStore(InMemoryTaskQueue):
    """The in-memory store, keeping the feeds it opened."""

    def __init__(self) -> None:
        super().__init__(WINDOW_MS, queues=(QUEUE, "other"))
        self.opened: list[EventFeed] = []

    async def events(self) -> EventFeed:
        feed = await super().events()
        self.opened.append(feed)
        return feed

    async def add(self, *ids: str, queue: str = QUEUE) -> None:
        await self.enqueue([make_task(task_id, queue=queue) for task_id in ids])


async def next_changes(reader: ChangeFeed) -> TaskChanges:
    (changes,) = await reader.next_batch(WAIT_S)
    return changes


def digest_of(
    store: CountedStore, *, max_readers: int = 10, every_s: float = 0.05, max_ids: int = 100
) -> ChangeDigest:
    return ChangeDigest(store, max_readers=max_readers, every_s=every_s, max_ids=max_ids)


async def test_readers_share_one_feed_and_each_gets_the_same_summary() -> None:
    store = CountedStore()
    digest = digest_of(store, max_ids=3)
    first, second = await digest.subscribe(), await digest.subscribe()
    try:
        await store.add("a", "b")
        await store.add("c", "d", queue="other")
        await store.add("a")  # already there: no transition

        wanted = TaskChanges(4, (QUEUE, "other"), ("a", "b", "c"), more=True)
        assert await collect(first, 4) == await collect(second, 4) == wanted
        assert len(store.opened) == 1
    finally:
        first.close()
        second.close()
        await digest.aclose()


async def collect(reader: ChangeFeed, count: int) -> TaskChanges:
    """The summaries the reader gets until they hold `count` transitions, as one."""
    parts = [await next_changes(reader)]
    while sum(part.count for part in parts) < count:
        parts.append(await next_changes(reader))
    ids = tuple(dict.fromkeys(task_id for part in parts for task_id in part.ids))
    return TaskChanges(
        count=sum(part.count for part in parts),
        queues=tuple(sorted({queue for part in parts for queue in part.queues})),
        ids=ids[:3],
        more=any(part.more for part in parts) or len(ids) > 3,
    )


async def test_summaries_come_at_most_once_per_period() -> None:
    store = CountedStore()
    digest = digest_of(store, every_s=0.3)
    reader = await digest.subscribe()
    loop = asyncio.get_running_loop()
    try:
        await store.add("a")
        first = await next_changes(reader)
        got_first = loop.time()
        await store.add("b")
        await store.add("c")
        second = await next_changes(reader)

        assert loop.time() - got_first >= 0.28
        assert (first.ids, second.ids, second.count) == (("a",), ("b", "c"), 2)
    finally:
        reader.close()
        await digest.aclose()


async def test_a_reader_that_does_not_read_gets_what_it_missed_in_one_summary() -> None:
    store = CountedStore()
    digest = digest_of(store, every_s=0.01, max_ids=2)
    reading, behind = await digest.subscribe(), await digest.subscribe()
    try:
        for task_id in ("a", "b", "c"):
            await store.add(task_id)
            assert (await next_changes(reading)).ids == (task_id,)

        assert await behind.next_batch(WAIT_S) == [TaskChanges(3, (QUEUE,), ("a", "b"), True)]
    finally:
        reading.close()
        behind.close()
        await digest.aclose()


async def test_the_last_reader_leaving_closes_the_feed_and_the_next_opens_another() -> None:
    store = CountedStore()
    digest = digest_of(store)
    first, second = await digest.subscribe(), await digest.subscribe()
    first.close()
    assert store.opened[0].ended is None  # one reader still reads
    second.close()
    assert (store.opened[0].ended, digest.readers) == ("closed", 0)

    third = await digest.subscribe()
    try:
        await store.add("a")
        assert (await next_changes(third)).ids == ("a",)
        assert len(store.opened) == 2
    finally:
        third.close()
        await digest.aclose()


async def test_readers_beyond_the_limit_are_refused() -> None:
    digest = digest_of(CountedStore(), max_readers=2)
    readers = [await digest.subscribe(), await digest.subscribe()]
    with pytest.raises(TooManyStreams):
        await digest.subscribe()
    readers.pop().close()
    readers.append(await digest.subscribe())
    await digest.aclose()
    assert [reader.ended for reader in readers] == ["shutdown", "shutdown"]


async def test_readers_end_with_the_reason_their_feed_ended() -> None:
    store = CountedStore()
    digest = digest_of(store)
    reader = await digest.subscribe()
    store.opened[0].close()  # as a lost subscription ends it: the store's side

    assert await reader.next_batch(WAIT_S) == []
    assert reader.ended == "closed"
    await digest.aclose()


class Stopping(CountedStore):
    """A store whose process is stopping: every feed it opens has ended."""

    async def events(self) -> EventFeed:
        feed = await super().events()
        feed.close()
        return feed


async def test_a_reader_subscribing_while_the_process_stops_ends_at_once() -> None:
    digest = digest_of(Stopping())
    reader = await digest.subscribe()
    assert (reader.ended, await reader.next_batch(WAIT_S)) == ("closed", [])
    assert digest.readers == 0
