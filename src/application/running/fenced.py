"""FencedWriter: the worker's end of `ctx.fenced`, a handler's own writes under its fence."""

from __future__ import annotations

import asyncio
from typing import Any

from application.handlers import FenceLost
from application.meter import FENCING_REFUSALS, Meter
from application.running.execution import Execution
from domain.errors import LockLost
from domain.ports import ITaskTransitions
from domain.values import FencedWrite


class FencedWriter:
    """A handler's write goes out only while its execution holds the lease by the local
    monotonic clock, and Redis applies it only while the task is active under the
    execution's token (one script). Either refusal marks the execution LOCK_LOST, for its
    runner to record nothing, and raises `FenceLost` in the handler."""

    __slots__ = ("_execution", "_loop", "_meter", "_queue")

    def __init__(
        self, queue: ITaskTransitions, execution: Execution, meter: Meter | None = None
    ) -> None:
        self._queue = queue
        self._execution = execution
        self._meter = meter or Meter()
        self._loop = asyncio.get_running_loop()

    def key(self, name: str) -> str:
        return self._queue.effect_key(self._execution.task.queue, name)

    async def write(self, write: FencedWrite) -> Any:
        task = self._execution.task
        if not self._execution.holds():
            raise FenceLost(f"task {task.id!r}: the lease ran out before the write")
        try:
            return await self._queue.write_fenced(task, write)
        except LockLost as exc:
            self._meter.count(FENCING_REFUSALS, 1, "write")
            self._execution.lose("a fenced write found the task taken over")
            raise FenceLost(str(exc)) from None

    def write_sync(self, write: FencedWrite) -> Any:
        """`write` for a handler in another thread: it runs in the worker's event loop,
        and this thread waits for its answer."""
        if _running_loop() is self._loop:
            raise RuntimeError("ctx.fenced_sync would block the event loop: await ctx.fenced")
        return asyncio.run_coroutine_threadsafe(self.write(write), self._loop).result()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
