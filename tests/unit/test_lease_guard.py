"""A handler whose lease ran out while its worker was stopped goes no further.

The worker's process is "stopped" here by moving the execution's monotonic deadline into
the past while the handler waits, as a SIGSTOP past the lease leaves it on resumption; no
renewal has run, so only the check before each step can stop the handler.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel

from application.handlers import TaskContext
from application.registry import TaskType
from application.running.execution import Execution
from application.running.run_handler import Interrupted, run_handler
from domain.task import Interruption, Task
from domain.values import Lease

NOW = 1_700_000_000_000
WAIT_S = 5.0


class Empty(BaseModel):
    pass


def leased() -> Execution:
    task = Task(id="t1", name="probe", payload={}, created_at=NOW, run_at=NOW, started_at=NOW)
    return Execution(task, Lease("lock:task:t1", 30_000, "w1:1", with_task=True), NOW)


def context(execution: Execution) -> TaskContext:
    return TaskContext(
        task_id="t1",
        queue="default",
        attempt=1,
        fence=1,
        log=_Silent(),
        on_progress=lambda _: None,
        lease_valid=execution.holds,
    )


def stopped_past_the_lease(execution: Execution) -> None:
    execution.ends_at = time.monotonic() - 0.001


async def test_an_async_handler_resumed_past_its_lease_does_not_go_on() -> None:
    execution, resumed = leased(), asyncio.Event()
    effects: list[str] = []

    async def handler(_: Empty, ctx: TaskContext) -> None:
        effects.append("before")
        await resumed.wait()
        effects.append("after")  # the side effect a stale worker must not make

    running = asyncio.create_task(
        run_handler(execution, TaskType("probe", Empty, handler), Empty(), context(execution))
    )
    await asyncio.sleep(0.01)
    stopped_past_the_lease(execution)
    resumed.set()

    with pytest.raises(Interrupted):
        await asyncio.wait_for(running, WAIT_S)
    assert effects == ["before"]
    assert execution.reason is Interruption.LOCK_LOST


async def test_an_async_handler_within_its_lease_runs_on() -> None:
    execution, resumed = leased(), asyncio.Event()

    async def handler(_: Empty, ctx: TaskContext) -> str:
        await resumed.wait()
        await ctx.checkpoint()
        return "done"

    running = asyncio.create_task(
        run_handler(execution, TaskType("probe", Empty, handler), Empty(), context(execution))
    )
    await asyncio.sleep(0.01)
    resumed.set()

    assert await asyncio.wait_for(running, WAIT_S) == "done"
    assert execution.reason is None


async def test_a_sync_handler_stops_at_raise_if_cancelled_once_the_lease_ran_out() -> None:
    execution, resumed = leased(), threading.Event()
    effects: list[str] = []

    def handler(_: Empty, ctx: TaskContext) -> None:
        resumed.wait(WAIT_S)
        assert not ctx.lease_valid()
        ctx.raise_if_cancelled()
        effects.append("after")

    running = asyncio.create_task(
        run_handler(execution, TaskType("probe", Empty, handler), Empty(), context(execution))
    )
    await asyncio.sleep(0.01)
    stopped_past_the_lease(execution)
    resumed.set()

    with pytest.raises(Interrupted):  # a stop, not a failed attempt
        await asyncio.wait_for(running, WAIT_S)
    assert effects == []
    assert execution.reason is Interruption.LOCK_LOST


async def test_a_renewal_moves_the_monotonic_deadline_on() -> None:
    execution = leased()
    stopped_past_the_lease(execution)
    assert not execution.lease_valid()

    execution.extend(NOW + 60_000, NOW + 30_000)  # renewed: 30 s left by the worker's clock

    assert execution.lease_valid()
    assert 29 < execution.ends_at - time.monotonic() <= 30


class _Silent:
    def __getattr__(self, _: str) -> Any:
        return lambda *args, **kwargs: None
