"""Storing new tasks: one script call for the whole request, whatever its queues."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from domain.admission import DepthLimits, finished_last_minute, retry_after_s
from domain.errors import QueueFull
from domain.task import Task
from domain.values import Enqueued, EnqueueOutcome
from infrastructure.redis import codec
from infrastructure.redis.keys import batch, keys_of, task_owner
from infrastructure.redis.lane import Script, ScriptLane
from infrastructure.redis.limits import BATCH_TTL_MS
from infrastructure.redis.scripts import Code
from infrastructure.redis.search import task_tokens

NO_LIMITS = DepthLimits()


async def store(
    lane: ScriptLane,
    client: Redis,
    script: Script,
    tasks: Sequence[Task],
    batch_id: str | None,
    *,
    limits: DepthLimits = NO_LIMITS,
    index_apart: IdIndexApart | None = None,
) -> list[Enqueued]:
    """enqueue_tasks.lua over every queue of `tasks` at once, so a request that spans
    queues is stored whole or not at all; the outcomes in the order of `tasks`; with
    `batch_id`, the tasks that are the batch's own recorded in it. `QueueFull`, storing
    nothing, if the new tasks would take a queue past its limit in `limits`.

    With `index_apart` (a Cluster, where a script touches one slot) the id index is
    written around the scripts instead, and each queue's tasks are stored by a script of
    their own: see IdIndexApart."""
    if not tasks:
        return []
    by_queue: dict[str, list[int]] = {}
    for index, task in enumerate(tasks):
        by_queue.setdefault(task.queue, []).append(index)
    if index_apart is not None:
        results = await index_apart.store(lane, script, tasks, by_queue, limits)
    else:
        results = await _store_together(lane, script, tasks, by_queue, limits)
    if batch_id is not None:
        await _record_batch(client, batch_id, results)
    return results


async def _store_together(
    lane: ScriptLane,
    script: Script,
    tasks: Sequence[Task],
    by_queue: dict[str, list[int]],
    limits: DepthLimits,
) -> list[Enqueued]:
    groups = [[tasks[index] for index in indexes] for indexes in by_queue.values()]
    keys: list[str] = []
    args: list[Any] = []
    for group in groups:
        group_keys, group_args = _call(group, limits.of(group[0].queue), indexed=True)
        keys += group_keys
        args += group_args
    replies = await lane.run(script, keys, args)
    if replies and replies[0] == Code.QUEUE_FULL:
        raise _queue_full(replies, groups, limits)
    outcomes: list[Enqueued | None] = [None] * len(tasks)
    for indexes, group_replies in zip(by_queue.values(), replies, strict=True):
        for index, reply in zip(indexes, group_replies, strict=True):
            outcomes[index] = _enqueued(tasks[index], reply)
    return [outcome for outcome in outcomes if outcome is not None]


class IdIndexApart:
    """The id index in a slot of its own (a Cluster): an id is reserved for its queue
    first (SET NX, one pipeline over every master), then each queue's script stores its
    tasks, and what was reserved for nothing is let go.

    - An id another queue holds is a conflict, and its task goes to no script.
    - A reservation of this call whose task was not stored is dropped: at once when the
      queue refused the tasks (its depth limit), and after the idempotency window when
      the queue itself holds the id (removed, or another fingerprint).
    - A script that failed leaves its reservations in place: it may have run. The same
      request sent again finds the id held by its queue and goes ahead; until then a
      lookup of the id answers 404.
    - A request that spans queues is stored queue by queue, not all or nothing: when one
      queue is refused (429), the others' tasks are stored, and the same request sent
      again (same ids) creates nothing twice.
    """

    def __init__(self, client: Redis, window_ms: int) -> None:
        self._client = client
        self._window_ms = window_ms

    async def store(
        self,
        lane: ScriptLane,
        script: Script,
        tasks: Sequence[Task],
        by_queue: dict[str, list[int]],
        limits: DepthLimits,
    ) -> list[Enqueued]:
        holders, fresh = await self._reserve(tasks)
        outcomes: list[Enqueued | None] = [None] * len(tasks)
        calls: list[list[int]] = []  # per queue, its tasks whose ids it holds
        for queue, indexes in by_queue.items():
            mine = [index for index in indexes if holders[tasks[index].id] == queue]
            calls += [mine] if mine else []
            for index in set(indexes) - set(mine):
                outcomes[index] = Enqueued(tasks[index], EnqueueOutcome.CONFLICT)
        replies = await asyncio.gather(
            *(_run_apart(lane, script, [tasks[index] for index in mine], limits) for mine in calls),
            return_exceptions=True,
        )
        drop: list[str] = []  # reserved for tasks a queue refused
        expire: list[str] = []  # reserved for ids the queue holds without a new task
        errors: list[BaseException] = []
        for mine, reply in zip(calls, replies, strict=True):
            if isinstance(reply, BaseException):
                errors.append(reply)
                if isinstance(reply, QueueFull):
                    drop += [tasks[index].id for index in mine if tasks[index].id in fresh]
                continue
            for index, answer in zip(mine, reply, strict=True):
                outcome = outcomes[index] = _enqueued(tasks[index], answer)
                if tasks[index].id in fresh and outcome.outcome in _NOT_STORED:
                    expire.append(tasks[index].id)
        await self._let_go(drop, expire)
        if errors:  # one that may have run first; a refusal stored nothing of its queue
            raise sorted(errors, key=lambda error: isinstance(error, QueueFull))[0]
        return [outcome for outcome in outcomes if outcome is not None]

    async def forgotten(self, queue: str, ids: Sequence[str]) -> None:
        """Tasks removed from `queue`: their ids stay reserved there for the window, in
        the index as in the queue."""
        if ids:
            async with self._client.pipeline(transaction=False) as pipe:
                for task_id in ids:
                    pipe.set(task_owner(task_id), queue, px=self._window_ms)
                await pipe.execute()

    async def _reserve(self, tasks: Sequence[Task]) -> tuple[dict[str, str], set[str]]:
        """Each id's holder once this call's reservations are made, and the ids this call
        reserved."""
        async with self._client.pipeline(transaction=False) as pipe:
            for task in tasks:
                pipe.set(task_owner(task.id), task.queue, nx=True)
                pipe.get(task_owner(task.id))
            replies: list[Any] = await pipe.execute()
        holders: dict[str, str] = {}
        fresh: set[str] = set()
        for task, made, holder in zip(tasks, replies[::2], replies[1::2], strict=True):
            if made:
                fresh.add(task.id)
            holders[task.id] = str(holder)
        return holders, fresh

    async def _let_go(self, drop: Sequence[str], expire: Sequence[str]) -> None:
        if not drop and not expire:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for task_id in drop:
                pipe.delete(task_owner(task_id))
            for task_id in expire:
                pipe.pexpire(task_owner(task_id), self._window_ms)
            await pipe.execute()


_NOT_STORED = (EnqueueOutcome.REMOVED, EnqueueOutcome.CONFLICT)


async def _run_apart(
    lane: ScriptLane, script: Script, group: list[Task], limits: DepthLimits
) -> list[Any]:
    """One queue's tasks, by a script of their own; QueueFull if its limit refused them."""
    keys, args = _call(group, limits.of(group[0].queue), indexed=False)
    replies = await lane.run(script, keys, args)
    if replies and replies[0] == Code.QUEUE_FULL:
        raise _queue_full(replies, [group], limits)
    answers: list[Any] = replies[0]
    return answers


