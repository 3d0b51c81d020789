"""ctx.fenced and ctx.fenced_sync: a handler's writes go out while its execution holds the
task, and stop it with FenceLost once it does not, whether the worker's own clock or the
store finds out first. On the in-memory store (its script is the contract suite's)."""

from __future__ import annotations

import asyncio
import threading
import time
from random import Random
from typing import Any

import pytest
from pydantic import BaseModel

from application.handlers import FencedWrites, FenceLost, TaskContext
from application.registry import TaskType
from application.running.execution import Execution
from application.running.fenced import FencedWriter
from application.running.run_handler import Interrupted, run_handler
from domain.task import Interruption, Task
from domain.values import FencedWrite, Lease
from infrastructure.tasks.demo import ShipOrder, ship_order
from tests.contract.queue_support import LEASE_MS, QUEUE, T0, claim_one, enqueue_claimed
from tests.fakes import InMemoryTaskQueue, RecordingLog

WAIT_S = 5.0


class Empty(BaseModel):
    pass


@pytest.fixture
def store() -> InMemoryTaskQueue:
    return InMemoryTaskQueue(60_000, queues=[QUEUE])


async def running(store: InMemoryTaskQueue) -> tuple[Execution, TaskContext]:
    task = await enqueue_claimed(store)
    execution = Execution(task, Lease(f"lock:task:{task.id}", 30_000, "w:1", with_task=True))
    writer = FencedWriter(store, execution)
    ctx = TaskContext(
        task_id=task.id,
        queue=task.queue,
        attempt=task.attempt,
        fence=task.fence,
        log=RecordingLog(),
        on_progress=lambda _: None,
        lease_valid=execution.holds,
        write=writer.write,
        write_sync=writer.write_sync,
        effect_key=writer.key,
    )
    return execution, ctx


async def taken_over(store: InMemoryTaskQueue, task: Task) -> Task:
    """Another worker recovered the task and holds it now, under a newer token."""
    now = T0 + LEASE_MS + 1
    await store.recover(task.stalled(now, 3, Random(0)), expired_by=now)
    return await claim_one(store, now)


def run(execution: Execution, ctx: TaskContext, handler: Any) -> asyncio.Task[Any]:
    task_type = TaskType("probe", Empty, handler)
    return asyncio.create_task(run_handler(execution, task_type, Empty(), ctx))


def log_of(store: InMemoryTaskQueue) -> list[str]:
    return list(store.effects.values.get(store.effect_key(QUEUE, "log"), []))


async def test_an_async_handler_writes_while_it_holds_the_task(store: InMemoryTaskQueue) -> None:
    execution, ctx = await running(store)

    async def handler(_: Empty, ctx: TaskContext) -> Any:
        await ctx.fenced.rpush("log", "a", 1, 2.5)
        await ctx.fenced.set("report", "done", ttl_ms=60_000)
        return await ctx.fenced.incrby("sent", 3), ctx.fenced.key("report")

    assert await asyncio.wait_for(run(execution, ctx, handler), WAIT_S) == (
        3,
        f"conveyor:{{{QUEUE}}}:fx:report",
    )
    assert log_of(store) == ["a", "1", "2.5"]


async def test_a_write_after_a_takeover_is_refused_by_the_store(store: InMemoryTaskQueue) -> None:
    execution, ctx = await running(store)
    proceed = asyncio.Event()

    async def handler(_: Empty, ctx: TaskContext) -> None:
        await ctx.fenced.rpush("log", "before")
        await proceed.wait()
        await ctx.fenced.rpush("log", "stale")  # its own clock says the lease holds

    handling = run(execution, ctx, handler)
    await asyncio.sleep(0.01)
    await taken_over(store, execution.task)
    proceed.set()

    with pytest.raises(Interrupted):  # a lost task, not a failed attempt
        await asyncio.wait_for(handling, WAIT_S)
    assert execution.reason is Interruption.LOCK_LOST
    assert log_of(store) == ["before"]


async def test_a_write_past_the_lease_is_refused_before_it_leaves(store: InMemoryTaskQueue) -> None:
    execution, ctx = await running(store)
    refused: list[BaseException] = []

    async def handler(_: Empty, ctx: TaskContext) -> None:
        execution.ends_at = time.monotonic() - 0.001  # stopped past its lease, resumed
        try:
            await ctx.fenced.rpush("log", "stale")
        except FenceLost as exc:
            refused.append(exc)
            raise

    with pytest.raises(Interrupted):
        await asyncio.wait_for(run(execution, ctx, handler), WAIT_S)
    assert refused
    assert log_of(store) == []  # the store never saw it, though it still had the task active


