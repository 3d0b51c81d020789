"""Storing new tasks: a batch per queue in one script call, several queues in one MULTI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from domain.task import Task
from domain.values import Enqueued, EnqueueOutcome
from infrastructure.redis import codec
from infrastructure.redis.keys import batch, keys_of, task_owner
from infrastructure.redis.lane import Lane, Script
from infrastructure.redis.limits import BATCH_TTL_MS
from infrastructure.redis.scripts import Code
from infrastructure.redis.search import task_tokens


async def store(
    lane: Lane, client: Redis, script: Script, tasks: Sequence[Task], batch_id: str | None
) -> list[Enqueued]:
    """enqueue_tasks.lua for each queue of `tasks`, in one round trip; the outcomes in the
    order of `tasks`; with `batch_id`, the tasks that are the batch's own recorded in it."""
    if not tasks:
        return []
    by_queue: dict[str, list[int]] = {}
    for index, task in enumerate(tasks):
        by_queue.setdefault(task.queue, []).append(index)
    calls = [_call([tasks[index] for index in indexes]) for indexes in by_queue.values()]
    if len(calls) == 1:
        keys, args = calls[0]
        replies = [await lane.run(script, keys, args)]
    else:
        # One transaction: a request that spans queues is stored whole or not at all.
        async with client.pipeline(transaction=True) as pipe:
            for keys, args in calls:
                pipe.eval(script.source, len(keys), *keys, *args)
            replies = await pipe.execute()
    outcomes: list[Enqueued | None] = [None] * len(tasks)
    for indexes, group_replies in zip(by_queue.values(), replies, strict=True):
        for index, reply in zip(indexes, group_replies, strict=True):
            outcomes[index] = _enqueued(tasks[index], reply)
    results = [outcome for outcome in outcomes if outcome is not None]
    if batch_id is not None:
        await _record_batch(client, batch_id, results)
    return results


def _call(tasks: Sequence[Task]) -> tuple[list[str], list[str]]:
    """The keys and arguments of the one script call that stores a whole batch of one
    queue (its keys share a slot)."""
    keys = keys_of(tasks[0].queue)
    per_task: list[str] = []
    described = []
    for task in tasks:
        per_task += [keys.task(task.id), keys.removed(task.id), task_owner(task.id)]
        described.append(_described(task))
    script_keys = [keys.wait, keys.delayed, keys.marker, keys.seq, keys.last_ix, *per_task]
    return script_keys, [codec.encode_json(described), keys.prefix, keys.queue]


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