def id_index_key(queue: str, task_id: str, *, apart: bool) -> str:
    """The id index entry a queue's script is to keep; with the index kept `apart` (a
    Cluster: see IdIndexApart), the task's hash in its place, which the scripts take for
    "none" (`id_index` in _lib.lua)."""
    return keys_of(queue).task(task_id) if apart else task_owner(task_id)


def _call(tasks: Sequence[Task], limit: int, *, indexed: bool) -> tuple[list[str], list[Any]]:
    """The keys and arguments of one queue's group in the script call (its keys share a
    slot)."""
    keys = keys_of(tasks[0].queue)
    per_task: list[str] = []
    described = []
    for task in tasks:
        owner = id_index_key(task.queue, task.id, apart=not indexed)
        per_task += [keys.task(task.id), keys.removed(task.id), owner]
        described.append(_described(task))
    script_keys = [keys.wait, keys.delayed, keys.marker, keys.seq, keys.last_ix, *per_task]
    return script_keys, [codec.encode_json(described), keys.prefix, keys.queue, limit]


def _queue_full(
    reply: list[int], groups: Sequence[Sequence[Task]], limits: DepthLimits
) -> QueueFull:
    """The script's refusal {-7, group, depth, new, finished, finished_before}."""
    _, group, depth, new, finished, finished_before = (int(value) for value in reply)
    queue = groups[group - 1][0].queue
    limit = limits.of(queue)
    pace = finished_last_minute(finished, finished_before, groups[group - 1][0].created_at)
    return QueueFull(queue, limit, retry_after_s(depth + new - limit, pace))


def _described(task: Task) -> dict[str, str]:
    """The task's hash as the script stores it: its fields, its fingerprint and its words."""
    fields = codec.encode(task)
    fields["fp"] = codec.fingerprint(task)
    fields["tokens"] = " ".join(task_tokens(task.name, task.payload))
    return fields


async def _record_batch(client: Redis, batch_id: str, results: Sequence[Enqueued]) -> None:
    """The batch holds the tasks of the call that are its own: not CONFLICT ones (the id
    belongs to another request's task)."""
    members = [
        f"{result.task.queue}\t{result.task.id}"
        for result in results
        if result.outcome is not EnqueueOutcome.CONFLICT
    ]
    if members:
        async with client.pipeline(transaction=False) as pipe:
            pipe.rpush(batch(batch_id), *members)
            pipe.pexpire(batch(batch_id), BATCH_TTL_MS)
            await pipe.execute()


def _enqueued(task: Task, reply: int | list[Any]) -> Enqueued:
    if isinstance(reply, list):  # EXISTS, with the task's hash
        return Enqueued(codec.decode(reply[1]), EnqueueOutcome.EXISTING)
    code = reply  # a bare code
    if code == Code.REMOVED:
        return Enqueued(task, EnqueueOutcome.REMOVED)
    if code == Code.OK:
        return Enqueued(task, EnqueueOutcome.CREATED)
    return Enqueued(task, EnqueueOutcome.CONFLICT)
