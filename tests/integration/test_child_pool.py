"""ChildPool with real child processes: sizing, progress, ending a child, shutdown."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import psutil
import pytest

from application.running.children import ChildDied, ChildJob
from infrastructure.children.child import ChildSpec
from infrastructure.children.pool import TERM_GRACE_S, ChildPool
from tests.fakes import RecordingLog, eventually

MODULES = ("tests.integration.child_pool_tasks",)


def spin(ms: int = 0, **payload: Any) -> ChildJob:
    return ChildJob("spin", {"ms": ms, **payload}, "t1", "default", 1, 1)


def ignore(progress: Any) -> None:
    """No one listens to this job's progress."""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
async def pool() -> AsyncIterator[ChildPool]:
    children = ChildPool(ChildSpec(MODULES, {}), size=2, log=RecordingLog())
    try:
        yield children
    finally:
        await children.close()


async def test_no_child_starts_before_a_job_needs_one(pool: ChildPool) -> None:
    assert pool.pids == []
    done = await pool.run(spin(), ignore)
    assert pool.pids == [done["pid"]] != [os.getpid()]


async def test_jobs_beyond_the_pool_s_size_wait_for_a_free_child(pool: ChildPool) -> None:
    answers = await asyncio.gather(*(pool.run(spin(300), ignore) for _ in range(4)))
    assert len({answer["pid"] for answer in answers}) == 2
    assert len(pool.pids) == 2


async def test_progress_reaches_the_caller_while_the_event_loop_stays_free(
    pool: ChildPool,
) -> None:
    reported: list[int] = []
    late_s = 0.0
    job = asyncio.create_task(pool.run(spin(600), reported.append))
    await eventually(lambda: bool(reported))
    while not job.done():
        started = time.perf_counter()
        await asyncio.sleep(0.002)
        late_s = max(late_s, time.perf_counter() - started - 0.002)
    result = await job
    assert reported[-1] == result["rounds"]  # the last value, sent before the answer
    assert len(reported) < result["rounds"]  # not one message per report
    assert late_s < 0.05


async def test_cancelling_a_job_ends_its_child_and_the_next_job_gets_a_new_one(
    pool: ChildPool,
) -> None:
    reported: list[int] = []
    job = asyncio.create_task(pool.run(spin(60_000), reported.append))
    await eventually(lambda: bool(reported))
    (doomed,) = pool.pids
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert not alive(doomed)
    assert pool.pids == []
    assert (await pool.run(spin(), ignore))["pid"] != doomed


async def test_a_child_that_ignores_sigterm_is_killed(pool: ChildPool) -> None:
    reported: list[int] = []
    job = asyncio.create_task(pool.run(spin(60_000, ignore_sigterm=True), reported.append))
    await eventually(lambda: bool(reported))
    (stubborn,) = pool.pids
    started = time.monotonic()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert TERM_GRACE_S <= time.monotonic() - started < TERM_GRACE_S + 2
    assert not alive(stubborn)


async def test_a_module_that_cannot_be_imported_fails_the_job() -> None:
    broken = ChildPool(ChildSpec(("tests.integration.no_such_module",), {}), 1, RecordingLog())
    try:
        with pytest.raises(ChildDied, match="exited with code 1"):
            await broken.run(spin(), ignore)
    finally:
        await broken.close()


async def test_closing_the_pool_ends_idle_and_busy_children(pool: ChildPool) -> None:
    await asyncio.gather(pool.run(spin(300), ignore), pool.run(spin(300), ignore))
    started = pool.pids
    reported: list[int] = []
    busy = asyncio.create_task(pool.run(spin(60_000), reported.append))
    await eventually(lambda: bool(reported))
    await pool.close()
    assert pool.pids == []
    assert len(started) == 2
    assert not [pid for pid in started if alive(pid)]
    with pytest.raises(ChildDied):
        await busy
    with pytest.raises(ChildDied, match="shut down"):
        await pool.run(spin(), ignore)
