"""The live feed of task transitions: each one (WatchEvents), or what changed, summed up at
most once a second for any number of readers (WatchChanges, a dashboard's feed)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from domain.errors import TooManyStreams
from domain.ports import EventFeed, ITaskFeed
from domain.values import TaskEvent

EVERY_S = 1.0  # a summary at most this often
MAX_IDS = 100  # task ids a summary names; beyond them it says `more`
_IDLE_S = 60.0  # how long the digest waits for a transition when nothing is pending


class WatchEvents:
    def __init__(self, queue: ITaskFeed) -> None:
        self._queue = queue

    async def execute(self) -> EventFeed:
        """Subscribed once it returns; `TooManyStreams` when this process serves as many
        feeds as it may."""
        return await self._queue.events()


@dataclass(frozen=True, slots=True)
class TaskChanges:
    """What changed since the previous summary: `count` transitions, of tasks in `queues`;
    `ids` names up to MAX_IDS of the tasks, and `more` says that others changed too."""

    count: int
    queues: tuple[str, ...]
    ids: tuple[str, ...]
    more: bool


class ChangeFeed:
    """One reader's summaries (the shape of an EventFeed, a summary for an event): a
    reader slower than the digest gets the summaries it missed merged into one, so it
    never falls behind."""

    def __init__(
        self, pump: _Pump | None = None, ended: str | None = None, max_ids: int = MAX_IDS
    ) -> None:
        self._pump = pump
        self._max_ids = max_ids
        self._pending: TaskChanges | None = None
        self._arrived = asyncio.Event()
        self.ended = ended

    async def next_batch(self, timeout_s: float) -> list[TaskChanges]:
        """The summary of what changed since the previous call, waiting up to `timeout_s`
        for one: [] when nothing changed in time, or once the feed has ended."""
        if self._pending is None and self.ended is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout_s)
        self._arrived.clear()
        changes, self._pending = self._pending, None
        return [changes] if changes is not None and self.ended is None else []

    def close(self) -> None:
        self.end("closed")

    def put(self, changes: TaskChanges) -> None:
        if self._pending is not None:
            changes = _merged(self._pending, changes, self._max_ids)
        self._pending = changes
        self._arrived.set()

    def end(self, reason: str) -> None:
        if self.ended is not None:
            return
        self.ended = reason
        self._arrived.set()
        if self._pump is not None:
            self._pump.leave(self)


class ChangeDigest:
    """Every transition the store pushes, read through one of its feeds however many
    readers there are, and summed up at most once per `every_s` (the first change after a
    quiet spell at once) for all of them: a reader costs the process a summary a second,
    not a message per transition. The feed is opened for the first reader and closed after
    the last; when it ends (a subscription lost, the process stopping) every reader ends
    with its reason. At most `max_readers` readers at once."""

    def __init__(
        self,
        store: ITaskFeed,
        *,
        max_readers: int,
        every_s: float = EVERY_S,
        max_ids: int = MAX_IDS,
    ) -> None:
        self._store = store
        self._max_readers = max_readers
        self._every_s = every_s
        self._max_ids = max_ids
        self._pump: _Pump | None = None
        self._lock = asyncio.Lock()

    @property
    def readers(self) -> int:
        return 0 if self._pump is None else len(self._pump.readers)

    async def subscribe(self) -> ChangeFeed:
        """Subscribed once it returns: every change from then on is in a summary."""
        async with self._lock:
            pump = self._pump
            if pump is None or pump.stopped:
                source = await self._store.events()  # TooManyStreams, QueueUnavailable
                if source.ended is not None:  # the process is stopping
                    return ChangeFeed(ended=source.ended)
                pump = self._pump = _Pump(source, self._every_s, self._max_ids)
            elif len(pump.readers) >= self._max_readers:
                raise TooManyStreams(self._max_readers)
            return pump.join()

    async def aclose(self) -> None:
        if self._pump is not None:
            await self._pump.stop("shutdown")


class WatchChanges:
    def __init__(self, digest: ChangeDigest) -> None:
        self._digest = digest

    async def execute(self) -> ChangeFeed:
        """Subscribed once it returns; `TooManyStreams` when this process serves as many
        readers as it may."""
        return await self._digest.subscribe()


class _Pump:
    """One feed of the store, read for a set of readers until the last one leaves."""

    def __init__(self, source: EventFeed, every_s: float, max_ids: int) -> None:
        self.readers: set[ChangeFeed] = set()
        self.stopped = False
        self._source = source
        self._every_s = every_s
        self._max_ids = max_ids
        self._task = asyncio.create_task(self._run())

    def join(self) -> ChangeFeed:
        reader = ChangeFeed(self, max_ids=self._max_ids)
        self.readers.add(reader)
        return reader

    def leave(self, reader: ChangeFeed) -> None:
        self.readers.discard(reader)
        if not self.readers and not self.stopped:
            self.stopped = True
            self._source.close()
            self._task.cancel()

    async def stop(self, reason: str) -> None:
        for reader in list(self.readers):
            reader.end(reason)
        self.stopped = True
        self._source.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tally = _Tally(self._max_ids)
        due = loop.time()  # the earliest moment of the next summary
        try:
            while self._source.ended is None:
                wait = max(due - loop.time(), 0.0) if tally.count else _IDLE_S
                tally.add(await self._source.next_batch(wait))
                if tally.count and loop.time() >= due:
                    changes, tally = tally.summary(), _Tally(self._max_ids)
                    for reader in self.readers:
                        reader.put(changes)
                    due = loop.time() + self._every_s
        finally:
            self.stopped = True
            for reader in list(self.readers):
                reader.end(self._source.ended or "lost")


class _Tally:
    """The transitions since the last summary."""

    def __init__(self, max_ids: int) -> None:
        self.count = 0
        self._max_ids = max_ids
        self._queues: dict[str, None] = {}
        self._ids: dict[str, None] = {}
        self._more = False

    def add(self, events: Iterable[TaskEvent]) -> None:
        for event in events:
            self.count += 1
            self._queues[event.queue] = None
            if event.task_id in self._ids:
                continue
            if len(self._ids) < self._max_ids:
                self._ids[event.task_id] = None
            else:
                self._more = True

    def summary(self) -> TaskChanges:
        return TaskChanges(self.count, tuple(sorted(self._queues)), tuple(self._ids), self._more)


def _merged(first: TaskChanges, then: TaskChanges, max_ids: int) -> TaskChanges:
    """Two summaries as one, naming at most `max_ids` tasks."""
    ids = tuple(dict.fromkeys(first.ids + then.ids))
    return TaskChanges(
        count=first.count + then.count,
        queues=tuple(sorted({*first.queues, *then.queues})),
        ids=ids[:max_ids],
        more=first.more or then.more or len(ids) > max_ids,
    )
