"""Running one handler within its timeout: async in the worker's task, sync in a thread,
or in a child process."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from application.handlers import TaskCancelled, TaskContext
from application.registry import TaskType
from application.running.children import ChildJob, IChildPool
from application.running.execution import Execution
from application.running.failures import RaisedInChild
from domain.task import Interruption
from domain.values import FencedWrite


class Interrupted(Exception):
    """The handler did not finish: `execution.reason` says why (timeout, abort)."""


async def run_handler(
    execution: Execution,
    task_type: TaskType,
    payload: Any,
    ctx: TaskContext,
    children: IChildPool | None = None,
    *,
    on_write: Callable[[FencedWrite], Awaitable[Any]] | None = None,
) -> Any:
    """The handler's result, or its exception as raised; `Interrupted` if cut short.
    `on_write` carries out the fenced writes of a handler in a child process."""
    if execution.reason is not None:
        raise Interrupted
    timeout_s = execution.task.timeout_ms / 1000
    if task_type.is_async:
        return await _run_async(execution, task_type.handler(payload, ctx), timeout_s)
    if task_type.in_child:
        # Cancelling the pool's call ends the child: the async path's timer and abort
        # hook stop it as they stop an async handler.
        if children is None:
            raise RuntimeError(f"task type {task_type.name!r} needs a worker's child processes")
        job = ChildJob.of(execution.task)
        in_child = children.run(job, ctx.report_progress, on_write)
        try:
            return await _run_async(execution, in_child, timeout_s)
        except RaisedInChild:
            if execution.reason is not None:  # a fenced write found the task lost
                raise Interrupted from None
            raise
    call = functools.partial(contextvars.copy_context().run, task_type.handler, payload, ctx)
    return await _run_sync(execution, call, ctx, timeout_s)


async def _run_async(execution: Execution, call: Coroutine[Any, Any, Any], timeout_s: float) -> Any:
    """The handler runs in this very task (no task of its own to create); an abort cancels
    it at its next await, and the cancellation is taken back once it is handled. The
    timeout is a timer that aborts (one call_later: a task in flight costs no more)."""
    current = asyncio.current_task()
    assert current is not None
    cancellations = current.cancelling()
    expiry = current.get_loop().call_later(timeout_s, execution.abort, Interruption.TIMEOUT)
    execution.on_abort(current.cancel)
    try:
        return await _within_lease(execution, call)
    except (asyncio.CancelledError, TaskCancelled):
        if execution.reason is None:
            raise  # not ours: the worker itself is being cancelled
        raise Interrupted from None
    finally:
        expiry.cancel()
        execution.on_abort(None)
        while current.cancelling() > cancellations and execution.reason is not None:
            current.uncancel()


@types.coroutine
def _within_lease(execution: Execution, call: Coroutine[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """Drives the handler's coroutine one step at a time, as `await call` would, and
    checks the lease on the monotonic clock before each step: a worker that was stopped
    (SIGSTOP, a paused VM) past its lease does not let the handler run on to its next
    side effect, whichever of the loop's callbacks runs first after it resumes (the
    renewal that would find the lease gone may come later). The handler gets a
    CancelledError where it awaited, as for any cancel."""
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        if thrown is None and execution.reason is None and not execution.holds():
            thrown = asyncio.CancelledError()
        try:
            step = call.send(sent) if thrown is None else call.throw(thrown)
        except StopIteration as finished:
            return finished.value
        sent, thrown = None, None
        try:
            sent = yield step
        except GeneratorExit:  # this wrapper is closed: close the handler with it
            call.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - handed on to the handler, as await does
            thrown = exc


async def _run_sync(
    execution: Execution, call: functools.partial[Any], ctx: TaskContext, timeout_s: float
) -> Any:
    loop = asyncio.get_running_loop()
    thread = loop.run_in_executor(None, call)
    interrupted: asyncio.Future[None] = loop.create_future()

    def interrupt() -> None:
        if not interrupted.done():
            interrupted.set_result(None)

    execution.on_abort(interrupt)
    try:
        await asyncio.wait({thread, interrupted}, timeout=timeout_s, return_when="FIRST_COMPLETED")
    finally:
        execution.on_abort(None)
        interrupted.cancel()
    if thread.done():
        if execution.reason is not None and isinstance(thread.exception(), TaskCancelled):
            raise Interrupted  # it stopped at `raise_if_cancelled`
        return thread.result()
    execution.abort(Interruption.TIMEOUT)  # unless something else aborted it first
    ctx.cancel()
    # A thread cannot be interrupted, only asked to stop: keep the slot, and the lease,
    # until it returns, so that no retry ever overlaps it.
    await asyncio.wait({thread})
    raise Interrupted
