"""RedisViews: ITaskViews on Redis (a task by id, listings and search, stats, batches)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from redis.asyncio import Redis

from domain.errors import TaskNotFound
from domain.task import Task, TaskStatus, check_configured_queue
from domain.values import MINUTE_MS, MINUTES_KEPT, MinuteCount, QueueStats, TaskPage, TaskQuery
from infrastructure.redis import codec
from infrastructure.redis.keys import batch, keys_of, task_owner
from infrastructure.redis.reachable import reachable
from infrastructure.redis.scan import (
    Scan,
    cursor_bound,
    decode_id_cursor,
    encode_cursor,
    encode_id_cursor,
    is_id_cursor,
)
from infrastructure.redis.search import task_tokens, words

MAX_OFFSET = 10_000  # deeper pages go by cursor
_TIE_SLACK = 8  # entries of one score beyond a cursor (scores are unique within a queue)


class RedisViews:
    """Reads over the configured `queues`: a listing or stats never ask Redis which
    queues exist, so no request can grow what they cover."""

    def __init__(self, client: Redis, queues: Sequence[str]) -> None:
        self._redis = client
        self._queues = sorted(set(queues))

    async def queues(self) -> list[str]:
        return self._queues

    def _covered(self, query: TaskQuery) -> list[str]:
        """The queues a listing reads: its `queue` filter, which must be configured."""
        if query.queue is None:
            return self._queues
        check_configured_queue(query.queue, self._queues)
        return [query.queue]

    @reachable
    async def get(self, task_id: str, queue: str | None = None) -> Task:
        """By the id index (one lookup, whatever the number of queues), or in `queue`."""
        if queue is None:
            queue = cast(str | None, await self._redis.get(task_owner(task_id)))
        found = await self.members([(queue, task_id)]) if queue else []
        if not found:
            raise TaskNotFound(task_id)
        return found[0]

    @reachable
    async def batch(self, batch_id: str) -> list[Task]:
        members = cast(list[str], await self._redis.lrange(batch(batch_id), 0, -1))
        if not members:
            raise TaskNotFound(batch_id)
        return await self.members(member.split("\t", 1) for member in members)

    async def members(self, pairs: Iterable[Sequence[str]]) -> list[Task]:
        """The tasks at these (queue, id) places, in order; gone ones left out."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue, task_id in pairs:
                pipe.hgetall(keys_of(queue).task(task_id))
            found = await pipe.execute()
        return [codec.decode(fields) for fields in found if fields]

    @reachable
    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        text = (query.search or "").strip()
        if text:  # a search of only whitespace is no search
            return await self._search(query, text)
        sources = await self._index_sources(query)
        if query.created_by is not None:  # no index by creator: the capped scan of a search
            return await Scan(self._redis, query, self._matches).run(sources, tokens=[], text=None)
        low, high = _score_window(query)
        bound = cursor_bound(query.cursor, high)
        fetch = min(query.offset, MAX_OFFSET) + query.limit + 1 + _TIE_SLACK
        async with self._redis.pipeline(transaction=False) as pipe:
            for _, key in sources:
                pipe.zrevrangebyscore(key, bound.score, low, start=0, num=fetch, withscores=True)
                pipe.zcount(key, low, high)
            replies = await pipe.execute()
        merged = sorted(
            (
                (score, task_id, queue)
                for (queue, _), entries in zip(sources, replies[::2], strict=True)
                for task_id, score in entries
                if bound.admits(score, task_id, queue)
            ),
            reverse=True,
        )
        window = merged[min(query.offset, MAX_OFFSET) :][: query.limit + 1]
        page = window[: query.limit]
        items = await self.members((queue, task_id) for _, task_id, queue in page)
        more = len(window) > query.limit
        cursor = encode_cursor(*page[-1]) if more and page else None
        return TaskPage(items, sum(replies[1::2]), cursor)

    async def _index_sources(self, query: TaskQuery) -> list[tuple[str, str]]:
        """(queue, index key) for every status and name the query covers."""
        queues = self._covered(query)
        statuses = [query.status] if query.status else list(TaskStatus)
        names = (
            await self._names(queues) if query.name is None else {q: [query.name] for q in queues}
        )
        return [
            (queue, keys_of(queue).index(status, name))
            for queue in queues
            for name in names[queue]
            for status in statuses
        ]

    async def _names(self, queues: Sequence[str]) -> dict[str, list[str]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.smembers(keys_of(queue).names)
            found = await pipe.execute()
        return {queue: sorted(names) for queue, names in zip(queues, found, strict=True)}

    async def _search(self, query: TaskQuery, text: str) -> TaskPage:
        queues = self._covered(query)
        if query.created_by is not None:
            # The id and word indexes count every creator's tasks: a producer's search
            # scans for its own, matching ids by prefix as the indexes would.
            return await Scan(self._redis, query, self._matches).run(
                await self._index_sources(query), tokens=[], text=text.lower()
            )
        if query.cursor is None or is_id_cursor(query.cursor):
            by_id = await self._id_prefix(queues, text, query)
            if by_id is not None:
                return by_id
        tokens = words(text)
        scan = Scan(self._redis, query, self._matches)
        if tokens and await self._all_indexed(queues, tokens):
            rare = _rarest(tokens)
            sources = [(q, keys_of(q).token(rare)) for q in queues]
            others = [token for token in dict.fromkeys(tokens) if token != rare]
            return await scan.run(sources, tokens=others, text=None)
        return await scan.run(await self._index_sources(query), tokens=[], text=text.lower())

    async def _id_prefix(
        self, queues: Sequence[str], text: str, query: TaskQuery
    ) -> TaskPage | None:
        """The page of tasks whose id starts with `text`, by (id, queue) descending; None
        when no id does (and no id cursor continues such a search): search by words then.

        `total` and `offset` count every id match; the other filters only thin the page
        (it may hold fewer than `limit` tasks while the cursor goes on)."""
        after = decode_id_cursor(query.cursor) if query.cursor is not None else None
        low, high = f"[{text}", f"{text}\xff"
        skip = min(query.offset, MAX_OFFSET)
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                key = keys_of(queue).ids
                pipe.zlexcount(key, low, f"[{high}")
                pipe.zrevrangebylex(
                    key, _lex_before(after, queue, high), low, 0, skip + query.limit + 1
                )
            replies = await pipe.execute()
        total = sum(replies[::2])
        if total == 0 and after is None:
            return None
        merged = sorted(
            (
                (task_id, queue)
                for queue, ids in zip(queues, replies[1::2], strict=True)
                for task_id in ids
                if after is None or (task_id, queue) < after
            ),
            reverse=True,
        )
        window = merged[skip:][: query.limit + 1]
        page = window[: query.limit]
        tasks = await self.members((queue, task_id) for task_id, queue in page)
        items = [task for task in tasks if _filtered_in(task, query)]
        cursor = encode_id_cursor(*page[-1]) if len(window) > query.limit and page else None
        return TaskPage(items, total, cursor)

    async def _all_indexed(self, queues: Sequence[str], tokens: Sequence[str]) -> bool:
        keys = [keys_of(queue).token(token) for queue in queues for token in tokens]
        present = {key for key, count in zip(keys, await self._exists(keys), strict=True) if count}
        return all(any(keys_of(q).token(t) in present for q in queues) for t in tokens)

    async def _exists(self, keys: Sequence[str]) -> list[int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(key)
            return cast(list[int], await pipe.execute())

    @staticmethod
    def _matches(task: Task, query: TaskQuery, text: str | None) -> bool:
        if not _filtered_in(task, query):
            return False
        if text is None:
            return True
        if query.created_by is not None and _indexed_match(task, text):
            return True
        haystack = f"{task.name} {codec.encode_json(task.payload)}".lower()
        return text in haystack

    @reachable
    async def stats(self, now: int) -> list[QueueStats]:
        queues = await self.queues()
        names = await self._names(queues)
        minute = now // MINUTE_MS
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                _queue_stats_commands(pipe, queue, names[queue], minute)
            replies: list[Any] = await pipe.execute()
        stats = []
        for queue in queues:
            used = _TYPES_AT + 7 * len(names[queue])
            block, replies = replies[:used], replies[used:]
            stats.append(_queue_stats(queue, names[queue], block, now))
        return stats


def _lex_before(after: tuple[str, str] | None, queue: str, high: str) -> str:
    """The ZREVRANGEBYLEX upper bound of `queue`'s ids below the id cursor `after`."""
    if after is None or after[0] > high:
        return f"[{high}"
    task_id, after_queue = after
    return f"[{task_id}" if queue < after_queue else f"({task_id}"


def _indexed_match(task: Task, text: str) -> bool:
    """What the id and word indexes would find: an id prefix, or every word of `text`."""
    if task.id.lower().startswith(text):
        return True
    wanted = set(words(text))
    return bool(wanted) and wanted <= set(task_tokens(task.name, task.payload))


def _rarest(tokens: Sequence[str]) -> str:
    return max(tokens, key=len)  # longer words are rarer, as a rule; ZCARD would cost a trip


def _filtered_in(task: Task, query: TaskQuery) -> bool:
    checks = (
        query.status is None or task.status is query.status,
        query.name is None or task.name == query.name,
        query.created_from is None or task.created_at >= query.created_from,
        query.created_to is None or task.created_at <= query.created_to,
        query.created_by is None or task.created_by == query.created_by,
    )
    return all(checks)


def _score_window(query: TaskQuery) -> tuple[float, float]:
    """Index scores are creation time (ms) * 1000 plus a sequence: scale the bounds."""
    low = float("-inf") if query.created_from is None else query.created_from * 1000
    high = float("inf") if query.created_to is None else query.created_to * 1000 + 999
    return low, high


_TYPES_AT = 9  # where a queue's block of stats replies has its task types' parts


def _minutes(minute: int) -> range:
    return range(minute - MINUTES_KEPT, minute + 1)


def _queue_stats_commands(pipe: Any, queue: str, names: Sequence[str], minute: int) -> None:
    keys = keys_of(queue)
    for status in TaskStatus:
        pipe.zcard(keys.state(status))
    pipe.hget(keys.meta, "paused")
    # MGET by name: a Cluster's pipeline refuses its mget() (keys may span slots); these
    # share the queue's slot.
    pipe.execute_command("MGET", *(keys.finished(m) for m in _minutes(minute)))
    pipe.execute_command("MGET", *(keys.failures(m) for m in _minutes(minute)))
    for name in names:
        for status in TaskStatus:
            pipe.zcard(keys.index(status, name))
        pipe.lrange(keys.durations(name), 0, -1)


def _queue_stats(queue: str, names: Sequence[str], block: list[Any], now: int) -> QueueStats:
    statuses = list(TaskStatus)
    counts = dict(zip(statuses, (int(n) for n in block[:6]), strict=True))
    buckets, failures = ([int(n or 0) for n in replies] for replies in block[7:9])
    fraction = (now % MINUTE_MS) / MINUTE_MS  # of the current minute gone by
    last_minute = buckets[-1] + buckets[-2] * (1 - fraction)
    last_hour = sum(buckets[1:]) + buckets[0] * (1 - fraction)
    type_counts: dict[str, dict[TaskStatus, int]] = {}
    durations: dict[str, list[int]] = {}
    for position, name in enumerate(names):
        part = block[_TYPES_AT + 7 * position : _TYPES_AT + 7 * (position + 1)]
        type_counts[name] = dict(zip(statuses, (int(n) for n in part[:6]), strict=True))
        durations[name] = [int(value) for value in part[6]]
    # Tasks parked at their type's flow limit are waiting but out of the wait set; the
    # per-type indexes hold every waiting task.
    parked_too = sum(types[TaskStatus.WAITING] for types in type_counts.values())
    counts[TaskStatus.WAITING] = max(counts[TaskStatus.WAITING], parked_too)
    return QueueStats(
        queue=queue,
        paused=block[6] == "1",
        counts=counts,
        type_counts=type_counts,
        durations_ms=durations,
        finished_last_minute=round(last_minute),
        finished_last_hour=round(last_hour),
        per_minute=_series(now // MINUTE_MS, buckets, failures),
    )


def _series(minute: int, finished: list[int], failed: list[int]) -> tuple[MinuteCount, ...]:
    minutes = _minutes(minute)
    return tuple(
        MinuteCount(m * MINUTE_MS, n, f) for m, n, f in zip(minutes, finished, failed, strict=True)
    )
