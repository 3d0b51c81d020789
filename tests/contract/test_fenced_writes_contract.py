"""Fenced writes (write_fenced.lua): a handler's own write, applied only under the current
token, checked in the same step. Every test runs on the fake and on Redis."""

from __future__ import annotations

from random import Random

import pytest

from domain.errors import LockLost
from domain.values import FencedWrite
from tests.contract.queue_support import (
    LEASE_MS,
    QUEUE,
    T0,
    TaskStore,
    claim_one,
    enqueue_claimed,
)


def write(command: str, name: str, *args: str) -> FencedWrite:
    return FencedWrite(command, name, args)


async def test_each_command_answers_as_redis_does(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)

    replies = [
        await queue.write_fenced(task, command)
        for command in (
            write("SET", "report", "v1"),
            write("SET", "report", "v2", "PX", "60000"),
            write("INCRBY", "sent", "5"),
            write("INCRBY", "sent", "-2"),
            write("HSET", "order", "status", "paid", "by", "card"),
            write("HSET", "order", "status", "shipped"),
            write("HINCRBY", "order", "parcels", "2"),
            write("RPUSH", "log", "a", "b"),
            write("RPUSH", "log", "c"),
            write("SADD", "seen", "x", "y", "x"),
            write("SADD", "seen", "y", "z"),
            write("PEXPIRE", "seen", "60000"),
            write("PEXPIRE", "absent", "60000"),
            write("DEL", "report"),
            write("DEL", "report"),
        )
    ]

    assert replies == [None, None, 5, 3, 2, 0, 2, 2, 3, 2, 1, 1, 0, 1, 0]


async def test_a_stale_token_writes_nothing(queue: TaskStore) -> None:
    first = await enqueue_claimed(queue)
    await queue.write_fenced(first, write("RPUSH", "log", "first"))
    # The first worker vanished: its task is recovered and runs again under a new token.
    now = T0 + LEASE_MS + 1
    await queue.recover(first.stalled(now, 3, Random(0)), expired_by=now)
    second = await claim_one(queue, now)
    assert second.fence > first.fence

    with pytest.raises(LockLost):
        await queue.write_fenced(first, write("RPUSH", "log", "stale"))

    assert await queue.write_fenced(second, write("RPUSH", "log", "second")) == 2
    await queue.settle(second.complete(None, now + 1))
    with pytest.raises(LockLost):  # settled: no execution holds it any more
        await queue.write_fenced(second, write("RPUSH", "log", "late"))
    with pytest.raises(LockLost):
        await queue.write_fenced(second.returned(now), write("RPUSH", "log", "none"))


async def test_a_task_that_is_not_there_writes_nothing(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)
    await queue.settle(task.complete(None, T0 + 1))
    await queue.remove(task)

    with pytest.raises(LockLost):
        await queue.write_fenced(task, write("SET", "report", "x"))


async def test_a_command_on_a_key_of_another_type_is_a_value_error(queue: TaskStore) -> None:
    task = await enqueue_claimed(queue)
    await queue.write_fenced(task, write("SET", "report", "not a number"))

    with pytest.raises(ValueError, match="report"):
        await queue.write_fenced(task, write("RPUSH", "report", "x"))
    with pytest.raises(ValueError, match="integer"):
        await queue.write_fenced(task, write("INCRBY", "report", "1"))
    assert await queue.write_fenced(task, write("DEL", "report")) == 1  # nothing else changed


async def test_effect_keys_share_the_queues_hash_tag(queue: TaskStore) -> None:
    key = queue.effect_key(QUEUE, "report:{other}")

    assert key.startswith(f"conveyor:{{{QUEUE}}}:")  # the first {...} is the queue's tag
    assert key.endswith("report:{other}")
    assert queue.effect_key(QUEUE, "a") != queue.effect_key(QUEUE, "b")
