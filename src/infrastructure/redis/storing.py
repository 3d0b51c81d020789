"""Storing new tasks: one script call for the whole request, whatever its queues."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from domain.admission import DepthLimits, finished_last_minute, retry_after_s
from domain.errors import QueueFull
from domain.task import Task
from domain.values import Enqueued, EnqueueOutcome
from infrastructure.redis import codec
from infrastructure.redis.keys import batch, keys_of, task_owner
from infrastructure.redis.lane import Lane, Script
from infrastructure.redis.limits import BATCH_TTL_MS
from infrastructure.redis.scripts import Code
from infrastructure.redis.search import task_tokens

NO_LIMITS = DepthLimits()


async def store(
    lane: Lane,
    client: Redis,
    script: Script,
    tasks: Sequence[Task],
    batch_id: str | None,
    *,
    limits: DepthLimits = NO_LIMITS,
) -> list[Enqueued]:
    """enqueue_tasks.lua over every queue of `tasks` at once, so a request that spans
    queues is stored whole or not at all; the outcomes in the order of `tasks`; with
    `batch_id`, the tasks that are the batch's own recorded in it. `QueueFull`, storing
    nothing, if the new tasks would take a queue past its limit in `limits`."""
    if not tasks:
        return []
    by_queue: dict[str, list[int]] = {}
    for index, task in enumerate(tasks):
        by_queue.setdefault(task.queue, []).append(index)
    groups = [[tasks[index] for index in indexes] for indexes in by_queue.values()]
    keys: list[str] = []
    args: list[Any] = []
    for group in groups:
        group_keys, group_args = _call(group, limits.of(group[0].queue))
        keys += group_keys
        args += group_args
    replies = await lane.run(script, keys, args)
    if replies and replies[0] == Code.QUEUE_FULL:
        raise _queue_full(replies, groups, limits)
    outcomes: list[Enqueued | None] = [None] * len(tasks)
    for indexes, group_replies in zip(by_queue.values(), replies, strict=True):
        for index, reply in zip(indexes, group_replies, strict=True):
            outcomes[index] = _enqueued(tasks[index], reply)
    results = [outcome for outcome in outcomes if outcome is not None]
    if batch_id is not None:
        await _record_batch(client, batch_id, results)
    return results


def _call(tasks: Sequence[Task], limit: int) -> tuple[list[str], list[Any]]:
    """The keys and arguments of one queue's group in the script call (its keys share a
    slot)."""
    keys = keys_of(tasks[0].queue)
    per_task: list[str] = []
    described = []
    for task in tasks:
        per_task += [keys.task(task.id), keys.removed(task.id), task_owner(task.id)]
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