async def test_a_sync_handler_writes_through_the_workers_loop(store: InMemoryTaskQueue) -> None:
    execution, ctx = await running(store)
    proceed, wrote = threading.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def handler(_: Empty, ctx: TaskContext) -> int:
        count = ctx.fenced_sync.rpush("log", "before")
        assert isinstance(count, int)
        loop.call_soon_threadsafe(wrote.set)
        proceed.wait(WAIT_S)
        ctx.fenced_sync.rpush("log", "stale")
        return count

    handling = run(execution, ctx, handler)
    await asyncio.wait_for(wrote.wait(), WAIT_S)
    await taken_over(store, execution.task)
    await loop.run_in_executor(None, proceed.set)

    with pytest.raises(Interrupted):
        await asyncio.wait_for(handling, WAIT_S)
    assert log_of(store) == ["before"]


async def test_fenced_sync_in_the_event_loop_is_an_error_not_a_deadlock(
    store: InMemoryTaskQueue,
) -> None:
    execution, ctx = await running(store)

    async def handler(_: Empty, ctx: TaskContext) -> None:
        ctx.fenced_sync.set("report", "x")

    with pytest.raises(RuntimeError, match=r"await ctx\.fenced"):
        await asyncio.wait_for(run(execution, ctx, handler), WAIT_S)


def sent(call: Any) -> FencedWrite:
    return call(FencedWrites(lambda write: write, str))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda w: w.set("k", "v"), FencedWrite("SET", "k", ("v",))),
        (lambda w: w.set("k", 7, ttl_ms=500), FencedWrite("SET", "k", ("7", "PX", "500"))),
        (lambda w: w.delete("k"), FencedWrite("DEL", "k")),
        (lambda w: w.expire("k", 10), FencedWrite("PEXPIRE", "k", ("10",))),
        (lambda w: w.incrby("k"), FencedWrite("INCRBY", "k", ("1",))),
        (lambda w: w.hset("k", {"a": 1, "b": "x"}), FencedWrite("HSET", "k", ("a", "1", "b", "x"))),
        (lambda w: w.hincrby("k", "a", -2), FencedWrite("HINCRBY", "k", ("a", "-2"))),
        (lambda w: w.rpush("k", "a", 0.5), FencedWrite("RPUSH", "k", ("a", "0.5"))),
        (lambda w: w.sadd("k", "a"), FencedWrite("SADD", "k", ("a",))),
    ],
)
def test_each_helper_sends_one_single_key_command(call: Any, expected: FencedWrite) -> None:
    assert sent(call) == expected


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda w: w.set("", "v"), ValueError),
        (lambda w: w.set("k" * 513, "v"), ValueError),
        (lambda w: w.set(3, "v"), ValueError),
        (lambda w: w.set("k", True), TypeError),
        (lambda w: w.set("k", None), TypeError),
        (lambda w: w.set("k", b"bytes"), TypeError),
        (lambda w: w.set("k", "v", ttl_ms=0), ValueError),
        (lambda w: w.set("k", "v", ttl_ms=1.5), ValueError),
        (lambda w: w.expire("k", -1), ValueError),
        (lambda w: w.incrby("k", 2**63), ValueError),
        (lambda w: w.incrby("k", "1"), ValueError),
        (lambda w: w.hset("k", {}), ValueError),
        (lambda w: w.hset("k", {1: "v"}), TypeError),
        (lambda w: w.rpush("k"), ValueError),
        (lambda w: w.rpush("k", *["v"] * 1_001), ValueError),
        (lambda w: w.sadd("k", ["a"]), TypeError),
    ],
)
def test_a_malformed_write_is_refused_before_it_is_sent(call: Any, error: type) -> None:
    with pytest.raises(error):
        sent(call)


def test_only_single_key_writes_are_fenced_writes() -> None:
    for command in ("EVAL", "FLUSHALL", "RENAME", "GET", "set"):
        with pytest.raises(ValueError, match="not a fenced write"):
            FencedWrite(command, "k")


def test_a_context_made_outside_a_worker_says_so() -> None:
    ctx = TaskContext(
        task_id="t", queue="q", attempt=1, fence=1, log=RecordingLog(), on_progress=print
    )

    with pytest.raises(RuntimeError, match="worker"):
        ctx.fenced_sync.set("k", "v")


async def test_the_demo_ship_order_records_the_order_under_its_fence(
    store: InMemoryTaskQueue,
) -> None:
    execution, ctx = await running(store)
    payload = ShipOrder.model_validate({"orderId": "o-42", "carrier": "post"})

    result = await asyncio.wait_for(ship_order(payload, ctx), WAIT_S)

    record = store.effect_key(QUEUE, "order:o-42")
    assert result == {"orderId": "o-42", "record": record, "fence": ctx.fence}
    fields = {"status": "shipped", "carrier": "post", "fence": str(ctx.fence)}
    assert store.effects.values[record] == fields
    await taken_over(store, execution.task)
    with pytest.raises(FenceLost):  # a stale execution of it records nothing
        await ship_order(payload, ctx)
    assert store.effects.values[record] == fields
